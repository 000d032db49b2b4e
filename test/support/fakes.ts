import { hasUnknownCommit } from '../../functions/core/dedupe';
import { type CdcError, DedupeError, SinkError } from '../../functions/core/errors';
import type { LatestSchema, SchemaRegistry, SchemaVersionRecord } from '../../functions/core/schema-history';
import type {
  Checkpoint,
  CheckpointCommit,
  DeadLetter,
  DeadLetterQueue,
  DedupeStore,
  Lane,
  PartitionBatch,
  Sink,
  SinkPartition,
  SinkPartitionResult,
  SnapshotSignal,
  SnapshotSignaller,
} from '../../functions/core/types';

/** In-memory dedupe store with the same conditional semantics as the DynamoDB one. */
export class MemoryDedupeStore implements DedupeStore {
  readonly items = new Map<string, Checkpoint>();
  calls = { load: 0, commit: 0 };
  failLoad?: Error;
  failCommitFor?: string;

  async load(lane: Lane, partitions: readonly PartitionBatch[]): Promise<Map<string, Checkpoint>> {
    this.calls.load++;
    if (this.failLoad) throw this.failLoad;
    const found = new Map<string, Checkpoint>();
    for (const p of partitions) {
      const cp = this.items.get(`${lane}#${p.id}`);
      if (cp) found.set(p.id, structuredClone(cp));
    }
    return found;
  }

  async commit(lane: Lane, commits: readonly CheckpointCommit[]): Promise<Array<DedupeError | undefined>> {
    this.calls.commit++;
    return commits.map(({ partition, previous, next }) => {
      if (this.failCommitFor === partition.id) return new DedupeError('DEDUPE_UNAVAILABLE', 'injected');
      const key = `${lane}#${partition.id}`;
      const current = this.items.get(key);
      if ((current?.version ?? undefined) !== previous?.version) {
        return new DedupeError('CHECKPOINT_CONFLICT', 'version changed');
      }
      this.items.set(key, structuredClone(next));
      return undefined;
    });
  }
}

/** Records what it was asked to write; can fail a topic-partition. */
export class MemorySink implements Sink {
  readonly writes: SinkPartition[] = [];
  failFor = new Map<string, CdcError>();
  stateFor?: (p: SinkPartition) => unknown;

  async write(p: SinkPartition): Promise<SinkPartitionResult> {
    const failure = this.failFor.get(p.partition.id);
    if (failure) return { ok: false, error: failure };
    this.writes.push({ ...p, events: [...p.events], schemaChanges: p.schemaChanges && [...p.schemaChanges] });
    return { ok: true, writtenAt: 1_000_000_000_000_000, state: this.stateFor?.(p) };
  }

  get events() {
    return this.writes.flatMap((w) => w.events);
  }
}

export class MemoryDeadLetterQueue implements DeadLetterQueue {
  readonly letters: DeadLetter[] = [];
  fail?: CdcError;
  async send(letters: readonly DeadLetter[]): Promise<void> {
    if (this.fail) throw this.fail;
    this.letters.push(...letters);
  }
}

export const sinkDown = () => new SinkError('SINK_UNAVAILABLE', 'injected outage', { retryable: true });

/** In-memory schema registry with the DynamoDB one's conditional semantics (see DynamoSchemaRegistry). */
export class MemorySchemaRegistry implements SchemaRegistry {
  readonly latestItems = new Map<string, LatestSchema>();
  readonly versions = new Map<string, SchemaVersionRecord>();
  calls = { advance: 0, claim: 0 };
  fail?: Error;

  async latest(table: string): Promise<LatestSchema | undefined> {
    if (this.fail) throw this.fail;
    const l = this.latestItems.get(table);
    return l && structuredClone(l);
  }

  async advance(table: string, expected: number, record: SchemaVersionRecord): Promise<boolean> {
    this.calls.advance++;
    const current = this.latestItems.get(table);
    if ((current?.version ?? 0) !== expected) return false;
    const newer = current && (current.order < record.order || hasUnknownCommit(record.order));
    if (current && !(newer && current.fingerprint !== record.fingerprint)) return false;
    const key = `${table}#v${record.version}`;
    if (this.versions.has(key)) return false;
    const { version, fingerprint, order, columns } = record;
    this.latestItems.set(table, structuredClone({ version, fingerprint, order, columns }));
    this.versions.set(key, structuredClone(record));
    return true;
  }

  async version(table: string, version: number): Promise<SchemaVersionRecord | undefined> {
    const v = this.versions.get(`${table}#v${version}`);
    return v && structuredClone(v);
  }

  async claimSignal(table: string, version: number, claimant: string, now: number, until: number): Promise<boolean> {
    this.calls.claim++;
    const v = this.versions.get(`${table}#v${version}`);
    if (v?.reconciliation !== 'pending') return false;
    if (v.claimant !== undefined && v.claimant !== claimant && (v.claimedUntil ?? 0) >= now) return false;
    v.claimant = claimant;
    v.claimedUntil = until;
    return true;
  }

  async markSignalled(table: string, version: number, signalId: string): Promise<void> {
    const v = this.versions.get(`${table}#v${version}`);
    if (v?.reconciliation !== 'pending') return;
    v.reconciliation = 'signalled';
    v.signalId = signalId;
  }
}

/** Records the signals it was asked to send; can fail. */
export class MemorySignaller implements SnapshotSignaller {
  readonly sent: SnapshotSignal[] = [];
  fail?: Error;
  async send(signal: SnapshotSignal): Promise<void> {
    if (this.fail) throw this.fail;
    this.sent.push(signal);
  }
}
