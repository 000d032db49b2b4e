import { tableIdOf } from './change';
import { hasUnknownCommit } from './dedupe';
import { CdcError, SchemaHistoryError } from './errors';
import type { ChangeEvent, ChangeSource, Lane, SchemaColumn, SnapshotSignaller, TableSchemaVersion } from './types';

/**
 * Schema history of the captured tables, shared by the lanes (issue 14).
 *
 * Each topic-partition's checkpoint remembers, per table, the fingerprint of the last schema version it applied
 * (AppliedSchemas in dedupe.ts: one partition of the catch-all topic carries many tables). When a fresh event carries
 * another one for its table, the partition has met a schema version and registers it here. The registry keeps,
 * per table, the latest version (fingerprint, first source order, number) and one item per version. The registration
 * that moves the latest version (newer order, other fingerprint) wins: it classifies the change against the previous
 * version, reports it (metric `SchemaChanged` and a log line, by the handler) and applies the table's policy —
 * `auto` sends an incremental snapshot signal when the sinks cannot reconcile the change from the stream alone.
 *
 * Why the signal survives a crash: a version that needs a signal is written `pending` together with the move of the
 * latest version (one transaction), with a claim by the winning lane-partition. The claimant sends, then marks it
 * `signalled`. If it crashes in between, its partition did not commit its checkpoint, so the retry meets the same
 * version again, finds it `pending` and claimed by itself, and sends. Another lane-partition meeting a `pending` version
 * whose claim has expired takes it over. Sending twice only costs a second incremental snapshot (reads are idempotent
 * in every sink); never sending would leave the sinks inconsistent.
 */

/** What the lanes do about a schema change the sinks cannot reconcile from the stream alone. */
export type SchemaPolicyAction = 'auto' | 'alarm' | 'off';

/** Per-table policy (`SCHEMA_CHANGE_POLICY`): tables named as data collections (`<schema>.<table>`) or table ids. */
export interface SchemaChangePolicy {
  default: SchemaPolicyAction;
  tables?: Record<string, SchemaPolicyAction>;
}

export const DEFAULT_SCHEMA_CHANGE_POLICY: SchemaChangePolicy = { default: 'auto' };

/** The policy for one table: by data collection name, then by table id, then the default. */
export function policyFor(policy: SchemaChangePolicy, dataCollection: string, tableId: string): SchemaPolicyAction {
  return policy.tables?.[dataCollection] ?? policy.tables?.[tableId] ?? policy.default;
}

/**
 * The table as the connector names it in signals (`data-collections`): PostgreSQL `<schema>.<table>`, MySQL and
 * MariaDB `<db>.<table>`, SQL Server `<db>.<schema>.<table>`.
 */
export function dataCollectionOf(source: ChangeSource): string {
  const parts =
    source.connector === 'sqlserver'
      ? [source.db, source.schema, source.table]
      : source.connector === 'mysql' || source.connector === 'mariadb'
        ? [source.db, source.table]
        : [source.schema ?? source.db, source.table];
  return parts.filter((p): p is string => p !== null && p !== '').join('.');
}

// ---------------------------------------------------------------------------------------------------------------
// Classification (pure)
// ---------------------------------------------------------------------------------------------------------------

/**
 * - `initial`: the table's first version, met on an initial snapshot read: every row comes from the snapshot.
 * - `new-table`: the first version met on a streamed change or an incremental read: rows written before capture
 *   started may be missing → reconcile.
 * - `additive-nullable`: only optional columns without a default were added: every untouched row reads null there,
 *   which is what the source holds → nothing to reconcile.
 * - `unreconcilable`: anything else (drop, rename = drop + add, retype, parameters, default, optionality, order):
 *   untouched rows keep the old shape in the sinks → reconcile.
 */
export type SchemaClassification = 'initial' | 'new-table' | 'additive-nullable' | 'unreconcilable';

