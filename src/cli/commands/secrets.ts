import { rotateSecrets } from '../../db/rotate-secrets.ts';
import { generateSecretKey } from '../../secrets/keyring.ts';
import { requireKeyring } from '../../secrets/process-keyring.ts';
import { withRuntime } from '../runtime.ts';
import { defineCommand } from '../usage.ts';

/** `tsflow rotate-secrets` (Airflow's `rotate-fernet-key`). */
export const rotateSecretsCommand = defineCommand(
  {
    name: 'rotate-secrets',
    summary: 're-encrypt every connection, variable and trigger kwargs under the first key of TSFLOW_SECRET_KEY',
    options: {},
    details: [
      'To rotate: put the new key first in TSFLOW_SECRET_KEY, the old one after it (NEW,OLD), on every tsflow process;',
      'run tsflow rotate-secrets; then drop the old key. One transaction: all or nothing. Trigger rows stored as plain',
      'JSON (before encryption existed, or without a key) are encrypted too.',
    ],
  },
  async (_args, settings) =>
    withRuntime(settings, {}, async (runtime) => {
      const keyring = requireKeyring();
      const result = await rotateSecrets(runtime.database.db, keyring);
      console.log(
        `re-encrypted under key ${keyring.primaryKeyId}: ${result.connections} connection(s), ${result.variables} variable(s), ${result.triggers} trigger(s)`,
      );
      return 0;
    }),
);

/** `tsflow secrets generate-key`. */
export const secretsGenerateKey = defineCommand(
  {
    name: 'secrets generate-key',
    summary: 'print a new key for TSFLOW_SECRET_KEY (32 random bytes, base64)',
    options: {},
    details: ['Equivalent: openssl rand -base64 32. Keep it secret; every tsflow process needs the same keys.'],
  },
  async () => {
    console.log(generateSecretKey());
    return 0;
  },
);
