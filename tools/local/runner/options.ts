/** Command-line options of `npm start` (tools/local/start.ts). */
import { parseArgs } from 'node:util';
import { COMPATIBILITY_LEVELS, type CompatibilityLevel } from '../../schemas/compatibility';

export interface RunOptions {
  /** Capture this database instead of an embedded one. */
  source?: string;
  /** Schema captured (and, embedded, where the demo tables are created). @default 'public' */
  schema: string;
  /** Tables captured (`name` in `schema`, or `schema.name`). @default every table of `schema` */
  tables?: string[];
  /** Change events per second the workload aims at. */
  rate: number;
  durationMs: number;
  /** Run the demo workload (default with the embedded database; off with --source unless --workload). */
  workload: boolean;
  /** Without the workload: stop after this much quiet (no change captured). */
  idleMs: number;
  /** Seed rows (customers, orders; see seedDemo) in the embedded database. */
  seedRows: number;
  partitions: number;
  batchSize: number;
  windowMs: number;
  /** Invocations each lane's event source mapping keeps in flight (each holds its own partitions). */
  concurrency: number;
  topicPrefix: string;
  /** One JSON object on stdout at the end; progress on stderr. */
  json: boolean;
  /** Keep the state under `stateDir` for exploring (otherwise a temp dir, removed). */
  keep: boolean;
  stateDir: string;
  /** 'auto' (REDIS_URL, 127.0.0.1:6379, redis-server on PATH) or null to run without the cache lane. */
  redis: 'auto' | null;
  /** Crash the capture (drop its connections unflushed) this far into the run and start it again. */
  restartCaptureAtMs?: number;
  /** Powertools log level of the lanes. */
  logLevel: string;
  /** Run each lane on a worker thread of its own (default) or all on the main thread. */
  laneThreads?: boolean;
  /** How often the capture saves its offset (tests lengthen it so a crash re-emits a known stretch). @default 200 */
  offsetFlushIntervalMs?: number;
  /** Verify the sinks at the end (the benchmark's rate steps skip it). @default true */
  verify?: boolean;
  /**
   * Free broker records every lane has committed (system.ts); tests that read the whole stream back turn it off.
   * @default true
   */
  releaseConsumed?: boolean;
  /** How far the capture may run ahead of the slowest lane, in change records (system.ts). @default 10_000 */
  maxBacklog?: number;
  /**
   * The demo workload alters a table a third of the way in (`ALTER TABLE customers ADD COLUMN tier text NOT NULL DEFAULT
   * 'standard'`), which the lanes must reconcile with an incremental snapshot (`--no-schema-change` leaves it out).
   */
  schemaChange: boolean;
  /**
   * Where the run announces its control endpoint for `npm run backfill` (see control.ts); none: no endpoint. The
   * command sets `.local/run.json`; tests give their own file or none.
   */
  runFile?: string;
  /** Rows per incremental-snapshot chunk (tests make it small to have several chunks). @default 1024 */
  incrementalChunkSize?: number;
  /**
   * The connector's converters: `json` (JsonConverter with schemas) or `avro` (AvroConverter through a local
   * Confluent-compatible schema registry the run starts). @default 'json'
   */
  format: 'json' | 'avro';
  /** With `avro`: the registry's compatibility level for every subject. @default 'BACKWARD' (Confluent's default) */
  compatibility: CompatibilityLevel;
  /**
   * The live status page on 127.0.0.1 (tools/status): its port (another free one when it is taken; 0: any), or null
   * for none (`--no-status`). @default 7070
   */
  statusPort: number | null;
}

export const DEFAULTS = {
  rate: 200,
  durationS: 20,
  idleMs: 10_000,
  seedRows: 200,
  partitions: 3,
  batchSize: 2000,
  windowMs: 0,
  concurrency: 1,
  schema: 'public',
  topicPrefix: 'pg',
  stateDir: '.local/start',
  logLevel: 'WARN',
  statusPort: 7070,
} as const;

