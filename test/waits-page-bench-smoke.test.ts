import { expect } from 'chai';
import { waitsPage } from '../bench/scenarios/waits-page.ts';
import { findChromium } from './support/browser.ts';

/* bench:waits-page in smoke mode (2,000 waits, a few calls): it runs and measures — never how fast. */
describe('benchmarks, smoke mode: waits-page', function () {
  this.timeout(180_000);

  it('times GET /api/v1/triggers through a real api-server process, and the Waits page when a Chromium is found', async () => {
    const [result] = await waitsPage.run({ adminUrl: process.env['TSFLOW_TEST_ADMIN_URL'], smoke: true, log: () => undefined });
    const figures = result?.figures ?? {};
    for (const name of ['api', 'apiDeep', 'apiDag']) {
      expect(figures[`${name}FirstByteP50Ms`], name).to.be.greaterThan(0);
      expect(figures[`${name}FullP99Ms`], name).to.be.at.least(figures[`${name}FirstByteP99Ms`] as number);
    }
    if (findChromium()) {
      expect(figures['pageRenderedP50Ms']).to.be.greaterThan(figures['pageFirstByteP50Ms'] as number);
    } else {
      expect(String(result?.settings['browser'])).to.include('browser tests skipped');
    }
  });
});
