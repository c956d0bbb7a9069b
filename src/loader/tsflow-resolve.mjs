// Module resolve hook (runs on Node's loader thread): maps the `tsflow` package name to this
// installation, whatever folder the importing DAG or trigger file lives in.
let root = '';

export function initialize(data) {
  root = data.root;
}

const ENTRIES = {
  tsflow: 'src/sdk/index.ts',
  'tsflow/triggers': 'triggers/index.ts',
};

export async function resolve(specifier, context, nextResolve) {
  const entry = ENTRIES[specifier];
  if (entry) return nextResolve(new URL(entry, root).href, context);
  return nextResolve(specifier, context);
}
