import { TaskWorker } from '../../executors/task-worker.ts';
import { isToWorker, type FromWorker } from '../../executors/worker-protocol.ts';
import { UsageError } from '../settings.ts';
import { defineCommand } from '../usage.ts';

/** If the task leaves timers or sockets behind, the process still ends this long after the worker stopped. */
const EXIT_GRACE_MS = 2000;

/**
 * `tsflow task-worker`: a LocalExecutor worker process (not listed in the usage; it is forked by the
 * executor). It takes its configuration and work over the IPC channel. It never outlives the
 * executor: when the channel closes (the executor's process died or let go) it stops its task,
 * records the try, and exits. SIGTERM does the same; SIGINT is ignored, because a Ctrl-C in a terminal
 * reaches the whole process group and the executor decides how its workers stop.
 */
export const taskWorkerCommand = defineCommand(
  {
    name: 'task-worker',
    summary: 'a LocalExecutor worker process, forked by the executor over an IPC channel (not run by hand)',
    options: {},
    hidden: true,
  },
  async () => {
    const send = process.send?.bind(process);
    if (!send || !process.connected) {
      throw new UsageError('tsflow task-worker is started by the LocalExecutor (or by a tsflow worker) over an IPC channel, not by hand; to run one task instance use tsflow tasks run DAG TASK RUN_ID');
    }
    const worker = new TaskWorker((message: FromWorker) => {
      if (process.connected) send(message, undefined, {}, () => undefined);
    });
    const onMessage = (message: unknown): void => {
      if (isToWorker(message)) worker.handle(message);
    };
    const onDisconnect = (): void => void worker.stop('the executor that started this worker is gone');
    const onTerm = (): void => void worker.stop('SIGTERM');
    const onInt = (): void => undefined;
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onInt);
    try {
      await worker.stopped;
    } finally {
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      if (process.connected) process.disconnect();
      setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
    }
    return 0;
  },
);
