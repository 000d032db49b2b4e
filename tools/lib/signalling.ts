/**
 * How `npm run backfill` reaches a connector: a local `npm start` through its control endpoint, or a deployed
 * environment through the connector's Kafka signal channel and notification topic. Both behind one port, so the
 * command's logic is tested with a fake.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SnapshotSignal } from '../../functions/core/types';
import type { SignallingParameter } from '../../lib/config/topics';
import type { RunFile } from '../local/runner/control';
import type { IncrementalSnapshotSummary } from '../local/runner/snapshots';

/** What the command needs to know about a snapshot while it waits: the capture's or connector's progress. */
export type SnapshotProgress = Pick<IncrementalSnapshotSummary, 'tables' | 'status'>;

/** A connector that takes signals. */
export interface SignalTransport {
  /** Where the signal goes, for messages. */
  readonly target: string;
  /** Tables the connector captures (`schema.table`), or null when it cannot say (then no table is refused here). */
  tables(): Promise<string[] | null>;
  /** The schema bare table names are resolved in. */
  defaultSchema(): Promise<string>;
  send(signal: SnapshotSignal): Promise<void>;
  /** The snapshot's progress so far (null: nothing reported yet). */
  progress(id: string): Promise<SnapshotProgress | null>;
  close(): Promise<void>;
}

/** A problem the user can fix (no run found, unknown table): one line, exit code 2. */
export class SignallingError extends Error {
  override readonly name = 'SignallingError';
  readonly code = 'SIGNALLING';
  readonly retryable = false;
}

/** An execute-snapshot signal (incremental) for tables, with one filter applied to each (`--where`). */
export function snapshotSignal(tables: readonly string[], where?: string, id: string = randomUUID()): SnapshotSignal {
  return {
    id,
    type: 'execute-snapshot',
    data: {
      'data-collections': [...tables],
      type: 'incremental',
      ...(where ? { 'additional-conditions': tables.map((t) => ({ 'data-collection': t, filter: where })) } : {}),
    },
  };
}