export type ColumnChangeKind = 'added' | 'dropped' | 'retyped' | 'optionality' | 'default' | 'parameters' | 'moved';

/** What changed in one column between two versions (for the log line and the registry). */
export interface ColumnChange {
  column: string;
  change: ColumnChangeKind;
  from?: unknown;
  to?: unknown;
}

export interface SchemaClassificationResult {
  classification: SchemaClassification;
  /** The sinks need an incremental snapshot of the table to match the source. */
  reconcile: boolean;
  changes: ColumnChange[];
}

/** The first event that carried a version: decides `initial` vs `new-table`. */
export interface FirstEvent {
  op: ChangeEvent['op'];
  /** `source.snapshot` ("true", "first", "last", "incremental", "false", ...). */
  snapshot: string;
}

const typeOf = (c: SchemaColumn) => (c.logical ? `${c.type}/${c.logical}` : c.type);
const hasDefault = (c: SchemaColumn) => c.default !== undefined && c.default !== null;
const json = (value: unknown) => JSON.stringify(value ?? null);

/** Column-by-column differences between two versions, by name (column order is compared last). */
export function diffColumns(previous: readonly SchemaColumn[], next: readonly SchemaColumn[]): ColumnChange[] {
  const before = new Map(previous.map((c) => [c.name, c] as const));
  const after = new Map(next.map((c) => [c.name, c] as const));
  const changes: ColumnChange[] = [];
  for (const c of previous)
    if (!after.has(c.name)) changes.push({ column: c.name, change: 'dropped', from: typeOf(c) });
  for (const n of next) {
    const p = before.get(n.name);
    if (!p) {
      changes.push({
        column: n.name,
        change: 'added',
        to: { type: typeOf(n), optional: n.optional, ...(hasDefault(n) ? { default: n.default } : {}) },
      });
      continue;
    }
    if (typeOf(p) !== typeOf(n)) changes.push({ column: n.name, change: 'retyped', from: typeOf(p), to: typeOf(n) });
    if (p.optional !== n.optional)
      changes.push({ column: n.name, change: 'optionality', from: p.optional, to: n.optional });
    if (json(p.default) !== json(n.default))
      changes.push({ column: n.name, change: 'default', from: p.default, to: n.default });
    if (json(p.parameters) !== json(n.parameters))
      changes.push({ column: n.name, change: 'parameters', from: p.parameters, to: n.parameters });
  }
  // The columns both versions have, in each version's order: a different order is a change of its own.
  const kept = (cols: readonly SchemaColumn[], other: Map<string, SchemaColumn>) =>
    cols.filter((c) => other.has(c.name)).map((c) => c.name);
  const keptBefore = kept(previous, after);
  const keptAfter = kept(next, before);
  keptAfter.forEach((name, i) => {
    if (keptBefore[i] !== name) changes.push({ column: name, change: 'moved', from: keptBefore.indexOf(name), to: i });
  });
  return changes;
}

/** Is this the read of an initial (or blocking) snapshot, whose rows are the whole table? */
function isInitialSnapshotRead(first: FirstEvent): boolean {
  return first.op === 'r' && first.snapshot !== 'incremental' && first.snapshot !== 'false';
}

/**
 * Classifies a table's new schema version against the previous one (absent: the table's first version). Pure; the
 * table of cases is in test/unit/schema-history.test.ts.
 */
export function classifySchemaChange(
  previous: readonly SchemaColumn[] | undefined,
  next: readonly SchemaColumn[],
  first: FirstEvent,
): SchemaClassificationResult {
  if (previous === undefined) {
    return isInitialSnapshotRead(first)
      ? { classification: 'initial', reconcile: false, changes: [] }
      : { classification: 'new-table', reconcile: true, changes: [] };
  }
  const changes = diffColumns(previous, next);
  const additive = changes.every((c) => {
    if (c.change !== 'added') return false;
    const column = next.find((n) => n.name === c.column);
    return column?.optional === true && !hasDefault(column);
  });
  return additive
    ? { classification: 'additive-nullable', reconcile: false, changes }
    : { classification: 'unreconcilable', reconcile: true, changes };
}

