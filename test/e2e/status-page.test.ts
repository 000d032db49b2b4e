/**
 * The live status page of `npm start`, in a real browser (Debian's Chromium driven by playwright-core, no browser
 * download): during a short run the page's numbers are the JSON endpoint's, the charts receive points, a sink going
 * down (the run's own Redis stopped mid-run) shows on the page, and the verdict appears at the end; with --keep the page
 * stays until Ctrl-C. Screenshots of the running and finished page go to test-artifacts/ (git-ignored).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatAge, formatCount } from '../../tools/status/format';
import { type StatusReport, StatusReportSchema } from '../../tools/status/report';
import { spawnStart } from './support';

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const RUN_TIMEOUT = 240_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Debian's Chromium (installed by .ci/run when missing). */
function chromiumPath(): string {
  for (const path of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']) {
    if (path && existsSync(path)) return path;
  }
  throw new Error('Chromium not found: install Debian package chromium (`.ci/run` does) or set CHROMIUM_PATH');
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A Redis of this test's own (stopping the machine's would fail the tests running beside it). */
function startRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
}

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** The lanes table as the page shows it: field → cell text, per lane. */
async function laneCells(page: Page): Promise<Record<string, Record<string, string>>> {
  return page.$$eval('#lanes tbody tr[data-lane]', (rows) =>
    Object.fromEntries(
      rows.map((row) => [
        row.getAttribute('data-lane'),
        Object.fromEntries(
          [...row.querySelectorAll('td[data-field]')].map((td) => [td.getAttribute('data-field'), td.textContent]),
        ),
      ]),
    ),
  );
}

/** What the lanes table must show for a report. */
function expectedCells(report: StatusReport): Record<string, Record<string, string>> {
  return Object.fromEntries(
    report.lanes.map((l) => [
      l.lane,
      {
        recordsPerSec: formatCount(l.recordsPerSec),
        lag: formatCount(l.lag),
        freshness: formatAge(l.freshnessMs),
        p50: formatCount(l.latencyMs?.p50),
        p99: formatCount(l.latencyMs?.p99),
        processed: formatCount(l.processed),
        duplicates: formatCount(l.duplicates),
        skipped: formatCount(l.skipped),
        deadLettered: formatCount(l.deadLettered),
        retried: formatCount(l.retried),
        dlqDepth: formatCount(l.dlqDepth),
      },
    ]),
  );
}

describe('npm start status page', () => {
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
    dir = await mkdtemp(join(tmpdir(), 'cdc-sync-status-'));
    await mkdir(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'shows every lane’s numbers as the endpoint gives them, charts, a sink failure and the final verdict',
    async () => {
      // Arrange: a run with its own Redis, kept (so the page stays after the run), in a directory of its own
      const redisPort = await freePort();
      let redis = startRedis(redisPort);
      const run = spawnStart(
        ['--duration', '10', '--rate', '150', '--seed-rows', '40', '--status-port', '0', '--keep'],
        {
          cwd: dir,
          env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}` },
        },
      );
      try {
        const url = await until(
          'the status page address',
          async () => run.output.stderr.match(/status page: (\S+)/)?.[1],
        );
        const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
        await page.goto(url);

        // Act / Assert: while the workload runs, the page renders what /api/status answered, and charts get points
        await until(
          'the workload',
          async () =>
            (await page.getAttribute('body', 'data-phase')) === 'running' &&
            (await page.evaluate(() =>
              (globalThis as unknown as { statusReport?: StatusReport }).statusReport?.lanes.some(
                (l) => l.processed > 0,
              ),
            )),
        );
        await sleep(2500);
        const shown = await page.evaluate(() => (globalThis as unknown as { statusReport: StatusReport }).statusReport);
        expect(StatusReportSchema.parse(shown)).toEqual(shown);
        expect(await laneCells(page)).toEqual(expectedCells(shown));
        expect(shown.lanes.map((l) => l.lane).sort()).toEqual(['audit', 'cache', 'warehouse']);
        const points = await page.evaluate(
          () => (globalThis as unknown as { statusCharts: { points: Record<string, number> } }).statusCharts.points,
        );
        expect(points.rate).toBeGreaterThan(2);
        expect(await page.locator('#chart-latency canvas').count()).toBe(1);
        expect(await page.locator('[data-source="pg"] [data-field="state"]').textContent()).toBe('streaming');
        await page.screenshot({ path: join(ARTIFACTS, 'status-page-running.png'), fullPage: true });

        // Act: the cache's Redis goes away for a few seconds
        redis.kill('SIGKILL');
        await until(
          'the cache lane failing on the page',
          async () => (await page.locator('[data-lane-error="cache"]').count()) > 0,
          30_000,
        );
        const problem = await page.locator('#problems li.bad').first().textContent();
        redis = startRedis(redisPort);

        // Assert: the failure was on the page, and the run finishes with a verdict per sink and table
        expect(problem).toMatch(/^cache: /);
        await until('the verdict', async () => (await page.getAttribute('body', 'data-phase')) === 'finished', 120_000);
        await sleep(1200); // one more poll after the last render
        const final = StatusReportSchema.parse(await (await fetch(`${url}api/status`)).json());
        expect(await laneCells(page)).toEqual(expectedCells(final));
        expect(final.verdict?.checks.length).toBeGreaterThan(5);
        expect(await page.locator('#verdict').textContent()).toBe(
          final.verdict?.consistent ? 'CONSISTENT' : 'INCONSISTENT',
        );
        expect(await page.locator('#verdict-table tbody tr').count()).toBe(final.verdict?.checks.length);
        expect(final.verdict?.checks.find((c) => c.sink === 'warehouse' && c.table === 'pg.public.orders')?.ok).toBe(
          true,
        );
        await page.screenshot({ path: join(ARTIFACTS, 'status-page-finished.png'), fullPage: true });

        // Act: --keep keeps the page until Ctrl-C
        const exitCode = run.exit.then((r) => r.code);
        expect((await fetch(`${url}api/status`)).status).toBe(200);
        run.child.kill('SIGINT');

        // Assert
        expect(await exitCode).toBe(130);
        await expect(fetch(`${url}api/status`)).rejects.toThrow();
      } finally {
        run.child.kill('SIGKILL');
        redis.kill('SIGKILL');
        try {
          execFileSync('redis-cli', ['-p', String(redisPort), 'shutdown', 'nosave'], { stdio: 'ignore' });
        } catch {}
      }
    },
    RUN_TIMEOUT,
  );
});
