import { expect } from 'chai';
import { api } from '../bench/scenarios/api.ts';

/* bench:api in smoke mode (tiny sizes, a fraction of a second per endpoint): it runs and measures — never how fast. */
describe('benchmarks, smoke mode: api', function () {
  this.timeout(120_000);

  it('loads every list endpoint through a real api-server process without errors', async () => {
    const [result] = await api.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    const figures = result?.figures ?? {};
    for (const name of ['dags', 'runs', 'runsAllFiltered', 'taskInstances', 'pools', 'jobs', 'health']) {
      expect(figures[`${name}PerSecond`], name).to.be.greaterThan(0);
      expect(figures[`${name}P99Ms`], name).to.be.at.least(figures[`${name}P50Ms`] as number);
      expect(figures[`${name}Errors`], name).to.equal(0);
    }
    expect(result?.targets).to.deep.equal([]);
  });
});
