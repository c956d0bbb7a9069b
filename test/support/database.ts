import { openDatabase, type Database } from '../../src/db/database.ts';
import { adminQuery, withDatabase } from './global-fixtures.ts';

let counter = 0;

export interface TestDatabase {
  readonly database: Database;
  readonly url: string;
  /** Another pool on the same database (a second process's view). */
  open(poolSize?: number): Database;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env['TSFLOW_TEST_ADMIN_URL'];
  const template = process.env['TSFLOW_TEST_TEMPLATE'];
  if (!adminUrl || !template) throw new Error('the test database server is not set up: run the tests with mocha (see .mocharc.json)');
  const name = `tsflow_test_${process.pid}_${++counter}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${template}`);
  const url = withDatabase(adminUrl, name);
  const pools: Database[] = [];
  const open = (poolSize = 10): Database => {
    const database = openDatabase({ url, poolSize, applicationName: 'tsflow-test' });
    pools.push(database);
    return database;
  };
  return {
    database: open(),
    url,
    open,
    drop: async () => {
      await Promise.all(pools.map((p) => p.close()));
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** An empty, unmigrated database (for "refuses an unmigrated schema" tests). */
export async function createEmptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = process.env['TSFLOW_TEST_ADMIN_URL'] as string;
  const name = `tsflow_tempty_${process.pid}_${++counter}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  return { url: withDatabase(adminUrl, name), drop: () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined) };
}
