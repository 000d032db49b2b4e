/**
 * `npm run backfill`: the command's logic against fake transports (the deployed path cannot reach AWS here), its read
 * of the deployed environment's signalling parameter against a local stand-in for the SSM endpoint, and the run's
 * notification bookkeeping it relies on.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignallingParameter } from '../../lib/config/topics';
import { main, parseBackfillArgs, readSignalling } from '../../tools/backfill';
import {
  type KafkaLike,
  kafkaTransport,
  SignallingError,
  type SignalTransport,
  snapshotSignal,
} from '../../tools/lib/signalling';
import { SnapshotTracker } from '../../tools/local/runner/snapshots';

const notification = (id: string, type: string, additional_data: Record<string, string> = {}) => ({
  id,
  aggregate_type: 'Incremental Snapshot' as const,
  type,
  additional_data,
  timestamp: '1796242044119',
});

/** A fake kafkajs client: what was produced, and a way to deliver notifications to the consumer. */
function fakeKafka() {
  const produced: Array<{ topic: string; key: string; value: string }> = [];
  let deliver: ((value: unknown) => Promise<void>) | undefined;
  const subscribed: string[] = [];
  const kafka: KafkaLike = {
    producer: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      async send({ topic, messages }) {
        for (const m of messages) produced.push({ topic, ...m });
        // The connector answers: it scans the table and completes (under the signal's id).
        const signal = JSON.parse(messages[0]?.value ?? '{}');
        const table = signal.data['data-collections'][0];
        await deliver?.(notification(signal.id, 'STARTED'));
        await deliver?.(
          notification(signal.id, 'TABLE_SCAN_COMPLETED', { scanned_collection: table, total_rows_scanned: '42' }),
        );
        await deliver?.(notification(signal.id, 'COMPLETED'));
        return [];
      },
    }),
    consumer: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      async subscribe({ topics }) {
        subscribed.push(...topics);
      },
      async run({ eachMessage }) {
        deliver = (value) => eachMessage({ message: { value: Buffer.from(JSON.stringify(value)) } });
      },
    }),
  };
  return { kafka, produced, subscribed };
}

const SIGNALLING: SignallingParameter = {
  bootstrapServers: 'b-1.example:9098',
  sources: [
    {
      name: 'shop',
      engine: 'postgresql',
      topicPrefix: 'shop',
      signalTopic: 'shop.signals',
      notificationTopic: 'shop.notifications',
    },
  ],
};

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) } };
}

describe('npm run backfill', () => {
  it.each([
    [[], 'name at least one table'],
    [['orders', '--bogus'], "Unknown option '--bogus'"],
    [['orders', '--timeout', 'soon'], '--timeout must be a positive number'],
    [['orders', '--source', 'shop'], '--source needs --env'],
  ])('rejects %j with a one-line reason and the usage, exit 2', async (argv, message) => {
    // Act
    const { err, io } = capture();
    const code = await main(argv, io);

    // Assert
    expect(code).toBe(2);
    expect(err.join('')).toContain(message);
    expect(err.join('')).toContain('usage: npm run backfill');
  });

  it('parses tables, --where, --env and --json', () => {
    expect(parseBackfillArgs(['orders', 'public.customers', '--where', 'id > 5', '--env', 'dev', '--json'])).toEqual({
      tables: ['orders', 'public.customers'],
      where: 'id > 5',
      env: 'dev',
      timeoutMs: 600_000,
      json: true,
    });
  });

  it('--where becomes an additional condition for every table', () => {
    expect(snapshotSignal(['public.a', 'public.b'], "x = 'y'", 'id-1')).toEqual({
      id: 'id-1',
      type: 'execute-snapshot',
      data: {
        'data-collections': ['public.a', 'public.b'],
        type: 'incremental',
        'additional-conditions': [
          { 'data-collection': 'public.a', filter: "x = 'y'" },
          { 'data-collection': 'public.b', filter: "x = 'y'" },
        ],
      },
    });
  });

  it('with --env: produces the signal to the signal topic keyed by the topic prefix and waits on the notification topic', async () => {
    // Arrange
    const { kafka, produced, subscribed } = fakeKafka();
    const { out, io } = capture();

    // Act
    const code = await main(['orders', '--env', 'dev', '--json'], {
      ...io,
      transport: () => kafkaTransport({ kafka, signalling: SIGNALLING }),
    });

    // Assert
    expect(code).toBe(0);
    expect(subscribed).toEqual(['shop.notifications']);
    expect(produced).toHaveLength(1);
    expect(produced[0]).toMatchObject({ topic: 'shop.signals', key: 'shop' });
    const signal = JSON.parse(produced[0]?.value ?? '{}');
    expect(signal).toMatchObject({ type: 'execute-snapshot', data: { 'data-collections': ['public.orders'] } });
    expect(JSON.parse(out.join(''))).toEqual({ id: signal.id, status: 'completed', tables: { 'public.orders': 42 } });
  });

  it('names the table that is not captured, in one line, exit 2, and sends nothing', async () => {
    // Arrange
    let sent = 0;
    const transport: SignalTransport = {
      target: 'a fake run',
      tables: async () => ['public.orders', 'public.customers'],
      defaultSchema: async () => 'public',
      send: async () => {
        sent++;
      },
      progress: async () => null,
      close: async () => undefined,
    };
    const { err, io } = capture();

    // Act
    const code = await main(['ordres'], { ...io, transport: async () => transport });

    // Assert
    expect(code).toBe(2);
    expect(sent).toBe(0);
    expect(err.at(-1)).toBe(
      'npm run backfill: unknown table public.ordres (captured: public.customers, public.orders)\n',
    );
  });

  it('without a local run, says so in one line, exit 2', async () => {
    // Act
    const { err, io } = capture();
    const before = process.env.CDC_SYNC_RUN_FILE;
    process.env.CDC_SYNC_RUN_FILE = '/nonexistent/run.json';
    const code = await main(['orders'], io).finally(() => {
      if (before === undefined) delete process.env.CDC_SYNC_RUN_FILE;
      else process.env.CDC_SYNC_RUN_FILE = before;
    });

    // Assert
    expect(code).toBe(2);
    expect(err).toEqual([
      'npm run backfill: no local run found (/nonexistent/run.json is missing): start one with npm start, or use --env\n',
    ]);
  });
});

