import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { DeadLetterMessage } from '../../functions/adapters/sqs-dead-letter-queue';
import { afterReplay, PARKED } from '../../functions/core/parking';
import type { BatchResult } from '../../functions/core/pipeline';
import type {
  Checkpoint,
  DedupeStore,
  KafkaEvent,
  KafkaRecord,
  Lane,
  ParkedKey,
  PartitionBatch,
} from '../../functions/core/types';

export interface RedriveOptions {
  sqs: SQSClient;
  s3: S3Client;
  queueUrl: string;
  /** The lane handler built with `mode: 'redrive'`; resolves with the batch result. */
  run: (event: KafkaEvent) => Promise<BatchResult>;
  /** At most this many dead letters. */
  max?: number;
  /** Seconds the received messages stay invisible while they are redriven. */
  visibilitySeconds?: number;
}

export interface RedriveSummary {
  letters: number;
  processed: number;
  skipped: number;
  duplicates: number;
  /** Records that failed again for good: a new dead letter replaces the old one. */
  deadLetteredAgain: number;
  /** Letters left in the queue because their partition failed for a retryable reason (they come back later). */
  kept: number;
  /** PARKED letters left in the queue: a parked key's changes are replayed all together, in order, with `--parked`. */
  parked: number;
}

interface Received {
  receiptHandle: string;
  letter: DeadLetterMessage;
}

async function fullLetter(s3: S3Client, letter: DeadLetterMessage): Promise<DeadLetterMessage> {
  if (!letter.payloadLocation) return letter;
  const object = await s3.send(
    new GetObjectCommand({ Bucket: letter.payloadLocation.bucket, Key: letter.payloadLocation.key }),
  );
  return JSON.parse((await object.Body?.transformToString()) ?? '{}') as DeadLetterMessage;
}

/** Receives up to `max` letters (claim-checked payloads fetched); they stay invisible until deleted or released. */
async function receive(options: RedriveOptions, max: number): Promise<Received[]> {
  const received: Received[] = [];
  while (received.length < max) {
    const page = await options.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: options.queueUrl,
        MaxNumberOfMessages: Math.min(10, max - received.length),
        VisibilityTimeout: options.visibilitySeconds ?? 300,
        WaitTimeSeconds: 0,
      }),
    );
    if (!page.Messages?.length) break;
    for (const m of page.Messages) {
      const letter = await fullLetter(options.s3, JSON.parse(m.Body ?? '{}') as DeadLetterMessage);
      received.push({ receiptHandle: m.ReceiptHandle ?? '', letter });
    }
  }
  return received;
}

async function remove(options: RedriveOptions, letters: readonly Received[]): Promise<void> {
  for (let i = 0; i < letters.length; i += 10) {
    await options.sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: letters.slice(i, i + 10).map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle })),
      }),
    );
  }
}

/** Makes letters visible again at once (they stay in the queue for a later redrive). */
async function release(options: RedriveOptions, letters: readonly Received[]): Promise<void> {
  for (let i = 0; i < letters.length; i += 10) {
    await options.sqs.send(
      new ChangeMessageVisibilityBatchCommand({
        QueueUrl: options.queueUrl,
        Entries: letters
          .slice(i, i + 10)
          .map((r, j) => ({ Id: String(j), ReceiptHandle: r.receiptHandle, VisibilityTimeout: 0 })),
      }),
    );
  }
}

const partitionOf = (record: Pick<KafkaRecord, 'topic' | 'partition'>) => `${record.topic}-${record.partition}`;
const isParked = (letter: DeadLetterMessage) => letter.error?.code === PARKED;

/**
 * Puts dead letters back through their lane: receives them, fetches claim-checked payloads from S3, hands their
 * original records to the lane (in redrive mode: applied again whatever the partition's checkpoint says; the sinks'
 * guards decide), and deletes the letters whose partition went through — a record still bad is dead-lettered again
 * with its new reason, so nothing is lost either way. PARKED letters are left alone: replaying some of a parked key's
 * changes without the others could apply a later one first (redriveParkedKeys replays them).
 */
