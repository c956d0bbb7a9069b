import { readdir } from 'node:fs/promises';
import path from 'node:path';

const MODULE_FILE = /\.(ts|mts|js|mjs)$/;

/**
 * The loadable modules under `folder`, recursively, sorted: `.ts`, `.mts`, `.js`, `.mjs`, but not
 * declaration files, tests, or anything in `node_modules` or a hidden folder. A missing folder is empty.
 */
export async function listModuleFiles(folder: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && dir !== folder) return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (MODULE_FILE.test(entry.name) && !/\.d\.m?ts$/.test(entry.name) && !/\.test\./.test(entry.name)) files.push(full);
    }
  };
  await walk(path.resolve(folder));
  return files.sort();
}
