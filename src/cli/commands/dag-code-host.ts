import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { silentLogger } from '../../common/logger.ts';
import { isFromDagCode, isToDagCode, type FromDagCode, type ToDagCode } from '../../dag-code/protocol.ts';
import { buildStartDeferral, planNextRun } from '../../scheduler/start-from-trigger.ts';
import { isDag, type Dag } from '../../sdk/dag.ts';
import { DAGS_FOLDER, dagsFolderOf } from '../common-options.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/**
 * The hidden `dag-code-host` command: the child process a scheduler asks to run DAG code it needs (building a
 * `startFromTrigger` sensor's trigger), so that code never runs in the scheduler. Hidden; forked over
 * IPC. It exits when the scheduler lets go of the channel.
 */
export const dagCodeHostCommand = defineCommand(
  {
    name: 'dag-code-host',
    summary: "runs DAG code for a scheduler over an IPC channel (forked by the scheduler, not run by hand)",
    options: { 'dags-folder': DAGS_FOLDER },
    hidden: true,
  },
  async ({ values }, settings) => {
    const send = process.send?.bind(process);
    if (!send || !process.connected) throw new UsageError('this command is started by a scheduler over an IPC channel, not by hand');
    const folder = path.resolve(dagsFolderOf(settings, values['dags-folder']));
    const imported = new Map<string, { mtimeMs: number; dags: Map<string, Dag> }>();
    const reply = (message: FromDagCode): void => {
      if (isFromDagCode(message) && process.connected) send(message, undefined, {}, () => undefined);
    };
    const handle = async (message: ToDagCode): Promise<void> => {
      const { id, request } = message;
      try {
        const file = path.resolve(request.fileloc);
        if (!file.startsWith(`${folder}${path.sep}`)) throw new Error(`${file} is not in the DAG folder ${folder}`);
        const { mtimeMs } = await stat(file);
        let entry = imported.get(file);
        if (entry && entry.mtimeMs !== mtimeMs) return reply({ id, ok: false, stale: true });
        if (!entry) {
          const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
          const dags = new Map<string, Dag>();
          for (const value of Object.values(module)) if (isDag(value)) dags.set(value.dagId, value);
          entry = { mtimeMs, dags };
          imported.set(file, entry);
        }
        const dag = entry.dags.get(request.dagId);
        if (message.type === 'next-run') return reply({ id, ok: true, result: planNextRun(dag, message.request) ?? null });
        reply({ id, ok: true, result: buildStartDeferral(dag?.tasks.get(message.request.taskId), message.request, silentLogger()) ?? null });
      } catch (error) {
        reply({ id, ok: false, error: error instanceof Error ? error.message : String(error) });
      }
    };
    process.on('message', (message) => {
      if (isToDagCode(message)) void handle(message);
    });
    await new Promise<void>((resolve) => process.once('disconnect', resolve));
    setTimeout(() => process.exit(0), 500).unref();
    return 0;
  },
);