export const USAGE = `usage: npm start -- [options]

Runs the whole pipeline locally: PostgreSQL (embedded, or --source) → Debezium-compatible capture → local broker and
event source mappings → warehouse, cache and audit lanes against local DynamoDB/S3/SQS emulators and Redis; drives a
workload, verifies every sink against the source and prints a summary. Exit code 0 consistent, 1 inconsistent, 2 error.

workload
  --rate <changes/s>        target change events per second (default ${DEFAULTS.rate})
  --duration <s>            how long the workload runs, or the longest wait with --no-workload (default ${DEFAULTS.durationS})
  --no-workload             make no changes: capture what others change, until --duration or --idle-ms of quiet
  --workload                run the demo workload against --source too (needs the demo tables in --schema)
  --idle-ms <ms>            with --no-workload, stop after this long without a change (default ${DEFAULTS.idleMs})
  --seed-rows <n>           demo rows seeded into the embedded database (default ${DEFAULTS.seedRows})
  --restart-capture-at <s>  crash the capture at this time into the workload and restart it (at-least-once demo)
  --no-schema-change        leave out the workload's schema change (an ADD COLUMN with a default, a third of the way
                            in, reconciled by an incremental snapshot; never made in a --source database)
source
  --source <postgres-url>   capture an existing database (wal_level=logical; a temporary slot and publication are
                            created and dropped at the end)
  --schema <name>           schema to capture (default ${DEFAULTS.schema})
  --tables <a,b>            tables of --schema to capture, or schema.table (default: every table of --schema)
pipeline
  --partitions <n>          partitions per topic (default ${DEFAULTS.partitions})
  --batch-size <n>          records per lane invocation, 1-10000 (default ${DEFAULTS.batchSize})
  --window-ms <ms>          batching window of the event source mappings (default ${DEFAULTS.windowMs}; Lambda's is 500)
  --concurrency <n>         invocations in flight per lane, each with its own partitions (default ${DEFAULTS.concurrency}: one
                            invocation gathers every ready partition; up to one per partition, as a scaled-out ESM)
  --topic-prefix <name>     Debezium topic.prefix (default ${DEFAULTS.topicPrefix})
  --format <json|avro>      the connector's converter (default json); avro registers every key and value schema in a
                            local schema registry (subjects <topic>-key, <topic>-value) and the lanes decode Avro
  --compatibility <level>   with --format avro: the registry's compatibility level, ${COMPATIBILITY_LEVELS.join(', ')}
                            (default BACKWARD); a schema change it refuses stops the capture
  --no-cache                run without the cache lane even when Redis is available
  --log-level <level>       Powertools log level of the lanes (default ${DEFAULTS.logLevel})
output
  --status-port <port>      the live status page on http://127.0.0.1:<port>/ (default ${DEFAULTS.statusPort}; another free port
                            when it is taken; the address is printed at the start); --keep keeps it until Ctrl-C
  --no-status               no status page
  --json                    print exactly one JSON object on stdout at the end (progress goes to stderr)
  --keep                    keep the state (change log, audit log, broker, checkpoints) under ${DEFAULTS.stateDir}/ and
                            the cache keys in Redis, for exploring; otherwise everything is removed
  --help                    this text`;

