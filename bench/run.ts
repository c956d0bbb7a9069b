import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { burst } from './scenarios/burst.ts';
import { due } from './scenarios/due.ts';
import { eventWrite } from './scenarios/event-write.ts';
import { pickup } from './scenarios/pickup.ts';
import { spread } from './scenarios/spread.ts';
import { hold } from './scenarios/hold.ts';
import { resume } from './scenarios/resume.ts';
import { failover } from './scenarios/failover.ts';
import { chaos } from './scenarios/chaos.ts';
import { parse } from './scenarios/parse.ts';
import { graphileExecutor } from './scenarios/graphile-executor.ts';
import { executorIdle } from './scenarios/executor-idle.ts';
import { executorResume } from './scenarios/executor-resume.ts';
import { schedule } from './scenarios/schedule.ts';
import { waits } from './scenarios/waits.ts';
import { api } from './scenarios/api.ts';
import { waitsPage } from './scenarios/waits-page.ts';
import { events } from './scenarios/events.ts';
import type { Scenario, ScenarioResult } from './lib/scenario.ts';
import { ms } from './lib/stats.ts';

const SCENARIOS: Scenario[] = [pickup, due, spread, eventWrite, burst, hold, resume, failover, chaos, parse, schedule, graphileExecutor, executorIdle, executorResume, waits, api, waitsPage, events];

/**
 * `npm run bench [-- scenario...] [--smoke]`: runs the scenarios, prints a table per result and the
 * machine, and writes bench/results/<scenario>.json. TSFLOW_BENCH_DATABASE_URL uses that server.
 */
async function main(argv: string[]): Promise<number> {
  const smoke = argv.includes('--smoke');
  const names = argv.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    console.error(`bench: unknown scenario ${unknown.join(', ')}; choose from ${SCENARIOS.map((s) => s.name).join(', ')}`);
    return 2;
  }
  const chosen = names.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => names.includes(s.name));
  const adminUrl = process.env['TSFLOW_BENCH_DATABASE_URL'] || undefined;
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  const outDir = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(outDir, { recursive: true });
  let missed = 0;
  for (const scenario of chosen) {
    const results = await scenario.run({ adminUrl, smoke, log: (line) => console.log(`  … ${line}`) });
    for (const result of results) {
      print(result);
      missed += result.targets.filter((t) => !t.met).length;
    }
    await writeFile(`${outDir}${scenario.name}.json`, `${JSON.stringify({ machine: machine(), results }, null, 2)}\n`);
  }
  return missed > 0 ? 1 : 0;
}

function machine() {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` };
}

function print(result: ScenarioResult): void {
  console.log(`\n## ${result.scenario}: ${result.title}`);
  console.log(`settings: ${Object.entries(result.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  const server = Object.entries(result.server.settings).map(([k, v]) => `${k}=${v}`).join(', ');
  console.log(`PostgreSQL ${result.server.version}${server ? ` (${server})` : ''}; commit times: ${result.server.commitTimestamps ? 'pg_xact_commit_timestamp' : 'scheduled_at'}`);
  for (const [name, value] of Object.entries(result.figures)) {
    // The unit is in the name: …Ms, …Us, …Seconds, …Mb, …Percent, …PerSecond; anything else is a count.
    const text = name.endsWith('Ms')
      ? ms(value)
      : name.endsWith('Us')
        ? `${value.toFixed(0)} µs`
        : name.endsWith('Seconds')
          ? `${value.toFixed(2)} s`
      : name.endsWith('Mb')
        ? `${value.toFixed(0)} MB`
        : name.endsWith('Percent')
          ? `${value.toFixed(2)} %`
          : name.endsWith('PerSecond')
            ? `${value.toFixed(0)} /s`
            : value.toFixed(0);
    console.log(`  ${name.padEnd(24)} ${text}`);
  }
  for (const t of result.targets) console.log(`  ${t.met ? 'MET ' : 'MISS'} ${t.what}: ${t.actual} (target ${t.target})`);
}

process.exitCode = await main(process.argv.slice(2));