// ---------------------------------------------------------------------------------------------------------------
// The registry port
// ---------------------------------------------------------------------------------------------------------------

/** Where a version stands with its reconciliation. */
export type ReconciliationState =
  /** Nothing to reconcile (initial, additive nullable). */
  | 'not-needed'
  /** A signal is due (policy auto); `claimant` is sending it. */
  | 'pending'
  /** The signal was sent. */
  | 'signalled'
  /** Reconciliation needed but the policy says alarm or off. */
  | 'unreconciled';

/** The latest version of a table (`schema#<tableId>`). */
export interface LatestSchema {
  version: number;
  fingerprint: string;
  order: string;
  columns: SchemaColumn[];
}

/** One version of a table (`schema#<tableId>#v<N>`). */
export interface SchemaVersionRecord {
  table: string;
  version: number;
  fingerprint: string;
  columns: SchemaColumn[];
  /** Source order and position of the first event registered with this version. */
  order: string;
  position: Record<string, string>;
  classification: SchemaClassification;
  changes: ColumnChange[];
  reconciliation: ReconciliationState;
  /** Data collection the signal names. */
  dataCollection: string;
  /** The connector's `topic.prefix` (`source.name`): which connector the signal goes to. */
  topicPrefix: string;
  /** The lane-partition sending the signal, and until when its claim holds (ms). */
  claimant?: string;
  claimedUntil?: number;
  signalId?: string;
  /** When it was registered (ms). */
  at: number;
}

/**
 * The shared schema registry (DynamoDB in AWS, see DynamoSchemaRegistry). Every method throws a retryable
 * SchemaHistoryError when the store is unavailable.
 */