/** The control endpoint of a local run, found through its run file. */
export async function localTransport(runFile: string): Promise<SignalTransport> {
  let run: RunFile;
  try {
    run = JSON.parse(await readFile(runFile, 'utf8')) as RunFile;
  } catch {
    throw new SignallingError(`no local run found (${runFile} is missing): start one with npm start, or use --env`);
  }
  const call = async (method: string, path: string, body?: unknown) => {
    let res: Response;
    try {
      res = await fetch(`${run.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${run.token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch {
      throw new SignallingError(`no local run answers at ${run.url} (${runFile} is left from a run that ended?)`);
    }
    const json = (await res.json()) as Record<string, unknown>;
    return { status: res.status, json };
  };
  return {
    target: `the local run (pid ${run.pid})`,
    async tables() {
      return ((await call('GET', '/run')).json.tables as string[]) ?? [];
    },
    async defaultSchema() {
      return run.schema;
    },
    async send(signal) {
      const { status, json } = await call('POST', '/signals', signal);
      if (status === 404) throw new SignallingError(String(json.error));
      if (status !== 202) throw new SignallingError(`the local run refused the signal: ${String(json.error)}`);
    },
    async progress(id) {
      const { status, json } = await call('GET', `/snapshots/${encodeURIComponent(id)}`);
      return status === 200 ? (json as unknown as SnapshotProgress) : null;
    },
    async close() {},
  };
}

/** What the Kafka transport needs of a client (kafkajs's shape), so the tests can hand in a fake. */
export interface KafkaLike {
  producer(): {
    connect(): Promise<void>;
    send(record: { topic: string; messages: Array<{ key: string; value: string }> }): Promise<unknown>;
    disconnect(): Promise<void>;
  };
  consumer(config: { groupId: string }): {
    connect(): Promise<void>;
    subscribe(subscription: { topics: string[]; fromBeginning: boolean }): Promise<void>;
    run(config: { eachMessage: (payload: { message: { value: Buffer | null } }) => Promise<void> }): Promise<void>;
    disconnect(): Promise<void>;
  };
}

/**
 * A deployed environment: the signal goes to the source's Kafka signal topic (key = the source's `topicPrefix`,
 * which Debezium requires), and progress is read from its notification topic by a consumer of its own that starts at
 * the end (a fresh group, latest offsets: only notifications after the signal count).
 */
export async function kafkaTransport(options: {
  kafka: KafkaLike;
  signalling: SignallingParameter;
  /** Which source, when the environment has several (by name). @default the only one */
  source?: string;
}): Promise<SignalTransport> {
  const { signalling } = options;
  const source = options.source
    ? signalling.sources.find((s) => s.name === options.source)
    : signalling.sources.length === 1
      ? signalling.sources[0]
      : undefined;
  if (!source) {
    throw new SignallingError(
      `name the source with --source (one of: ${signalling.sources.map((s) => s.name).join(', ')})`,
    );
  }
  const snapshots = new Map<string, SnapshotProgress>();
  const consumer = options.kafka.consumer({ groupId: `cdc-sync-backfill-${randomUUID()}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [source.notificationTopic], fromBeginning: false });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (!message.value) return;
      const n = JSON.parse(message.value.toString('utf8')) as {
        id: string;
        aggregate_type?: string;
        type: string;
        additional_data?: Record<string, string>;
      };
      if (n.aggregate_type !== undefined && n.aggregate_type !== 'Incremental Snapshot') return;
      const s = snapshots.get(n.id) ?? { tables: {}, status: 'pending' };
      snapshots.set(n.id, s);
      const data = n.additional_data ?? {};
      if (n.type === 'STARTED' || n.type === 'IN_PROGRESS') s.status = s.status === 'pending' ? 'running' : s.status;
      else if (n.type === 'TABLE_SCAN_COMPLETED') {
        const table = data.scanned_collection ?? data.data_collection;
        if (table) s.tables[table] = Number(data.total_rows_scanned ?? 0);
      } else if (n.type === 'COMPLETED') s.status = 'completed';
      else if (n.type === 'ABORTED') s.status = 'aborted';
    },
  });
  const producer = options.kafka.producer();
  await producer.connect();
  return {
    target: `the ${source.name} connector (${source.signalTopic})`,
    tables: async () => null,
    defaultSchema: async () => (source.engine === 'sqlserver' ? 'dbo' : 'public'),
    async send(signal) {
      // Debezium's Kafka channel reads `type` and `data` from the value; the id is ours, kept for correlation.
      await producer.send({
        topic: source.signalTopic,
        messages: [{ key: source.topicPrefix, value: JSON.stringify(signal) }],
      });
    },
    progress: async (id) => snapshots.get(id) ?? null,
    async close() {
      await Promise.allSettled([producer.disconnect(), consumer.disconnect()]);
    },
  };
}

/**
 * Sends the signal and waits until the snapshot completes (or is aborted). Tables named without a schema are taken in
 * the transport's default schema; a table the transport says is not captured is refused before anything is sent.
 */
export async function backfill(
  transport: SignalTransport,
  request: {
    tables: readonly string[];
    where?: string;
    timeoutMs?: number;
    pollMs?: number;
    id?: string;
    /** Told once the signal is sent (the command says it is waiting). */
    onSent?: (signal: SnapshotSignal) => void;
  },
): Promise<{ id: string; status: 'completed' | 'aborted'; tables: Record<string, number> }> {
  const schema = await transport.defaultSchema();
  const tables = request.tables.map((t) => (t.includes('.') ? t : `${schema}.${t}`));
  const known = await transport.tables();
  if (known) {
    const unknown = tables.filter((t) => !known.includes(t));
    if (unknown.length > 0) {
      throw new SignallingError(`unknown table ${unknown.join(', ')} (captured: ${[...known].sort().join(', ')})`);
    }
  }
  const signal = snapshotSignal(tables, request.where, request.id);
  await transport.send(signal);
  request.onSent?.(signal);
  const deadline = Date.now() + (request.timeoutMs ?? 600_000);
  for (;;) {
    const progress = await transport.progress(signal.id);
    if (progress && (progress.status === 'completed' || progress.status === 'aborted')) {
      return { id: signal.id, status: progress.status, tables: progress.tables };
    }
    if (Date.now() > deadline) {
      throw new SignallingError(`${transport.target} did not complete snapshot ${signal.id} in time`);
    }
    await new Promise((r) => setTimeout(r, request.pollMs ?? 250));
  }
}
