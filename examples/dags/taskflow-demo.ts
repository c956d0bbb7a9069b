import { BashOperator, dag, task, taskGroup, type TaskContext } from 'tsflow';

/*
 * The TaskFlow style: plain functions become tasks; calling one inside dag() creates the task and
 * returns a reference to its result (an XCom). Passing that reference to another task function makes
 * it run afterwards and receive the value — typed: `total` below is a number because `transform`
 * returns one. Run it: `node bin/tsflow.mjs standalone --dags-folder examples/dags --run taskflow_demo`.
 */

const extract = task({ taskId: 'extract', retries: 2, retryDelay: 5 }, async (context: TaskContext) => {
  context.log.info('reading the day\'s orders');
  return { day: context.ds, amounts: [12.5, 7.25, 30] };
});

const transform = task(function transform(context: TaskContext, orders: { day: string; amounts: number[] }) {
  const total = orders.amounts.reduce((sum, amount) => sum + amount, 0);
  context.log.info({ day: orders.day, total }, 'summed the orders');
  return total;
});

const load = task(function load(context: TaskContext, total: number, currency: string) {
  const line = `${total.toFixed(2)} ${currency}`;
  context.log.info(`loaded ${line}`);
  return line;
});

export default dag({ dagId: 'taskflow_demo', description: 'TaskFlow functions, a task group and a Bash task.', tags: ['example'] }, () => {
  const orders = extract();
  const report = taskGroup('report', { defaultArgs: { retries: 1 } }, () => {
    // Ids get the group's prefix: report.transform, report.load.
    load(transform(orders), 'EUR');
  });
  // A shell step after the whole group: its command is a template (Airflow's context names), its
  // stdout goes to the task log, its last line is its XCom.
  const archive = new BashOperator({
    taskId: 'archive',
    bashCommand: 'echo "archiving run {{ run_id }}"; echo archived-{{ ds_nodash }}',
    executionTimeout: { minutes: 1 },
  });
  report.setDownstream(archive);
});
