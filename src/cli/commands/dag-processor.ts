import { DagProcessor } from '../../dag-processor/dag-processor.ts';
import { parseInThisProcess } from '../../dag-processor/parse-child.ts';
import { isParseRequest, type ParseMessage, type ParseRequest } from '../../dag-processor/parse-protocol.ts';
import { DAGS_FOLDER, dagsFolderOf, STARTUP_TIMEOUT } from '../common-options.ts';
import { startDaemon } from '../daemon-startup.ts';
import { parseSeconds, UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/** After SIGTERM: the parse child is killed and the job row ended well within this. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

/** The DAG processor's options; `scheduler` and `standalone` take them for the processor they run inside. */
export const DAG_PROCESSOR_OPTIONS = {
  'parse-timeout': { type: 'string', value: 'S', description: 'a file taking longer to import gets an import error (its parse process is killed)', default: '30' },
  'scan-interval': { type: 'string', value: 'S', description: 'seconds between full scans of the folder (changes are also watched for)', default: '30' },
} as const;

export function dagProcessorOptions(values: { 'parse-timeout'?: string | undefined; 'scan-interval'?: string | undefined }): { parseTimeoutMs: number; scanIntervalMs: number } {
  return {
    parseTimeoutMs: parseSeconds(values['parse-timeout'], '--parse-timeout', 30_000),
    scanIntervalMs: parseSeconds(values['scan-interval'], '--scan-interval', 30_000),
  };
}

/** `tsflow dag-processor`. */
export const dagProcessorCommand = defineCommand(
  {
    name: 'dag-processor',
    summary: 'parses the DAG files in child processes; stores serialized DAGs and import errors',
    options: {
      'dags-folder': DAGS_FOLDER,
      ...DAG_PROCESSOR_OPTIONS,
      'startup-timeout': STARTUP_TIMEOUT,
    },
    details: [
      'Times are in seconds, fractions allowed. Refuses an unmigrated database (run tsflow db migrate).',
      'tsflow dags list-import-errors shows the files that failed to import.',
    ],
  },
  async ({ values }, settings) => {
    const folder = dagsFolderOf(settings, values['dags-folder']);
    const options = dagProcessorOptions(values);
    const started = await startDaemon({
      settings,
      startupTimeout: values['startup-timeout'],
      runtime: { applicationName: 'tsflow-dag-processor', keepOpen: 2 },
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      start: async (runtime, cleanup) => {
        const processor = new DagProcessor({ database: runtime.database, folder, logger: runtime.logger }, options);
        cleanup.push('dag processor', () => processor.stop());
        await processor.start();
      },
    });
    if (!started) return 0;
    try {
      const signal = await started.received;
      started.runtime.logger.info({ signal }, 'shutting down');
      return 0;
    } finally {
      await started.close();
    }
  },
);

/**
 * `tsflow dag-parser`: the child a DAG processor forks to import DAG files (not listed in the
 * usage). It takes one list of files over the IPC channel, reports each file's DAGs there, and exits;
 * it exits at once too when its parent goes away, so a killed processor leaves no parser behind.
 */
export const dagParserCommand = defineCommand(
  {
    name: 'dag-parser',
    summary: 'imports DAG files for the DAG processor over an IPC channel (not run by hand)',
    options: {},
    hidden: true,
  },
  async () => {
    const send = process.send?.bind(process);
    if (!send || !process.connected) {
      throw new UsageError('tsflow dag-parser is started by the DAG processor over an IPC channel, not by hand; run tsflow dag-processor, or tsflow dags list to import the folder once');
    }
    process.on('disconnect', () => process.exit(0));
    // A Ctrl-C, or a SIGTERM sent to the whole process group, must not kill the parser mid-file: the
    // file would be blamed for it. The DAG processor stops its parsers itself (SIGKILL).
    process.on('SIGINT', () => undefined);
    process.on('SIGTERM', () => undefined);
    const request = await new Promise<ParseRequest>((resolve) => {
      const onMessage = (message: unknown): void => {
        if (!isParseRequest(message)) return;
        process.off('message', onMessage);
        resolve(message);
      };
      process.on('message', onMessage);
    });
    await parseInThisProcess(request.files, (message: ParseMessage) => new Promise<void>((resolve) => send(message, undefined, {}, () => resolve())));
    // DAG files may leave timers or sockets open: they must not keep this process alive.
    process.exit(0);
  },
);
