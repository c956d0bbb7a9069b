// Maps the `tsflow` package name to this installation, whatever folder the importing DAG or trigger
// file lives in (and whether it is loaded as an ES module or as CommonJS).
const ENTRIES = {
  tsflow: 'src/sdk/index.ts',
  'tsflow/triggers': 'triggers/index.ts',
};

/** The synchronous, in-thread resolve hook for `module.registerHooks` (Node 22.15+, covers require too). */
export function resolveSync(root) {
  return (specifier, context, nextResolve) => {
    const entry = ENTRIES[specifier];
    // Answered here rather than passed on as a file URL: require's resolver takes paths, not URLs.
    if (entry) return { url: new URL(entry, root).href, format: 'module', shortCircuit: true };
    return nextResolve(specifier, context);
  };
}

// The asynchronous hooks for `module.register` (older Node 22): they run on Node's loader thread and
// see `import` only.
let root = '';

export function initialize(data) {
  root = data.root;
}

export async function resolve(specifier, context, nextResolve) {
  const entry = ENTRIES[specifier];
  if (entry) return nextResolve(new URL(entry, root).href, context);
  return nextResolve(specifier, context);
}
