import { expect } from 'chai';
import { burst } from '../bench/scenarios/burst.ts';
import { chaos } from '../bench/scenarios/chaos.ts';
import { due } from '../bench/scenarios/due.ts';
import { eventWrite } from '../bench/scenarios/event-write.ts';
import { executorIdle } from '../bench/scenarios/executor-idle.ts';
import { executorResume } from '../bench/scenarios/executor-resume.ts';
import { failover } from '../bench/scenarios/failover.ts';
import { graphileExecutor } from '../bench/scenarios/graphile-executor.ts';
import { hold } from '../bench/scenarios/hold.ts';
import { parse } from '../bench/scenarios/parse.ts';
import { pickup } from '../bench/scenarios/pickup.ts';
import { resume } from '../bench/scenarios/resume.ts';
import { schedule } from '../bench/scenarios/schedule.ts';
import { spread } from '../bench/scenarios/spread.ts';
import { waits } from '../bench/scenarios/waits.ts';
import type { Scenario, ScenarioResult } from '../bench/lib/scenario.ts';

/*
 * Every benchmark scenario, in its small smoke mode, on the test server: so none can rot. These check
 * that each runs end to end and measures something sane — never how fast (that is npm run bench).
 */
describe('benchmarks, smoke mode', function () {
  this.timeout(120_000);

  async function runSmoke(scenario: Scenario): Promise<ScenarioResult> {
    const results = await scenario.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    expect(results).to.have.length.greaterThan(0);
    const [result] = results as [ScenarioResult];
    for (const [name, value] of Object.entries(result.figures)) expect(Number.isFinite(value), `${result.scenario}.${name} = ${value}`).to.equal(true);
    expect(result.targets, 'smoke mode judges no targets').to.deep.equal([]);
    return result;
  }

  it('pickup', async () => {
    const { figures } = await runSmoke(pickup);
    expect(figures['pickupP50Ms']).to.be.greaterThan(0);
  });

  it('due (and graphile-worker beside it)', async () => {
    const results = await due.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    expect(results.map((r) => r.scenario)).to.deep.equal(['due', 'due-graphile']);
    for (const result of results) for (const value of Object.values(result.figures)) expect(Number.isFinite(value)).to.equal(true);
    expect(results[0]?.figures['dueP50Ms']).to.be.greaterThan(0);
  });

  it('spread', async () => {
    const { figures } = await runSmoke(spread);
    expect(figures['latenessP99Ms']).to.be.at.least(figures['latenessP50Ms'] as number);
    expect(figures['pgCpuSeconds']).to.be.greaterThan(0);
  });

  it('event-write', async () => {
    const { figures } = await runSmoke(eventWrite);
    expect(figures['batch1P50Ms']).to.be.greaterThan(0);
  });

  it('burst', async () => {
    const { figures } = await runSmoke(burst);
    expect(figures['eventsPerSecond']).to.be.greaterThan(0);
  });

  it('chaos: no daemon exits on its own, no task is lost or resumed twice, through kills, terminations and a restart', async () => {
    const { figures, settings } = await runSmoke(chaos);
    expect(settings['restartServer'], 'the drill restarted PostgreSQL').to.equal(1);
    expect([figures['daemonsExitedOnTheirOwn'], figures['lost'], figures['resumedTwiceInOneTry']]).to.deep.equal([0, 0, 0]);
  });

  it('hold', async () => {
    const { figures } = await runSmoke(hold);
    expect(figures['rssIdleMb']).to.be.greaterThan(0);
  });

  it('resume', async () => {
    const { figures, settings } = await runSmoke(resume);
    expect(settings['failedTasks']).to.equal(0);
    expect(figures['resumeP50Ms']).to.be.greaterThan(0);
  });

  it('failover', async () => {
    const { figures } = await runSmoke(failover);
    expect(figures['resumedTwice']).to.equal(0);
    expect(figures['stillDeferred']).to.equal(0);
  });

  it('parse', async () => {
    const { figures } = await runSmoke(parse);
    expect(figures['firstParseMs']).to.be.greaterThan(0);
    expect(figures['editToRowP50Ms']).to.be.greaterThan(0);
  });

  it('schedule: one and two schedulers create every run once', async () => {
    const results = await schedule.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    expect(results.map((r) => r.scenario)).to.deep.equal(['schedule', 'schedule-2']);
    for (const { figures } of results) {
      for (const [name, value] of Object.entries(figures)) expect(Number.isFinite(value), name).to.equal(true);
      // 5 DAGs × 2 measured moments in smoke mode.
      expect([figures['runsCreated'], figures['duplicates'], figures['missing']]).to.deep.equal([10, 0, 0]);
      expect(figures['latenessP99Ms']).to.be.at.least(figures['latenessP50Ms'] as number);
    }
  });

  /** Every result of a scenario that measures several set-ups: the ones expected, each figure a finite number, no target judged. */
  async function runSmokeAll(scenario: Scenario, expected: string[]): Promise<ScenarioResult[]> {
    const results = await scenario.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    expect(results.map((r) => r.scenario)).to.deep.equal(expected);
    for (const result of results) {
      for (const [name, value] of Object.entries(result.figures)) expect(Number.isFinite(value), `${result.scenario}.${name} = ${value}`).to.equal(true);
      expect(result.targets, 'smoke mode judges no targets').to.deep.equal([]);
    }
    return results;
  }

  it('executor: a burst through the graphile executor and the LocalExecutor', async () => {
    const results = await runSmokeAll(graphileExecutor, ['executor', 'executor']);
    for (const { figures } of results) expect(figures).to.include.keys('tasksPerSecond', 'queuedToRunningP99Ms');
  });

  it('executor-idle: one task at a time, with where the time goes', async () => {
    const [graphile, local] = (await runSmokeAll(executorIdle, ['executor-idle', 'executor-idle-local'])) as [ScenarioResult, ScenarioResult];
    expect(graphile.figures).to.include.keys('queuedToRunningP50Ms', 'queuedToRunningP99Ms', 'lockedToClaimedP50Ms', 'claimedToRunningP50Ms');
    expect(graphile.figures).to.satisfy((f: Record<string, number>) => 'commitToLockedP50Ms' in f || 'queuedToLockedP50Ms' in f);
    expect(local.figures).to.include.keys('queuedToRunningP50Ms', 'queuedToRunningP99Ms');
  });

  it('executor-resume: due → executeComplete through a tsflow worker and the LocalExecutor', async () => {
    const results = await runSmokeAll(executorResume, ['executor-resume', 'executor-resume-local']);
    for (const { figures, settings } of results) {
      expect(settings['failedTasks']).to.equal(0);
      expect(figures).to.include.keys('resumeP50Ms', 'resumeP99Ms', 'dueToScheduledP50Ms', 'scheduledToQueuedP50Ms', 'queuedToStartedP50Ms');
    }
    expect(results[0]?.figures).to.include.keys('queuedToLockedP50Ms', 'lockedToClaimedP50Ms', 'claimedToStartedP50Ms');
  });

  it('waits: pages read task_instance through an index, deep ones too', async () => {
    const { figures } = await runSmoke(waits);
    // 2,000 rows: a filter on the trigger may be planned as a scan; at 100,000 none is (npm run bench:waits).
    for (const name of ['first', 'deep', 'createdDeep', 'dagDeep']) expect(figures[`${name}IndexUsed`], name).to.equal(1);
    expect([figures['firstTotal'], figures['firstTotalExact']]).to.deep.equal([2000, 1]);
  });
});
