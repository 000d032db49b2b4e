/**
 * `npm run status`: the command line, a deployed environment through mocked AWS clients (printed as a table, as one
 * JSON object, and served as the page), and a local run through a tiny server that answers a StatusReport at
 * /api/status the way `npm start`'s page does.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { ListConnectorsCommand } from '@aws-sdk/client-kafkaconnect';
import { GetQueueAttributesCommand, GetQueueUrlCommand } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import { main, parseStatusArgs } from '../../tools/status/cli';
import { type StatusReport, StatusReportSchema } from '../../tools/status/report';
import { throwawayDir } from '../support/scratch';
import { mockedStatusClients } from '../support/status';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
}

/** Mocked clients of a dev environment: both connectors, one RUNNING, one FAILED; a DLQ with letters; an alarm. */
function mockedAws() {
  const { clients, mocks } = mockedStatusClients();
  mocks.kafkaConnect.on(ListConnectorsCommand).resolves({
    connectors: [
      { connectorName: 'cdc-sync-dev-orders', connectorState: 'RUNNING' },
      { connectorName: 'cdc-sync-dev-inventory', connectorState: 'FAILED' },
    ],
  });
  mocks.sqs
    .on(GetQueueUrlCommand)
    .callsFake((input: { QueueName: string }) => ({ QueueUrl: `https://q/${input.QueueName}` }));
  mocks.sqs.on(GetQueueAttributesCommand).callsFake((input: { QueueUrl: string }) => ({
    Attributes: { ApproximateNumberOfMessages: input.QueueUrl.includes('audit') ? '12' : '0' },
  }));
  mocks.cloudWatch.on(DescribeAlarmsCommand).resolves({
    MetricAlarms: [{ AlarmName: 'cdc-sync-dev-audit-dlq-Queue-Message-Count-Max-Critical', StateValue: 'ALARM' }],
  });
  // CloudFormation and S3 answer nothing useful: the screen says the failure bucket is unknown, and goes on.
  return () => clients;
}

function report(overrides: Partial<StatusReport> = {}): StatusReport {
  return {
    version: 1,
    environment: 'local',
    generatedAt: '2026-05-04T12:00:00.000Z',
    phase: 'running',
    sources: [
      {
        name: 'shop',
        state: 'streaming',
        detail: null,
        position: '0/16B374D8',
        freshnessMs: 850,
        snapshot: null,
        emitted: 1234,
      },
    ],
    lanes: [
      {
        lane: 'warehouse',
        recordsPerSec: 42,
        lag: 3,
        freshnessMs: 2500,
        latencyMs: { p50: 120, p99: 480 },
        processed: 1200,
        duplicates: 0,
        skipped: 4,
        deadLettered: 0,
        retried: 0,
        lastError: null,
        dlqDepth: null,
      },
    ],
    series: [],
    schemaChanges: [],
    alarms: [],
    problems: [],
    verdict: null,
    ...overrides,
  };
}

/** A local run's status page: serves `body` at /api/status. */
async function fakeRunPage(body: unknown): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/api/status') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/** A run file (`.local/run.json`) in a directory of its own, with what `npm start` would write. */
function runFile(content: Record<string, unknown> | null, statusFile?: Record<string, unknown>): string {
  const dir = join(throwawayDir('status-'), '.local');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'run.json');
  const run = { pid: 1, url: 'http://127.0.0.1:1', token: 't', schema: 'public', startedAt: '2026-05-04T12:00:00Z' };
  if (content !== null) writeFileSync(file, JSON.stringify({ ...run, ...content }));
  if (statusFile) writeFileSync(join(dir, 'status.json'), JSON.stringify(statusFile));
  return file;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((done) => s.close(done))));
});

describe('npm run status: the command line', () => {
  it.each([
    [['--serve'], '--serve needs --env'],
    [['--env', 'dev', '--port', '8080'], '--port needs --serve'],
    [['--env', 'dev', '--window', 'soon'], '--window must be a whole number'],
    [['--window', '5'], '--window needs --env'],
    [['--bogus'], 'unknown option --bogus'],
    [['dev'], 'unexpected argument dev'],
  ])('rejects %j with a one-line reason and the usage, exit 2', async (argv, message) => {
    const { err, io } = capture();

    const code = await main(argv, io);

    expect(code).toBe(2);
    expect(err.join('')).toContain(message);
    expect(err.join('')).toContain('usage: npm run status');
  });

  it('parses a deployed environment served on a port', () => {
    expect(parseStatusArgs(['--env', 'prod', '--serve', '--port', '8123', '--window', '60'])).toEqual({
      env: 'prod',
      serve: true,
      port: 8123,
      windowMinutes: 60,
      json: false,
    });
  });

  it('names the valid environments for an unknown one, exit 2', async () => {
    const { err, io } = capture();

    const code = await main(['--env', 'qa'], { ...io, clients: mockedAws() });

    expect(code).toBe(2);
    expect(err.join('')).toContain('Valid environments: dev, staging, prod');
  });
});

