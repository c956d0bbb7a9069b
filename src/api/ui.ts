import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { ApiApp } from './server.ts';

/*
 * The web UI (issue 14): plain ES modules from `ui/`, no build step. Preact and htm are served from
 * node_modules under /ui/vendor/ and found through the import map in index.html. The files are
 * public (they hold no data: every call they make goes to the API, with the session cookie);
 * `/` redirects to `/ui/`. Routes: PUBLIC_ROUTES in plugins/auth.ts lists `/` and `/ui/*`.
 */

export const UI_FOLDER = fileURLToPath(new URL('../../ui/', import.meta.url));

/** What the import map names, and the module file behind each. */
const VENDOR: Readonly<Record<string, string>> = {
  'preact.mjs': 'preact',
  'hooks.mjs': 'preact/hooks',
  'htm.mjs': 'htm',
};

function vendorFiles(): Map<string, { root: string; file: string }> {
  const files = new Map<string, { root: string; file: string }>();
  for (const [name, specifier] of Object.entries(VENDOR)) {
    const resolved = fileURLToPath(import.meta.resolve(specifier));
    files.set(name, { root: path.dirname(resolved), file: path.basename(resolved) });
  }
  return files;
}

/** The Content-Security-Policy: scripts only from here, plus the inline import map by its hash. */
function contentSecurityPolicy(indexHtml: string): string {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(indexHtml)?.[1];
  const hash = importMap === undefined ? '' : ` 'sha256-${createHash('sha256').update(importMap).digest('base64')}'`;
  return [
    "default-src 'self'",
    `script-src 'self'${hash}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
  ].join('; ');
}

export async function registerUi(app: ApiApp): Promise<void> {
  const vendor = vendorFiles();
  const csp = contentSecurityPolicy(readFileSync(path.join(UI_FOLDER, 'index.html'), 'utf8'));
  await app.register(fastifyStatic, { root: UI_FOLDER, serve: false, cacheControl: false });

  app.get('/', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/'));

  app.get('/ui/*', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'same-origin');
    if (rest === '' || rest === 'index.html') {
      reply.header('content-security-policy', csp);
      reply.header('cache-control', 'no-cache');
      return reply.sendFile('index.html');
    }
    if (rest.startsWith('vendor/')) {
      const found = vendor.get(rest.slice('vendor/'.length));
      if (!found) return reply.callNotFound();
      reply.header('cache-control', 'public, max-age=3600');
      return reply.sendFile(found.file, found.root);
    }
    // Only the UI's own files, by a plain relative path (send refuses `..` too).
    if (!/^[a-z0-9-]+(\/[a-z0-9-]+)*\.(js|css|svg)$/.test(rest)) return reply.callNotFound();
    reply.header('cache-control', 'no-cache');
    return reply.sendFile(rest);
  });
}