/** The flags, for node:util parseArgs (strings are checked and converted below). */
const FLAGS = {
  rate: { type: 'string' },
  duration: { type: 'string' },
  'idle-ms': { type: 'string' },
  'seed-rows': { type: 'string' },
  'restart-capture-at': { type: 'string' },
  source: { type: 'string' },
  schema: { type: 'string' },
  tables: { type: 'string' },
  partitions: { type: 'string' },
  'batch-size': { type: 'string' },
  'window-ms': { type: 'string' },
  concurrency: { type: 'string' },
  'topic-prefix': { type: 'string' },
  format: { type: 'string' },
  'status-port': { type: 'string' },
  'no-status': { type: 'boolean' },
  compatibility: { type: 'string' },
  'log-level': { type: 'string' },
  'no-workload': { type: 'boolean' },
  workload: { type: 'boolean' },
  'no-cache': { type: 'boolean' },
  'no-schema-change': { type: 'boolean' },
  json: { type: 'boolean' },
  keep: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;
type Flags = ReturnType<typeof parseArgs<{ options: typeof FLAGS; strict: false; allowPositionals: true }>>['values'];

/** A bad command line; the message says what and the caller prints the usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function number(flags: Flags, name: keyof typeof FLAGS, fallback: number, min: number, max: number): number {
  const raw = text(flags, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be a number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function text(flags: Flags, name: keyof typeof FLAGS): string | undefined {
  const raw = flags[name];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw new UsageError(`--${name} needs a value`);
  return raw;
}

/**
 * Parses `npm start` arguments; throws UsageError for unknown flags, stray arguments and bad values. node:util's
 * parseArgs in non-strict mode, checked here: its own messages name JavaScript options rather than what to type.
 */
export function parseRunOptions(argv: readonly string[]): RunOptions | 'help' {
  const {
    values: flags,
    positionals,
    tokens,
  } = parseArgs({
    args: [...argv],
    options: FLAGS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const unknown = tokens
    .filter((t) => t.kind === 'option' && !(t.name in FLAGS))
    .map((t) => `--${(t as { name: string }).name}`);
  if (unknown.length > 0) throw new UsageError(`unknown option ${[...new Set(unknown)].join(', ')}`);
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const type = FLAGS[token.name as keyof typeof FLAGS]?.type;
    if (type === 'boolean' && token.value !== undefined) throw new UsageError(`--${token.name} takes no value`);
    // `--rate --duration 2`: non-strict parseArgs takes `--rate` as a boolean when the next word is an option.
    if (type === 'string' && token.value === undefined) throw new UsageError(`--${token.name} needs a value`);
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (flags.help) return 'help';
  if (flags.workload && flags['no-workload']) throw new UsageError('--workload and --no-workload conflict');

  const source = text(flags, 'source');
  if (source !== undefined && !/^postgres(ql)?:\/\//.test(source)) {
    throw new UsageError(`--source must be a postgres:// URL, got "${source}"`);
  }
  const tablesText = text(flags, 'tables');
  const tables = tablesText
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (tablesText !== undefined && (tables?.length ?? 0) === 0) throw new UsageError('--tables needs table names');
  const schema = text(flags, 'schema') ?? DEFAULTS.schema;
  const restartAt =
    flags['restart-capture-at'] !== undefined ? number(flags, 'restart-capture-at', 0, 0, 86_400) : undefined;
  const options: RunOptions = {
    schema,
    rate: number(flags, 'rate', DEFAULTS.rate, 1, 1_000_000),
    durationMs: number(flags, 'duration', DEFAULTS.durationS, 0.1, 86_400) * 1000,
    workload: flags.workload === true || (!flags['no-workload'] && source === undefined),
    idleMs: number(flags, 'idle-ms', DEFAULTS.idleMs, 100, 86_400_000),
    seedRows: Math.round(number(flags, 'seed-rows', DEFAULTS.seedRows, 10, 1_000_000)),
    partitions: Math.round(number(flags, 'partitions', DEFAULTS.partitions, 1, 64)),
    batchSize: Math.round(number(flags, 'batch-size', DEFAULTS.batchSize, 1, 10_000)),
    windowMs: Math.round(number(flags, 'window-ms', DEFAULTS.windowMs, 0, 300_000)),
    concurrency: Math.round(number(flags, 'concurrency', DEFAULTS.concurrency, 1, 10_000)),
    topicPrefix: text(flags, 'topic-prefix') ?? DEFAULTS.topicPrefix,
    json: flags.json === true,
    keep: flags.keep === true,
    stateDir: DEFAULTS.stateDir,
    redis: flags['no-cache'] ? null : 'auto',
    logLevel: (text(flags, 'log-level') ?? DEFAULTS.logLevel).toUpperCase(),
    // Never in someone else's database (--source --workload): the column would stay there after the run.
    schemaChange: flags['no-schema-change'] !== true && source === undefined,
    format: 'json',
    compatibility: 'BACKWARD',
    statusPort: flags['no-status'] ? null : Math.round(number(flags, 'status-port', DEFAULTS.statusPort, 0, 65_535)),
  };
  if (flags['no-status'] && flags['status-port'] !== undefined) {
    throw new UsageError('--status-port and --no-status conflict');
  }
  const format = text(flags, 'format');
  if (format !== undefined) {
    if (format !== 'json' && format !== 'avro') throw new UsageError(`--format must be json or avro, got "${format}"`);
    options.format = format;
  }
  const compatibility = text(flags, 'compatibility')?.toUpperCase();
  if (compatibility !== undefined) {
    if (!(COMPATIBILITY_LEVELS as readonly string[]).includes(compatibility)) {
      throw new UsageError(`--compatibility must be one of ${COMPATIBILITY_LEVELS.join(', ')}, got "${compatibility}"`);
    }
    if (options.format !== 'avro') throw new UsageError('--compatibility needs --format avro');
    options.compatibility = compatibility as CompatibilityLevel;
  }
  if (source !== undefined) options.source = source;
  if (tables) options.tables = tables.map((t) => (t.includes('.') ? t : `${schema}.${t}`));
  if (restartAt !== undefined) options.restartCaptureAtMs = restartAt * 1000;
  if (!/^[a-zA-Z0-9_-]+$/.test(options.topicPrefix)) {
    throw new UsageError(`--topic-prefix may hold letters, digits, _ and - only, got "${options.topicPrefix}"`);
  }
  return options;
}
