#!/usr/bin/env node
// The tsflow command. Plain JavaScript so the Node version check runs before anything else loads.
import { fileURLToPath } from 'node:url';

const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  // An older `node` first on PATH (these machines ship Node 20): run on the Node.js that npm
  // installed with tsflow (the `node` package) instead.
  const { bundledNode, runOn } = await import('../src/loader/bundled-node.mjs');
  const modern = bundledNode(import.meta.url);
  if (modern === undefined) {
    console.error(
      `tsflow: error: Node.js 22 or newer is required (this is ${process.version}), and the Node.js that npm installs with tsflow ` +
        '(the node package) is missing: run npm install, or install a current Node.js',
    );
    process.exit(1);
  }
  runOn(modern, fileURLToPath(import.meta.url), process.argv.slice(2));
} else {
  await runTsflow();
}

async function runTsflow() {
  const { register, registerHooks } = await import('node:module');
  // tsx loads TypeScript: tsflow's own sources and users' DAG and trigger files.
  const tsx = await import('tsx/esm/api');
  tsx.register();
  // `import ... from 'tsflow'` (or `require('tsflow')`) in a DAG file anywhere resolves to this
  // installation, so DAGs and the engine share one copy of the SDK. A DAG file in a folder without
  // a package.json, or with "type": "commonjs", is loaded as CommonJS (tsx turns its imports into
  // require calls), which the loader-thread hooks of `register` never see; the in-thread hooks of
  // `registerHooks` (Node 22.15+) see both.
  const root = new URL('../', import.meta.url).href;
  const resolver = await import('../src/loader/tsflow-resolve.mjs');
  if (registerHooks) registerHooks({ resolve: resolver.resolveSync(root) });
  else register('../src/loader/tsflow-resolve.mjs', import.meta.url, { data: { root } });
  const { main } = await import('../src/cli/main.ts');
  process.exitCode = await main(process.argv.slice(2));
}
