import { type CdcError, DedupeError, SinkError } from '../../functions/core/errors';
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

  async write(partitions: readonly SinkPartition[]): Promise<SinkPartitionResult[]> {
    return partitions.map((p) => {
      const failure = this.failFor.get(p.partition.id);
      if (failure) return { ok: false, error: failure };
      this.writes.push({ ...p, events: [...p.events] });
      return { ok: true, writtenAt: 1_000_000_000_000_000, state: this.stateFor?.(p) };
    });
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

export const sinkDown = () => new SinkError('SINK_UNAVAILABLE', 'injected outage', true);