describe('npm run status -- --env', () => {
  it('--json prints exactly one status report', async () => {
    const { out, io } = capture();

    const code = await main(['--env', 'dev', '--json'], { ...io, clients: mockedAws(), sleep: async () => {} });

    expect(code).toBe(0);
    const text = out.join('');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    const parsed = StatusReportSchema.parse(JSON.parse(text));
    expect(parsed).toMatchObject({ environment: 'dev', phase: 'live' });
    expect(parsed.sources.map((s) => s.state)).toEqual(['streaming', 'failed']);
    expect(parsed.lanes.find((l) => l.lane === 'audit')?.dlqDepth).toBe(12);
  });

  it('prints one screen: sources, lanes, dead-letter queues, failed batches, alarms', async () => {
    const { out, io } = capture();

    const code = await main(['--env', 'dev', '--window', '15'], { ...io, clients: mockedAws(), sleep: async () => {} });

    expect(code).toBe(0);
    const screen = out.join('');
    expect(screen).toMatch(/^cdc-sync dev — live — .*, counts over the last 15 min\n/);
    expect(screen).toMatch(/cdc-sync-dev-inventory\s+failed/);
    expect(screen).toMatch(/\naudit\s+0\.0\s+–\s+–/);
    expect(screen).toMatch(/audit\s+cdc-sync-dev-audit-dead-letters\s+12 message\(s\)/);
    expect(screen).toContain('FAILED BATCHES  unknown');
    expect(screen).toContain('cdc-sync-dev-audit-dlq-Queue-Message-Count-Max-Critical: ALARM');
    expect(screen.split('\n').length).toBeLessThan(40);
  });

  it('--serve serves the page and its report from AWS until stopped', async () => {
    const { out, io } = capture();
    let stop = () => {};
    const stopped = new Promise<void>((done) => {
      stop = done;
    });

    const running = main(['--env', 'dev', '--serve'], { ...io, clients: mockedAws(), stop: stopped });
    await expect.poll(() => out.join(''), { timeout: 10_000 }).toContain('http://127.0.0.1:');
    const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(out.join(''))?.[0] as string;
    const answer = await fetch(`${url}api/status`);
    const page = await fetch(url);
    stop();

    expect(answer.status).toBe(200);
    expect(StatusReportSchema.parse(await answer.json())).toMatchObject({ environment: 'dev', phase: 'live' });
    expect(page.status).toBe(200);
    expect(await running).toBe(0);
  });
});

describe('npm run status (a local run)', () => {
  it('prints the report the run serves at <statusUrl>api/status', async () => {
    const { url, server } = await fakeRunPage(report());
    servers.push(server);
    const { out, io } = capture();

    const code = await main([], { ...io, runFile: runFile({ statusUrl: url }) });

    expect(code).toBe(0);
    const screen = out.join('');
    expect(screen).toMatch(/^cdc-sync local — running — /);
    expect(screen).toMatch(/shop\s+streaming\s+850 ms\s+1,234/);
    expect(screen).toMatch(/warehouse\s+42\s+3\s+2\.5 s\s+120\s+480\s+1,200/);
  });

  it('--json prints exactly one object, in a real process started by npm run status', async () => {
    const { url, server } = await fakeRunPage(report({ phase: 'verifying' }));
    servers.push(server);
    const file = runFile({ statusUrl: url });

    const { stdout, stderr } = await promisify(execFile)('npm', ['run', 'status', '--', '--json'], {
      env: { ...process.env, CDC_SYNC_RUN_FILE: file },
      timeout: 60_000,
    });

    expect(stderr).toBe('');
    expect(stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(StatusReportSchema.parse(JSON.parse(stdout))).toEqual(report({ phase: 'verifying' }));
  });

  it('finds the page through .local/status.json when the run file has no statusUrl', async () => {
    const { url, server } = await fakeRunPage(report());
    servers.push(server);
    const { out, io } = capture();

    const code = await main(['--json'], { ...io, runFile: runFile(null, { pid: 1, url, startedAt: 'x' }) });

    expect(code).toBe(0);
    expect(JSON.parse(out.join(''))).toMatchObject({ environment: 'local' });
  });

  it('says in one line that no run is going on, exit 2', async () => {
    const { out, err, io } = capture();

    const code = await main([], { ...io, runFile: runFile(null) });

    expect(code).toBe(2);
    expect(out).toEqual([]);
    expect(err.join('')).toMatch(
      /^npm run status: no local run is going on \(.*\): start one with npm start, or use --env\n$/,
    );
  });

  it('says no run is going on when the announced page does not answer (a run that ended), exit 2', async () => {
    const { url, server } = await fakeRunPage(report());
    await new Promise((done) => server.close(done));
    const { err, io } = capture();

    const code = await main([], { ...io, runFile: runFile({ statusUrl: url }) });

    expect(code).toBe(2);
    expect(err.join('')).toContain('no local run is going on (nothing answers at');
  });

  it('refuses an answer that is not a status report, exit 1', async () => {
    const { url, server } = await fakeRunPage({ hello: 'world' });
    servers.push(server);
    const { err, io } = capture();

    const code = await main([], { ...io, runFile: runFile({ statusUrl: url }) });

    expect(code).toBe(1);
    expect(err.join('')).toContain('not a status report');
  });
});
