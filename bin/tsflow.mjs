#!/usr/bin/env node
// The tsflow command. Plain JavaScript so the Node version check runs before anything else loads.
const [major] = process.versions.node.split('.').map(Number);
if (major < 22) {
  console.error(`tsflow: error: Node.js 22 or newer is required (this is ${process.version}); install a current Node.js`);
  process.exit(1);
}
const { register } = await import('node:module');
// tsx loads TypeScript: tsflow's own sources and users' DAG and trigger files.
const tsx = await import('tsx/esm/api');
tsx.register();
// `import ... from 'tsflow'` in a DAG file anywhere resolves to this installation, so DAGs and the
// engine share one copy of the SDK.
register('../src/loader/tsflow-resolve.mjs', import.meta.url, { data: { root: new URL('../', import.meta.url).href } });
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
