import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { partitionForKey, StickyPartitioner } from './partitioner';

/**
 * A Kafka-like broker for `npm start` and tests: topics with partitions, append-only logs with offsets from 0,
 * high-water marks, consumer-group committed offsets and an append notification (consumers never poll on timers).
 * In memory by default; with `dir` every partition is an append-only JSON-lines file and committed offsets live in
 * `offsets.json`, so a restarted process continues where it stopped. No replication, no time- or size-based retention,
 * no rebalancing: exactly what a local event source mapping needs and nothing more. `deleteRecords` (Kafka's admin
 * call) lets the runner free what every consumer group has committed, so a long run does not grow without bound.
 */

/** One record to append. `partition` overrides the partitioner (Kafka's `ProducerRecord.partition`). */
export interface ProduceRecord {
  topic: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Array<[string, Buffer]>;
  /** Epoch milliseconds (CREATE_TIME). @default Date.now() at produce time */
  timestamp?: number;
  partition?: number;
}

/** Where a produced record landed. */
export interface ProduceResult {
  topic: string;
  partition: number;
  offset: number;
}

/** A stored record, as a consumer reads it. Treat as immutable: the same object is handed to every reader. */
export interface BrokerRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly timestampType: 'CREATE_TIME';
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: ReadonlyArray<readonly [string, Buffer]>;
  /** `performance.now()` when the record became readable in this process (0 for records loaded from disk). */
  readonly appendedAt: number;
}

/** Construction options. */
export interface LocalBrokerOptions {
  /** Partitions of a topic created without an explicit count. @default 3 */
  defaultPartitions?: number;
  /** Create a topic on first produce, like Kafka's `auto.create.topics.enable`. @default true */
  autoCreateTopics?: boolean;
  /** Bytes after which keyless records move to the next partition (Kafka's `batch.size`). @default 16384 */
  stickyBatchBytes?: number;
  /** Persist to this directory. Only through {@link LocalBroker.open}, which loads what is already there. */
  dir?: string;
}

/** Called when records become readable; `highWater` is the partition's new high-water mark. */
export type AppendListener = (topic: string, partition: number, highWater: number) => void;
/** Called when a topic is created (explicitly or on first produce). */
export type TopicListener = (topic: string, partitions: number) => void;

/** Errors of the local broker; `code` is stable. */
export class BrokerError extends Error {
  override readonly name = 'BrokerError';
  constructor(
    readonly code:
      | 'INVALID_TOPIC'
      | 'UNKNOWN_TOPIC'
      | 'UNKNOWN_PARTITION'
      | 'TOPIC_EXISTS'
      | 'CORRUPT_LOG'
      | 'CLOSED'
      | 'OFFSET_OUT_OF_RANGE'
      | 'UNSUPPORTED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Partition {
  /** Indexed by offset; deleted records (below `logStart`) are holes. */
  readonly records: Array<BrokerRecord | undefined>;
  /** Kafka's log start offset: records below it were deleted (`deleteRecords`). */
  logStart: number;
  /** Records at offsets below this are readable (appended, and written to the file when persistent). */
  highWater: number;
  file?: PartitionFile;
}

interface Topic {
  readonly name: string;
  readonly partitions: Partition[];
  /** Resolves when the topic's directory and meta file exist (persistent mode). */
  ready: Promise<void>;
}

/** Kafka's `Topic.validate`: 1–249 of `[a-zA-Z0-9._-]`, not "." or "..". Also keeps file names safe. */
const LEGAL_TOPIC = /^[a-zA-Z0-9._-]{1,249}$/;

function validateTopicName(name: string): void {
  if (!LEGAL_TOPIC.test(name) || name === '.' || name === '..') {
    throw new BrokerError(
      'INVALID_TOPIC',
      `illegal topic name ${JSON.stringify(name)} (Kafka allows [a-zA-Z0-9._-]{1,249})`,
    );
  }
}

/** The local broker. See the module comment. */
export class LocalBroker {
  private readonly topicMap = new Map<string, Topic>();
  /** group → "topic\0partition" → next offset to consume. */
  private readonly offsets = new Map<string, Map<string, number>>();
  private readonly appendListeners = new Set<AppendListener>();
  private readonly topicListeners = new Set<TopicListener>();
  private readonly sticky: StickyPartitioner;
  private readonly defaultPartitions: number;
  private readonly autoCreateTopics: boolean;
  private readonly dir: string | undefined;
  private readonly offsetsFile: CoalescingWriter | undefined;
  private closed = false;