describe('npm run backfill --env: the signalling parameter', () => {
  // SSM has no local emulator here: a local HTTP endpoint answers the SSM JSON protocol, behind the real SDK client
  // (its signing, its retries). Each test queues the answers the endpoint gives, in order.
  const seen: Array<{ headers: IncomingHttpHeaders; body: { Name?: string } }> = [];
  let answers: Array<{ status: number; body: unknown }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      seen.push({ headers: req.headers, body: JSON.parse(body) });
      const answer = answers.shift() ?? { status: 500, body: { __type: 'InternalServerError' } };
      res.writeHead(answer.status, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(answer.body));
    });
  });
  let endpoint = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  const ssm = () => ({ endpoint, credentials: { accessKeyId: 'local', secretAccessKey: 'local' } });
  const found = {
    status: 200,
    body: { Parameter: { Name: '/cdc-sync/dev/signalling', Value: JSON.stringify(SIGNALLING) } },
  };

  it("reads /cdc-sync/<env>/signalling with a signed GetParameter in the environment's region", async () => {
    // Arrange
    seen.length = 0;
    answers = [found];

    // Act
    const result = await readSignalling('dev', ssm());

    // Assert
    expect(result).toEqual({ region: 'eu-west-1', signalling: SIGNALLING });
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers['x-amz-target']).toBe('AmazonSSM.GetParameter');
    expect(seen[0]?.headers.authorization).toMatch(/Credential=local\/\d{8}\/eu-west-1\/ssm\/aws4_request/);
    expect(seen[0]?.body).toEqual({ Name: '/cdc-sync/dev/signalling' });
  });

  it('rides out throttling with the SDK standard retry mode', async () => {
    // Arrange
    seen.length = 0;
    answers = [{ status: 400, body: { __type: 'ThrottlingException', message: 'Rate exceeded' } }, found];

    // Act
    const result = await readSignalling('dev', ssm());

    // Assert
    expect(result.signalling).toEqual(SIGNALLING);
    expect(seen).toHaveLength(2);
  });

  it('names the parameter and the reason in one line when it cannot be read', async () => {
    // Arrange
    answers = [{ status: 400, body: { __type: 'ParameterNotFound', message: 'Parameter not found.' } }];

    // Act
    const reading = readSignalling('dev', ssm());

    // Assert
    await expect(reading).rejects.toThrow(SignallingError);
    await expect(reading).rejects.toThrow('cannot read /cdc-sync/dev/signalling in eu-west-1: Parameter not found.');
  });
});

describe('the run’s incremental snapshots', () => {
  it('a signal that joined a running snapshot completes when its tables were scanned, under the other id', () => {
    // Arrange
    const tracker = new SnapshotTracker();
    tracker.sent(snapshotSignal(['public.a'], undefined, 'first'), 'lane');
    tracker.notify(notification('first', 'STARTED', { data_collections: 'public.a' }));
    tracker.sent(snapshotSignal(['public.b'], undefined, 'second'), 'control');

    // Act
    tracker.notify(
      notification('first', 'TABLE_SCAN_COMPLETED', { scanned_collection: 'public.a', total_rows_scanned: '3' }),
    );
    const afterA = tracker.running();
    tracker.notify(
      notification('first', 'TABLE_SCAN_COMPLETED', { scanned_collection: 'public.b', total_rows_scanned: '5' }),
    );
    tracker.notify(notification('first', 'COMPLETED'));

    // Assert
    expect(afterA).toBe(1);
    expect(tracker.running()).toBe(0);
    expect(tracker.summary()).toEqual([
      { id: 'first', origin: 'lane', tables: { 'public.a': 3 }, status: 'completed' },
      { id: 'second', origin: 'control', tables: { 'public.b': 5 }, status: 'completed' },
    ]);
  });

  it('settled() waits for the completion, and an abort ends the wait too', async () => {
    // Arrange
    const tracker = new SnapshotTracker();
    tracker.sent(snapshotSignal(['public.a'], undefined, 's'), 'runner');
    let settled = false;
    const waiting = tracker.settled(5000).then(() => {
      settled = true;
    });

    // Act
    await new Promise((r) => setTimeout(r, 20));
    const before = settled;
    tracker.notify(notification('s', 'ABORTED'));
    await waiting;

    // Assert
    expect(before).toBe(false);
    expect(tracker.get('s')?.status).toBe('aborted');
  });
});