export interface SchemaRegistry {
  /** Strongly consistent read of a table's latest version. */
  latest(table: string): Promise<LatestSchema | undefined>;
  /**
   * Atomically moves the table's latest version from `expected` (0: none yet) to `record.version` and creates the
   * version item. False when someone moved it since `expected` was read (the caller reads again), or when the latest
   * is at the same fingerprint or at an order not below `record.order` — unless `record.order` lacks its commit part
   * (hasUnknownCommit: not comparable, the caller decided).
   */
  advance(table: string, expected: number, record: SchemaVersionRecord): Promise<boolean>;
  /** Strongly consistent read of one version. */
  version(table: string, version: number): Promise<SchemaVersionRecord | undefined>;
  /**
   * Claims a `pending` version's signal for `claimant` until `until`: succeeds when unclaimed, claimed by the same
   * claimant, or the claim expired before `now`.
   */
  claimSignal(table: string, version: number, claimant: string, now: number, until: number): Promise<boolean>;
  /** Marks a `pending` version `signalled` (no-op when it is not pending any more). */
  markSignalled(table: string, version: number, signalId: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------------
// Meeting a version (orchestration over the ports)
// ---------------------------------------------------------------------------------------------------------------

/** What the lane did about a schema change it registered first (for the log line and the metrics). */
export type SchemaChangeAction =
  /** An incremental snapshot signal was sent. */
  | 'signalled'
  /** Reconciliation needed; policy alarm → metric SchemaChangeUnreconciled. */
  | 'alarm'
  /** Reconciliation needed; policy off → the log line only. */
  | 'off'
  /** Reconciliation needed under policy auto, but this lane has no signaller → metric SchemaChangeUnreconciled. */
  | 'no-signaller'
  /** Nothing to reconcile. */
  | 'none';

/** A schema change registered by this lane (the winner's report). */
export interface SchemaChangeReport {
  lane: Lane;
  table: string;
  dataCollection: string;
  version: number;
  /** Fingerprint of the previous version; absent for a table's first. */
  from?: string;
  to: string;
  classification: SchemaClassification;
  changes: ColumnChange[];
  order: string;
  action: SchemaChangeAction;
}

/** Whether the report calls for the `SchemaChangeUnreconciled` alarm metric. */
export function isUnreconciled(report: SchemaChangeReport): boolean {
  return report.action === 'alarm' || report.action === 'no-signaller';
}

export interface SchemaHistoryOptions {
  registry: SchemaRegistry;
  /**
   * Sends signals: one signaller for every connector, or the signaller of the connector with this `topic.prefix`
   * (undefined: none for it). Absent: policy `auto` cannot signal; such changes are reported `no-signaller`.
   */
  signaller?: SnapshotSignaller | ((topicPrefix: string) => SnapshotSignaller | undefined);
  /** @default DEFAULT_SCHEMA_CHANGE_POLICY */
  policy?: SchemaChangePolicy;
  clock?: () => number;
  /** How long a claim on a pending signal holds before another lane-partition may take it over. @default 60 s */
  claimMs?: number;
}

/** The outcome of meeting a version: its number when this partition is not behind, and a report when it won. */
export interface SchemaMeeting {
  version?: number;
  report?: SchemaChangeReport;
}

/** How many versions back a partition behind the latest looks for its version's number. */
const EARLIER_LOOKUPS = 10;

/** Optimistic attempts before a registration gives up (retryably) on a table many partitions register at once. */
const ADVANCE_ATTEMPTS = 5;

/** The signal's id: deterministic, so a re-send after a crash is recognisably the same request. */
export function signalIdOf(table: string, version: number): string {
  return `schema-${table}-v${version}`;
}

/** Registers the schema versions partitions meet and acts on them. One per lane, built at cold start. */
export class SchemaHistory {
  private readonly clock: () => number;
  private readonly policy: SchemaChangePolicy;
  private readonly claimMs: number;
  private readonly signallerFor: (topicPrefix: string) => SnapshotSignaller | undefined;

  constructor(private readonly options: SchemaHistoryOptions) {
    const { signaller } = options;
    this.signallerFor = typeof signaller === 'function' ? signaller : () => signaller;
    this.clock = options.clock ?? Date.now;
    this.policy = options.policy ?? DEFAULT_SCHEMA_CHANGE_POLICY;
    this.claimMs = options.claimMs ?? 60_000;
  }

  /**
   * A partition met `schema` at `event` (its first event with that version). `claimant` names the lane-partition
   * (`<lane>#<topic>-<partition>`): the same one retrying after a crash finds its own claim.
   */
  async meet(lane: Lane, claimant: string, event: ChangeEvent, schema: TableSchemaVersion): Promise<SchemaMeeting> {
    try {
      return await this.register(lane, claimant, event, schema);
    } catch (error) {
      if (error instanceof CdcError && error.retryable) throw error;
      throw new SchemaHistoryError('SCHEMA_REGISTRY_UNAVAILABLE', (error as Error).message, { cause: error });
    }
  }

  private async register(
    lane: Lane,
    claimant: string,
    event: ChangeEvent,
    schema: TableSchemaVersion,
  ): Promise<SchemaMeeting> {
    const { registry } = this.options;
    const table = tableIdOf(event.source);
    const order = event.source.order;
    for (let attempt = 0; attempt < ADVANCE_ATTEMPTS; attempt++) {
      const latest = await registry.latest(table);
      if (latest?.fingerprint === schema.fingerprint) {
        // Already the latest (another partition or lane got here first, or this one before a crash).
        await this.finishPending(table, latest.version, claimant);
        return { version: latest.version };
      }
      // Behind the latest: an older version met late (a lagging partition, or a replay after a failed commit). It
      // must never move the latest back; its number is looked up so a replay hands the sinks the same entries.
      if (latest && !(order > latest.order)) {
        if (!hasUnknownCommit(order)) return this.earlier(table, latest.version, schema.fingerprint, order);
        // The first transaction after a connector start has no commit part: its order sorts below every known one
        // but cannot be placed (compareOrder). A version registered before is that one (any order); a version never
        // registered is new — the DDL ran while the connector was down — and is registered, as the dedupe applies
        // what it cannot place: skipping it would lose the change's reconciliation for good, since the partition
        // does not meet a version it applied again.
        const known = await this.earlier(table, latest.version, schema.fingerprint);
        if (known.version !== undefined) return known;
      }

      const dataCollection = dataCollectionOf(event.source);
      const { classification, reconcile, changes } = classifySchemaChange(latest?.columns, schema.columns, {
        op: event.op,
        snapshot: event.source.snapshot,
      });
      const action = policyFor(this.policy, dataCollection, table);
      const now = this.clock();
      const version = (latest?.version ?? 0) + 1;
      const pending = reconcile && action === 'auto' && this.signallerFor(event.source.name) !== undefined;
      const record: SchemaVersionRecord = {
        table,
        version,
        fingerprint: schema.fingerprint,
        columns: schema.columns,
        order,
        position: event.source.position,
        classification,
        changes,
        reconciliation: !reconcile ? 'not-needed' : pending ? 'pending' : 'unreconciled',
        dataCollection,
        topicPrefix: event.source.name,
        at: now,
      };
      if (pending) {
        record.claimant = claimant;
        record.claimedUntil = now + this.claimMs;
      }
      if (!(await registry.advance(table, latest?.version ?? 0, record))) continue; // lost the race: read again

      const report: SchemaChangeReport = {
        lane,
        table,
        dataCollection,
        version,
        to: schema.fingerprint,
        classification,
        changes,
        order,
        action: !reconcile ? 'none' : action === 'auto' ? (pending ? 'signalled' : 'no-signaller') : action,
      };
      if (latest) report.from = latest.fingerprint;
      if (pending) await this.signal(record);
      return { version, report };
    }
    throw new SchemaHistoryError(
      'SCHEMA_REGISTRY_CONTENDED',
      `schema of ${table}: the latest version moved ${ADVANCE_ATTEMPTS} times while registering ${schema.fingerprint}`,
    );
  }

  /**
   * The number of an earlier version (below `latest`) with this fingerprint registered at or before `order` (absent:
   * at any order), if any (bounded walk).
   */
  private async earlier(table: string, latest: number, fingerprint: string, order?: string): Promise<SchemaMeeting> {
    for (let n = latest - 1; n >= 1 && n >= latest - EARLIER_LOOKUPS; n--) {
      const record = await this.options.registry.version(table, n);
      if (record?.fingerprint === fingerprint && (order === undefined || record.order <= order)) return { version: n };
    }
    return {};
  }

  /** Sends the signal of a version this partition meets while it is still pending (a crash, or a lost claimant). */
  private async finishPending(table: string, version: number, claimant: string): Promise<void> {
    const record = await this.options.registry.version(table, version);
    if (record?.reconciliation !== 'pending' || !this.signallerFor(record.topicPrefix)) return;
    const now = this.clock();
    if (!(await this.options.registry.claimSignal(table, version, claimant, now, now + this.claimMs))) return;
    await this.signal(record);
  }

  private async signal(record: SchemaVersionRecord): Promise<void> {
    const signaller = this.signallerFor(record.topicPrefix);
    if (!signaller) return;
    const id = signalIdOf(record.table, record.version);
    try {
      await signaller.send({
        id,
        type: 'execute-snapshot',
        data: { 'data-collections': [record.dataCollection], type: 'incremental' },
      });
    } catch (error) {
      throw new SchemaHistoryError(
        'SIGNAL_FAILED',
        `sending the incremental snapshot signal for ${record.dataCollection} (schema version ${record.version}): ${(error as Error).message}`,
        { cause: error },
      );
    }
    await this.options.registry.markSignalled(record.table, record.version, id);
  }
}