  /** An in-memory broker. Use {@link LocalBroker.open} for a persistent one. */
  constructor(options: Omit<LocalBrokerOptions, 'dir'> = {}) {
    this.defaultPartitions = options.defaultPartitions ?? 3;
    if (!Number.isInteger(this.defaultPartitions) || this.defaultPartitions < 1) {
      throw new RangeError(`defaultPartitions must be a positive integer, got ${this.defaultPartitions}`);
    }
    this.autoCreateTopics = options.autoCreateTopics ?? true;
    this.sticky = new StickyPartitioner(options.stickyBatchBytes);
    const dir = (options as LocalBrokerOptions).dir;
    this.dir = dir;
    this.offsetsFile =
      dir === undefined ? undefined : new CoalescingWriter(join(dir, 'offsets.json'), () => this.offsetsJson());
  }

  /**
   * A broker, persistent when `options.dir` is set: creates the directory, loads every topic, partition log and
   * committed offset found there (a torn last line from a crash is cut off), and appends from there on.
   */
  static async open(options: LocalBrokerOptions = {}): Promise<LocalBroker> {
    const broker = new LocalBroker(options);
    if (options.dir !== undefined) await broker.load(options.dir);
    return broker;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Topics
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Creates a topic, or returns the partition count of an existing one. Asking for a different count than an
   * existing topic has throws (partition counts never change here: that would move keys, see Utils.toPositive).
   */
  createTopic(name: string, partitions?: number): number {
    this.assertOpen();
    const existing = this.topicMap.get(name);
    if (existing !== undefined) {
      if (partitions !== undefined && partitions !== existing.partitions.length) {
        throw new BrokerError(
          'TOPIC_EXISTS',
          `topic ${name} exists with ${existing.partitions.length} partitions, not ${partitions}`,
        );
      }
      return existing.partitions.length;
    }
    validateTopicName(name);
    const count = partitions ?? this.defaultPartitions;
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`partitions must be a positive integer, got ${count}`);
    const topic: Topic = {
      name,
      partitions: Array.from({ length: count }, () => ({ records: [], highWater: 0, logStart: 0 })),
      ready: Promise.resolve(),
    };
    if (this.dir !== undefined) topic.ready = this.createTopicFiles(this.dir, topic);
    this.topicMap.set(name, topic);
    for (const listener of this.topicListeners) safeCall(() => listener(name, count));
    return count;
  }

  /** Names of all topics, in creation order. */
  topics(): string[] {
    return [...this.topicMap.keys()];
  }

