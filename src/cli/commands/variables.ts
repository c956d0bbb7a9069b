import { checkVariableKey, deleteVariable, getStoredVariable, InvalidVariableKeyError, listStoredVariables, listVariableKeys, setVariable } from '../../db/variables.ts';
import { variableFromEnvironment } from '../../secrets/env-secrets.ts';
import { isSensitiveName, MASK } from '../../secrets/masker.ts';
import { JSON_OUTPUT } from '../common-options.ts';
import { printNotice } from '../notice.ts';
import { withRuntime } from '../runtime.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';
import { readJsonObjectFile, writeSecretFile } from './secret-files.ts';

/*
 * Airflow's `variables` verbs. Values are stored encrypted. A key that looks secret (`*password*`,
 * `*token*`, `*api_key*`, … — Airflow's list) has its value shown as `***`; `export` writes the values.
 */

function checkedKey(key: string): string {
  try {
    return checkVariableKey(key);
  } catch (error) {
    if (error instanceof InvalidVariableKeyError) throw new UsageError(error.message);
    throw error;
  }
}

/** `tsflow variables set KEY VALUE`. */
export const variablesSet = defineCommand(
  {
    name: 'variables set',
    summary: 'store variable KEY (encrypted)',
    positionals: ['KEY', 'VALUE'],
    options: {
      description: { type: 'string', value: 'D', description: 'what the variable is for (kept when not given)' },
      json: { type: 'boolean', description: 'refuse a VALUE that is not JSON (it is stored as given)' },
    },
    details: ['Needs a secret key: TSFLOW_SECRET_KEY, or (embedded database) $TSFLOW_HOME/secret.key.'],
  },
  async ({ values, positionals }, settings) => {
    const [key, value] = positionals as [string, string];
    checkedKey(key);
    if (values.json) {
      try {
        JSON.parse(value);
      } catch {
        throw new UsageError(`the value of '${key}' is not JSON (--json was given)`);
      }
    }
    return withRuntime(settings, {}, async (runtime) => {
      await setVariable(runtime.database.db, key, value, values.description);
      console.log(`variable '${key}' stored`);
      return 0;
    });
  },
);

/** `tsflow variables get KEY [--default D]`. */
export const variablesGet = defineCommand(
  {
    name: 'variables get',
    summary: 'the value of variable KEY, from TSFLOW_VAR_<KEY> or the database (*** when the key looks secret)',
    positionals: ['KEY'],
    options: {
      default: { type: 'string', value: 'D', description: 'print D when the variable is not defined (otherwise that is an error)' },
      json: { ...JSON_OUTPUT, description: 'print { key, value, description, source }' },
    },
  },
  async ({ values, positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const key = positionals[0] as string;
      const fromEnv = variableFromEnvironment(key);
      const stored = fromEnv === undefined ? await getStoredVariable(runtime.database.db, key) : undefined;
      const value = fromEnv ?? stored?.value ?? values.default;
      if (value === undefined) throw new UsageError(`variable '${key}' is not defined (neither TSFLOW_VAR_${key.toUpperCase()} nor the database has it); --default prints a fallback`);
      const secret = isSensitiveName(key);
      if (secret) printNotice(`'${key}' looks like a secret, so its value is shown as ${MASK}; tsflow variables export writes it to a file`);
      const shown = secret ? MASK : value;
      const source = fromEnv !== undefined ? 'environment' : stored ? 'database' : 'default';
      if (values.json) console.log(JSON.stringify({ key, value: shown, description: stored?.description ?? null, source }));
      else console.log(shown);
      return 0;
    }),
);

/** `tsflow variables list [--json]`. */
export const variablesList = defineCommand(
  {
    name: 'variables list',
    summary: 'the stored variables\' keys (and descriptions)',
    options: { json: { ...JSON_OUTPUT, description: 'print [{ key, description }]' } },
  },
  async ({ values }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const rows = await listVariableKeys(runtime.database.db);
      if (values.json) console.log(JSON.stringify(rows));
      else if (rows.length === 0) console.log('no variables');
      else for (const r of rows) console.log(r.description ? `${r.key}  ${r.description}` : r.key);
      return 0;
    }),
);

/** `tsflow variables delete KEY`. */
export const variablesDelete = defineCommand(
  { name: 'variables delete', summary: 'delete stored variable KEY', positionals: ['KEY'], options: {} },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const key = positionals[0] as string;
      if (!(await deleteVariable(runtime.database.db, key))) throw new UsageError(`variable '${key}' is not stored, so it was not deleted`);
      console.log(`variable '${key}' deleted`);
      return 0;
    }),
);

/** `tsflow variables export FILE`. */
export const variablesExport = defineCommand(
  {
    name: 'variables export',
    summary: 'write the stored variables to FILE as JSON { KEY: VALUE } (mode 0600)',
    positionals: ['FILE'],
    options: {},
  },
  async ({ positionals }, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const variables = await listStoredVariables(runtime.database.db);
      const file = positionals[0] as string;
      await writeSecretFile(file, Object.fromEntries(variables.map((v) => [v.key, v.value])));
      console.log(`${variables.length} variable(s) written to ${file}`);
      return 0;
    }),
);

/** `tsflow variables import FILE`. */
export const variablesImport = defineCommand(
  {
    name: 'variables import',
    summary: 'store the variables of a JSON FILE { KEY: VALUE } (non-string values are stored as JSON text)',
    positionals: ['FILE'],
    options: {},
  },
  async ({ positionals }, settings) => {
    const file = positionals[0] as string;
    const document = await readJsonObjectFile(file);
    const entries = Object.entries(document).map(([key, value]) => [checkedKey(key), typeof value === 'string' ? value : JSON.stringify(value)] as const);
    return withRuntime(settings, {}, async (runtime) => {
      await runtime.database.db.transaction().execute(async (trx) => {
        for (const [key, value] of entries) await setVariable(trx, key, value);
      });
      console.log(`${entries.length} variable(s) stored`);
      return 0;
    });
  },
);

export const VARIABLE_COMMANDS = [variablesSet, variablesGet, variablesList, variablesDelete, variablesImport, variablesExport];