export async function redriveDeadLetters(options: RedriveOptions): Promise<RedriveSummary> {
  const all = await receive(options, options.max ?? 1000);
  const parked = all.filter(({ letter }) => isParked(letter));
  const received = all.filter(({ letter }) => !isParked(letter));
  await release(options, parked);
  const summary: RedriveSummary = {
    letters: received.length,
    processed: 0,
    skipped: 0,
    duplicates: 0,
    deadLetteredAgain: 0,
    kept: 0,
    parked: parked.length,
  };
  if (received.length === 0) return summary;

  const records: Record<string, KafkaRecord[]> = {};
  for (const { letter } of received) {
    const id = partitionOf(letter.record);
    records[id] ??= [];
    records[id].push(letter.record);
  }
  for (const list of Object.values(records)) list.sort((a, b) => a.offset - b.offset);
  const result = await options.run({ eventSource: 'aws:kafka', records });

  const failed = result.fatal ? undefined : new Set(result.batchItemFailures.map((f) => f.itemIdentifier.partition));
  const done = received.filter(({ letter }) => failed !== undefined && !failed.has(partitionOf(letter.record)));
  await remove(options, done);
  return {
    ...summary,
    processed: result.processed,
    skipped: result.skipped,
    duplicates: result.duplicates,
    deadLetteredAgain: result.deadLettered,
    kept: received.length - done.length,
  };
}

export interface ParkedRedriveOptions extends RedriveOptions {
  lane: Lane;
  /** The lane's checkpoints (its DEDUPE_TABLE_NAME): which keys are parked, and where their unparking is committed. */
  dedupe: DedupeStore;
  /** Only this key, as the letters' `parked.key` names it (`<table id> <row key JSON>`). Default: every parked key. */
  key?: string;
}

/**
 * What became of one parked key: `unparked`; `still-parked` (replayed, but more of its changes were parked meanwhile:
 * run again); `incomplete` (not every letter of it was received: nothing replayed); `failed` (the lane still cannot
 * apply one: nothing unparked, its letters kept); `not-parked` (its letters were of changes applied since).
 */
export interface ParkedKeyOutcome {
  partition: string;
  key: string;
  outcome: 'unparked' | 'still-parked' | 'incomplete' | 'failed' | 'not-parked';
  /** Letters replayed. */
  replayed: number;
  detail?: string;
}

export interface ParkedRedriveSummary {
  /** PARKED letters received. */
  letters: number;
  keys: ParkedKeyOutcome[];
  processed: number;
  deadLetteredAgain: number;
  /** Letters of changes applied since (replayed by an earlier redrive, or parked by a batch that then failed): deleted. */
  stale: number;
  /** Letters left in the queue. */
  kept: number;
}

/** Unparks a replayed key in its partition's checkpoint, conditionally on the version read (retried on conflict). */
async function unpark(
  options: ParkedRedriveOptions,
  partition: PartitionBatch,
  replayed: ParkedKey,
): Promise<'unparked' | 'still-parked' | 'moved'> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const current = (await options.dedupe.load(options.lane, [partition])).get(partition.id);
    const next = current && afterReplay(current, replayed);
    if (!current || !next) return 'moved';
    const [error] = await options.dedupe.commit(options.lane, [{ partition, previous: current, next }]);
    if (!error) return next.parked?.some((p) => p.key === replayed.key) ? 'still-parked' : 'unparked';
    // A lane batch committed the partition since it was read: read it again (it may have parked more of the key).
    if (error.code !== 'CHECKPOINT_CONFLICT') throw error;
  }
  throw new Error(`the checkpoint of ${partition.id} kept changing: ${replayed.key} is still parked, run again`);
}

/**
 * Replays parked keys (docs/architecture.md, "Parking a poison key"): receives the PARKED letters, and per
 * topic-partition and key, once every one of the key's parked changes is there (the checkpoint says how many), hands
 * them to the lane in offset order in redrive mode. When they all went through, the key is unparked — conditionally
 * on the checkpoint's version, so a lane batch committing meanwhile is not overwritten — and its letters are deleted.
 * If the replay still fails, the key stays parked and its letters stay in the queue.
 */