  /** Partition count of a topic, or undefined when it does not exist. */
  partitionCount(topic: string): number | undefined {
    return this.topicMap.get(topic)?.partitions.length;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Produce and read
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Appends records in order and resolves with their offsets. A keyed record goes to
   * `toPositive(murmur2(key)) % partitions` (Kafka's default partitioner); a keyless one to the topic's sticky
   * partition (see {@link StickyPartitioner}). In memory the records are readable (and listeners notified) before this
   * returns; when persistent, only after the lines were written to the partition file — `write(2)`, not `fsync`, so a
   * process crash loses nothing but a machine crash may.
   */
  async produce(records: readonly ProduceRecord[]): Promise<ProduceResult[]> {
    // No await before the appends: in memory, records are readable when this call returns its promise.
    this.assertOpen();
    for (const record of records) this.validate(record);
    const results: ProduceResult[] = [];
    const touched = new Map<Partition, { topic: Topic; partition: number }>();
    const pendingWrites: Promise<void>[] = [];
    for (const record of records) {
      const topic = this.topicFor(record.topic);
      const partition = this.choosePartition(topic, record);
      const log = topic.partitions[partition]!;
      const stored: BrokerRecord = {
        topic: topic.name,
        partition,
        offset: log.records.length,
        timestamp: record.timestamp ?? Date.now(),
        timestampType: 'CREATE_TIME',
        key: record.key,
        value: record.value,
        headers: record.headers === undefined ? [] : record.headers.map(([name, value]) => [name, value] as const),
        appendedAt: performance.now(),
      };
      log.records.push(stored);
      results.push({ topic: topic.name, partition, offset: stored.offset });
      touched.set(log, { topic, partition });
      if (this.dir !== undefined)
        pendingWrites.push(this.partitionFile(this.dir, topic, partition, log).append(stored));
    }
    this.sticky.endBatch((name) => this.topicMap.get(name)?.partitions.length ?? 1);
    if (this.dir === undefined) {
      for (const [log, { topic, partition }] of touched) {
        log.highWater = log.records.length;
        this.notifyAppend(topic.name, partition, log.highWater);
      }
      return results;
    }
    await Promise.all(pendingWrites);
    return results;
  }

  /**
   * Up to `maxRecords` readable records of one partition from `fromOffset` on (empty at or past the high water). From
   * below the log start offset, reading starts at the log start offset (a consumer's `auto.offset.reset=earliest`).
   */
  read(topic: string, partition: number, fromOffset: number, maxRecords: number): BrokerRecord[] {
    const log = this.partition(topic, partition);
    const start = Math.max(log.logStart, fromOffset);
    return log.records.slice(start, Math.min(log.highWater, start + Math.max(0, maxRecords))) as BrokerRecord[];
  }

  /** The readable record at `offset`, or undefined below the log start offset or at/past the high water. */
  recordAt(topic: string, partition: number, offset: number): BrokerRecord | undefined {
    const log = this.partition(topic, partition);
    return offset >= log.logStart && offset < log.highWater ? log.records[offset] : undefined;
  }

  /** Kafka's log start offset (`ListOffsets` EARLIEST): the first offset still readable, 0 until records are deleted. */
  logStartOffset(topic: string, partition: number): number {
    return this.partition(topic, partition).logStart;
  }

  /**
   * Kafka's `DeleteRecords`: records below `beforeOffset` become unreadable and their memory is freed; offsets do not
   * change. Returns the new log start offset (never lower than before). In memory only: a persistent broker keeps its
   * logs whole (they are what `--keep` keeps), so this throws `UNSUPPORTED` there. An offset past the high water is
   * `OFFSET_OUT_OF_RANGE`, as in Kafka.
   */
  deleteRecords(topic: string, partition: number, beforeOffset: number): number {
    this.assertOpen();
    const log = this.partition(topic, partition);
    if (this.dir !== undefined) {
      throw new BrokerError('UNSUPPORTED', 'deleteRecords is for in-memory brokers; persistent logs are kept whole');
    }
    if (!Number.isInteger(beforeOffset) || beforeOffset < 0 || beforeOffset > log.highWater) {
      throw new BrokerError(
        'OFFSET_OUT_OF_RANGE',
        `cannot delete records of ${topic}-${partition} before offset ${beforeOffset}: the high water is ${log.highWater}`,
      );
    }
    for (let offset = log.logStart; offset < beforeOffset; offset++) log.records[offset] = undefined;
    log.logStart = Math.max(log.logStart, beforeOffset);
    return log.logStart;
  }

  /** The offset the next readable record will get: the number of readable records (offsets start at 0). */
  highWater(topic: string, partition: number): number {
    return this.partition(topic, partition).highWater;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Consumer groups
  // ------------------------------------------------------------------------------------------------------------

  /**
   * Commits `nextOffset` (the offset of the next record to consume, as Kafka's `OffsetCommit`) for a group. Takes
   * effect immediately in memory; when persistent the returned promise resolves after `offsets.json` was rewritten
   * (commits that arrive while a write is under way share the next write).
   */
  commit(group: string, topic: string, partition: number, nextOffset: number): Promise<void> {
    try {
      this.assertOpen();
      this.partition(topic, partition);
    } catch (error) {
      return Promise.reject(error);
    }
    let groupOffsets = this.offsets.get(group);
    if (groupOffsets === undefined) {
      groupOffsets = new Map();
      this.offsets.set(group, groupOffsets);
    }
    groupOffsets.set(`${topic}\0${partition}`, nextOffset);
    return this.offsetsFile?.write() ?? Promise.resolve();
  }

  /** The group's committed next offset, or undefined when it never committed on this partition. */
  committed(group: string, topic: string, partition: number): number | undefined {
    return this.offsets.get(group)?.get(`${topic}\0${partition}`);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Notifications and lifecycle
  // ------------------------------------------------------------------------------------------------------------

  /** Subscribes to "records became readable" (called synchronously; defer real work). Returns the unsubscribe. */
  onAppend(listener: AppendListener): () => void {
    this.appendListeners.add(listener);
    return () => this.appendListeners.delete(listener);
  }

  /** Subscribes to topic creation (called synchronously). Returns the unsubscribe. */
  onTopicCreated(listener: TopicListener): () => void {
    this.topicListeners.add(listener);
    return () => this.topicListeners.delete(listener);
  }

  /** Waits until every append and commit issued so far reached the files (no-op in memory). */
  async flush(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const topic of this.topicMap.values()) {
      waits.push(topic.ready);
      for (const log of topic.partitions) if (log.file !== undefined) waits.push(log.file.idle());
    }
    if (this.offsetsFile !== undefined) waits.push(this.offsetsFile.idle());
    await Promise.all(waits);
  }

  /** Flushes and closes the files. The broker rejects produce and commit afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    const closes: Promise<void>[] = [];
    for (const topic of this.topicMap.values()) {
      for (const log of topic.partitions) if (log.file !== undefined) closes.push(log.file.close());
    }
    await Promise.all(closes);
    this.appendListeners.clear();
    this.topicListeners.clear();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Internals
  // ------------------------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new BrokerError('CLOSED', 'the broker is closed');
  }

  private topicFor(name: string): Topic {
    const topic = this.topicMap.get(name);
    if (topic !== undefined) return topic;
    if (!this.autoCreateTopics) throw new BrokerError('UNKNOWN_TOPIC', `unknown topic ${name}`);
    this.createTopic(name);
    return this.topicMap.get(name)!;
  }

  /** Checks a record before anything of its produce call is appended, so a bad record appends nothing. */
  private validate(record: ProduceRecord): void {
    const topic = this.topicMap.get(record.topic);
    if (topic === undefined) {
      if (!this.autoCreateTopics) throw new BrokerError('UNKNOWN_TOPIC', `unknown topic ${record.topic}`);
      validateTopicName(record.topic);
    }
    const count = topic?.partitions.length ?? this.defaultPartitions;
    if (
      record.partition !== undefined &&
      (!Number.isInteger(record.partition) || record.partition < 0 || record.partition >= count)
    ) {
      throw new BrokerError('UNKNOWN_PARTITION', `topic ${record.topic} has no partition ${record.partition}`);
    }
  }

  private partition(topic: string, partition: number): Partition {
    const t = this.topicMap.get(topic);
    if (t === undefined) throw new BrokerError('UNKNOWN_TOPIC', `unknown topic ${topic}`);
    const log = t.partitions[partition];
    if (log === undefined) throw new BrokerError('UNKNOWN_PARTITION', `topic ${topic} has no partition ${partition}`);
    return log;
  }

  private choosePartition(topic: Topic, record: ProduceRecord): number {
    const count = topic.partitions.length;
    if (record.partition !== undefined) return record.partition;
    if (record.key !== null) return partitionForKey(record.key, count);
    return this.sticky.partition(topic.name, count, record.value?.length ?? 0);
  }

  private notifyAppend(topic: string, partition: number, highWater: number): void {
    for (const listener of this.appendListeners) safeCall(() => listener(topic, partition, highWater));
  }

  private partitionFile(dir: string, topic: Topic, partition: number, log: Partition): PartitionFile {
    if (log.file === undefined) {
      log.file = new PartitionFile(join(dir, 'topics', topic.name, `${partition}.log`), topic.ready, (highWater) => {
        // Readable only once on disk: a consumer never commits past what a restart would find.
        if (highWater > log.highWater) {
          log.highWater = highWater;
          this.notifyAppend(topic.name, partition, highWater);
        }
      });
    }
    return log.file;
  }

  private async createTopicFiles(dir: string, topic: Topic): Promise<void> {
    const topicDir = join(dir, 'topics', topic.name);
    await mkdir(topicDir, { recursive: true });
    await writeFile(join(topicDir, 'meta.json'), `${JSON.stringify({ partitions: topic.partitions.length })}\n`);
  }

  private offsetsJson(): string {
    const out: Record<string, Record<string, Record<string, number>>> = {};
    for (const [group, entries] of this.offsets) {
      const g: Record<string, Record<string, number>> = {};
      for (const [tp, offset] of entries) {
        const [topic, partition] = tp.split('\0') as [string, string];
        g[topic] ??= {};
        g[topic][partition] = offset;
      }
      out[group] = g;
    }
    return `${JSON.stringify(out, null, 1)}\n`;
  }

  private async load(dir: string): Promise<void> {
    const topicsDir = join(dir, 'topics');
    await mkdir(topicsDir, { recursive: true });
    for (const entry of await readdir(topicsDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const name = entry.name;
      validateTopicName(name);
      const meta = JSON.parse(await readFile(join(topicsDir, name, 'meta.json'), 'utf8')) as { partitions: number };
      const topic: Topic = { name, partitions: [], ready: Promise.resolve() };
      for (let p = 0; p < meta.partitions; p++) {
        const records = await loadPartitionLog(join(topicsDir, name, `${p}.log`), name, p);
        topic.partitions.push({ records, highWater: records.length, logStart: 0 });
      }
      this.topicMap.set(name, topic);
    }
    const offsetsText = await readFile(join(dir, 'offsets.json'), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (offsetsText !== undefined) {
      const parsed = JSON.parse(offsetsText) as Record<string, Record<string, Record<string, number>>>;
      for (const [group, topics] of Object.entries(parsed)) {
        const entries = new Map<string, number>();
        for (const [topic, partitions] of Object.entries(topics)) {
          for (const [partition, offset] of Object.entries(partitions)) entries.set(`${topic}\0${partition}`, offset);
        }
        this.offsets.set(group, entries);
      }
    }
  }
}

function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    // A listener's bug must not fail the producer; surface it without crashing the loop.
    queueMicrotask(() => {
      throw error;
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------------------------

/** One JSON line per record: offset, timestamp, base64 key/value (null kept), headers as [name, base64] pairs. */
interface LogLine {
  o: number;
  t: number;
  k: string | null;
  v: string | null;
  h?: Array<[string, string]>;
}

function encodeLine(record: BrokerRecord): string {
  const line: LogLine = {
    o: record.offset,
    t: record.timestamp,
    k: record.key === null ? null : record.key.toString('base64'),
    v: record.value === null ? null : record.value.toString('base64'),
  };
  if (record.headers.length > 0) line.h = record.headers.map(([name, value]) => [name, value.toString('base64')]);
  return `${JSON.stringify(line)}\n`;
}

async function loadPartitionLog(path: string, topic: string, partition: number): Promise<BrokerRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const complete = text.lastIndexOf('\n') + 1;
  if (complete < text.length) {
    // A torn last line (the process died mid-write): its produce() never resolved, so dropping it is correct.
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(Buffer.byteLength(text.slice(0, complete)));
    } finally {
      await handle.close();
    }
  }
  const records: BrokerRecord[] = [];
  for (const raw of text.slice(0, complete).split('\n')) {
    if (raw === '') continue;
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch (cause) {
      throw new BrokerError('CORRUPT_LOG', `${path}: unparsable line at record ${records.length}`, { cause });
    }
    if (line.o !== records.length) {
      throw new BrokerError('CORRUPT_LOG', `${path}: expected offset ${records.length}, found ${line.o}`);
    }
    records.push({
      topic,
      partition,
      offset: line.o,
      timestamp: line.t,
      timestampType: 'CREATE_TIME',
      key: line.k === null ? null : Buffer.from(line.k, 'base64'),
      value: line.v === null ? null : Buffer.from(line.v, 'base64'),
      headers: (line.h ?? []).map(([name, value]) => [name, Buffer.from(value, 'base64')] as const),
      appendedAt: 0,
    });
  }
  return records;
}

/**
 * Appends lines to one partition file in offset order. Appends issued while a write is under way are batched into
 * the next single write (group commit), so a burst of produce calls costs one syscall per partition, not one each.
 */
class PartitionFile {
  private handle: Promise<FileHandle> | undefined;
  private pending: string[] = [];
  private pendingHighWater = 0;
  private waiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  private writing: Promise<void> | undefined;
  /** After a failed write the file no longer matches the offsets; later appends fail rather than leave a gap. */
  private failed: unknown;

  constructor(
    private readonly path: string,
    private readonly ready: Promise<void>,
    private readonly onWritten: (highWater: number) => void,
  ) {}

  append(record: BrokerRecord): Promise<void> {
    if (this.failed !== undefined) return Promise.reject(this.failed);
    this.pending.push(encodeLine(record));
    this.pendingHighWater = record.offset + 1;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.writing === undefined) this.writing = this.drain();
    return done;
  }

  idle(): Promise<void> {
    return this.writing ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.idle();
    if (this.handle !== undefined) await (await this.handle).close();
  }

  private async drain(): Promise<void> {
    // Let the rest of the current produce() call queue its lines first.
    await Promise.resolve();
    while (this.pending.length > 0) {
      const data = Buffer.from(this.pending.join(''));
      const highWater = this.pendingHighWater;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      if (this.failed !== undefined) {
        for (const waiter of waiters) waiter.reject(this.failed);
        continue;
      }
      try {
        await this.ready;
        this.handle ??= open(this.path, 'a');
        const handle = await this.handle;
        let written = 0;
        while (written < data.length) {
          const { bytesWritten } = await handle.write(data, written, data.length - written);
          written += bytesWritten;
        }
        this.onWritten(highWater);
        for (const waiter of waiters) waiter.resolve();
      } catch (error) {
        this.failed ??= error;
        for (const waiter of waiters) waiter.reject(error);
      }
    }
    this.writing = undefined;
  }
}

/** Rewrites one small file atomically (temp file + rename); writes requested meanwhile share the next rewrite. */
class CoalescingWriter {
  private current: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(
    private readonly path: string,
    private readonly render: () => string,
  ) {}

  write(): Promise<void> {
    if (this.current === undefined) {
      this.current = this.run().finally(() => {
        this.current = undefined;
      });
      return this.current;
    }
    // A write is under way with an older snapshot: queue exactly one more, shared by everyone who asks meanwhile.
    this.next ??= this.current
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.write();
      });
    return this.next;
  }

  idle(): Promise<void> {
    return (this.next ?? this.current ?? Promise.resolve()).catch(() => undefined);
  }

  private async run(): Promise<void> {
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, this.render());
    await rename(tmp, this.path);
  }
}