export async function redriveParkedKeys(options: ParkedRedriveOptions): Promise<ParkedRedriveSummary> {
  const all = await receive(options, options.max ?? 1000);
  const wanted = ({ letter }: Received) =>
    isParked(letter) && (options.key === undefined || letter.parked?.key === options.key);
  const summary: ParkedRedriveSummary = {
    letters: 0,
    keys: [],
    processed: 0,
    deadLetteredAgain: 0,
    stale: 0,
    kept: 0,
  };
  const keep: Received[] = all.filter((r) => !wanted(r));
  const drop: Received[] = [];

  const groups = new Map<string, { partition: PartitionBatch; keys: Map<string, Received[]> }>();
  for (const r of all.filter(wanted)) {
    summary.letters++;
    const { record, parked } = r.letter;
    const id = partitionOf(record);
    let group = groups.get(id);
    if (!group) {
      group = { partition: { id, topic: record.topic, partition: record.partition, records: [] }, keys: new Map() };
      groups.set(id, group);
    }
    const key = parked?.key ?? '';
    group.keys.set(key, [...(group.keys.get(key) ?? []), r]);
  }
  const checkpoints =
    groups.size > 0
      ? await options.dedupe.load(
          options.lane,
          [...groups.values()].map((g) => g.partition),
        )
      : new Map<string, Checkpoint>();

  for (const { partition, keys } of groups.values()) {
    const checkpoint = checkpoints.get(partition.id);
    for (const [key, letters] of keys) {
      const entry = checkpoint?.parked?.find((p) => p.key === key);
      const inRange = (offset: number) => entry !== undefined && offset >= entry.first && offset <= entry.last;
      const outcome: ParkedKeyOutcome = { partition: partition.id, key, outcome: 'not-parked', replayed: 0 };
      summary.keys.push(outcome);
      const parked: Received[] = [];
      for (const r of letters) {
        const offset = r.letter.record.offset;
        if (inRange(offset)) parked.push(r);
        else if (checkpoint !== undefined && offset <= checkpoint.offset) {
          // Behind the checkpoint and outside the key's parked changes: its change was applied since (an earlier
          // redrive replayed it, or the batch that parked it failed to commit and its retry applied it).
          drop.push(r);
          summary.stale++;
        } else keep.push(r); // a batch that parked it has not committed yet
      }
      if (!entry) continue;
      // One record per offset: a batch retried after its dead letters were stored sent them twice.
      const byOffset = new Map<number, KafkaRecord>();
      for (const r of parked) byOffset.set(r.letter.record.offset, r.letter.record);
      if (byOffset.size !== entry.count) {
        Object.assign(outcome, {
          outcome: 'incomplete',
          detail: `${byOffset.size} of its ${entry.count} parked changes received: nothing replayed, run again`,
        });
        keep.push(...parked);
        continue;
      }
      const records = [...byOffset.values()].sort((a, b) => a.offset - b.offset);
      const result = await options.run({ eventSource: 'aws:kafka', records: { [partition.id]: records } });
      const failed = result.fatal ?? result.batchItemFailures.find((f) => f.itemIdentifier.partition === partition.id);
      if (failed) {
        const error = result.fatal ?? result.error;
        Object.assign(outcome, { outcome: 'failed', detail: error ? `${error.code}: ${error.message}` : undefined });
        keep.push(...parked);
        continue;
      }
      summary.processed += result.processed;
      summary.deadLetteredAgain += result.deadLettered;
      outcome.replayed = records.length;
      const unparked = await unpark(options, partition, entry);
      outcome.outcome = unparked === 'moved' ? 'not-parked' : unparked;
      if (unparked === 'still-parked') outcome.detail = 'more of its changes were parked meanwhile: run again';
      // Deleted only once unparked (or moved on): a redrive stopped before that replays them again.
      drop.push(...parked);
    }
  }
  await remove(options, drop);
  await release(options, keep);
  summary.kept = keep.filter(wanted).length;
  return summary;
}
