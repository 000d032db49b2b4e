/**
 * What a run checks in a database it does not own (`--source`) before it creates anything there.
 *
 * With `--workload`: that the demo tables the workload writes to are there.
 *
 * Room for its replication: a run holds two slots and two walsenders at its end (its capture, and the throw-away
 * capture that reads the source rows for verification), so a server without that room would fail the run only at
 * verification, after all the work.
 *
 * What earlier runs left behind: a run killed outright (SIGKILL, a lost machine) cannot drop its slot and
 * publication, and an inactive slot makes the server keep its WAL until its disk fills. The next run names them, with
 * the WAL each holds and the SQL that removes them. It does not remove them itself: an inactive slot of ours may
 * also belong to another run against the same database that is only starting.
 *
 * Its size: verification holds every source row in memory, and running out of it ends the process without any
 * cleanup; a selection larger than the heap can hold gets a warning that says how to narrow it or grow the heap.
 *
 * What it captures: PostgreSQL refuses every UPDATE and DELETE on a table that is in a publication but has no
 * replica identity (REPLICA IDENTITY NOTHING, or DEFAULT without a primary key): "cannot update table … because it
 * does not have a replica identity and publishes updates". The run's publication would therefore break the owner's
 * application on such tables for as long as the run lasts. So they are never published: named with `--tables`, the
 * run refuses to start and says how to make them capturable; found in `--schema`, they are left out with a loud
 * warning.
 */
import { getHeapStatistics } from 'node:v8';
import type pg from 'pg';
import { SourceError } from '../capture';
import { Catalog } from '../capture/catalog';
import { quoteIdent } from '../capture/replication';
import { DEMO_TABLES } from '../postgres';
import { UsageError } from './options';

/** Slots and walsenders a run needs at once: its capture's, and verification's throw-away one. */
const REPLICATION_CONNECTIONS_NEEDED = 2;

/** Throws a {@link SourceError} when the server has too few free replication slots or walsenders for a run. */
export async function ensureReplicationRoom(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{
    wal_level: string;
    slots: number;
    used_slots: number;
    senders: number;
    used_senders: number;
  }>(
    `SELECT current_setting('wal_level') AS wal_level,
            current_setting('max_replication_slots')::int AS slots,
            (SELECT count(*) FROM pg_replication_slots)::int AS used_slots,
            current_setting('max_wal_senders')::int AS senders,
            (SELECT count(*) FROM pg_stat_replication)::int AS used_senders`,
  );
  const room = rows[0];
  // Without wal_level=logical the capture refuses first, with the one fix that matters (minimal forces 0 walsenders).
  if (room?.wal_level !== 'logical') return;
  const need = REPLICATION_CONNECTIONS_NEEDED;
  const lacking = [
    room.slots - room.used_slots < need
      ? `${room.slots - room.used_slots} free replication slot(s) (max_replication_slots = ${room.slots}, ${room.used_slots} in use)`
      : undefined,
    room.senders - room.used_senders < need
      ? `${room.senders - room.used_senders} free walsender(s) (max_wal_senders = ${room.senders}, ${room.used_senders} in use)`
      : undefined,
  ].filter((x) => x !== undefined);
  if (lacking.length > 0) {
    throw new SourceError(
      `the source database has ${lacking.join(' and ')}; a run needs ${need} of each (its capture, and a throw-away one ` +
        'that reads the source rows for verification). Raise the setting(s) and restart the server, or free some.',
    );
  }
}

/** Names of every run's slot and publication in a `--source` database (`<prefix><run id>`). */
export const RUN_SLOT_PREFIX = 'cdc_sync_start_';

/**
 * A warning naming the slots and publications of earlier runs (see {@link RUN_SLOT_PREFIX}) that nobody uses, with
 * the WAL each slot keeps and the SQL that removes them; undefined when there are none.
 */
export async function leftoversOfEarlierRuns(client: pg.Client): Promise<string | undefined> {
  const { rows: slots } = await client.query<{ name: string; kept: string | null }>(
    `SELECT slot_name AS name,
            pg_size_pretty(pg_wal_lsn_diff(
              CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,
              restart_lsn)) AS kept
       FROM pg_replication_slots
      WHERE starts_with(slot_name, $1) AND NOT active
      ORDER BY 1`,
    [RUN_SLOT_PREFIX],
  );
  // A publication whose run still streams has an active slot named after it.
  const { rows: publications } = await client.query<{ name: string }>(
    `SELECT pubname AS name FROM pg_publication p
      WHERE starts_with(pubname, $1)
        AND NOT EXISTS (SELECT 1 FROM pg_replication_slots s WHERE s.active AND starts_with(s.slot_name, p.pubname))
      ORDER BY 1`,
    [RUN_SLOT_PREFIX],
  );
  if (slots.length === 0 && publications.length === 0) return undefined;
  const found = [
    ...slots.map((s) => `replication slot ${s.name} (keeps ${s.kept ?? 'no'} WAL)`),
    ...publications.map((p) => `publication ${p.name}`),
  ];
  const sql = [
    ...slots.map((s) => `SELECT pg_drop_replication_slot('${s.name}');`),
    ...(publications.length > 0
      ? [`DROP PUBLICATION IF EXISTS ${publications.map((p) => quoteIdent(p.name)).join(', ')};`]
      : []),
  ];
  return (
    `earlier runs that could not clean up (killed) left in the source database: ${found.join(', ')}. ` +
    'A slot nobody reads makes the server keep its WAL until its disk fills. This run leaves them alone (one may ' +
    `belong to another run that is only starting); if no other npm start uses this database, remove them: ${sql.join(' ')}`
  );
}

/**
 * Memory verification needs per source row: it holds every source row and every row rebuilt from the sinks at once.
 * Measured on the demo schema (110,053 rows: 385 MB of heap at verification), rounded up.
 */
const VERIFY_BYTES_PER_ROW = 3_500;

/**
 * A warning when the selection holds more rows (as the planner estimates them, or the statistics count them) than
 * verification can hold in this process's heap: running out of memory ends the process at once, without the cleanup
 * that drops the run's slot and publication. Undefined when they fit in three quarters of the heap.
 */
export async function sizeWarning(
  client: pg.Client,
  selection: Selection,
  heapLimitBytes = getHeapStatistics().heap_size_limit,
): Promise<string | undefined> {
  const { rows } = await client.query<{ rows: string }>(
    `SELECT coalesce(sum(greatest(c.reltuples, coalesce(s.n_live_tup, 0), 0)), 0)::bigint::text AS rows
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE (c.relkind = 'r' AND n.nspname = ANY($1::text[]))
         OR (c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = ANY($2::text[]))`,
    // As the capture takes them: a schema's plain tables (partitions, not their parents, so nothing counts twice), or
    // the tables named.
    ['schemas' in selection ? selection.schemas : [], 'tables' in selection ? selection.tables : []],
  );
  const estimate = Number(rows[0]?.rows ?? 0);
  const fits = Math.floor((heapLimitBytes * 0.75) / VERIFY_BYTES_PER_ROW);
  if (estimate <= fits) return undefined;
  const gb = (bytes: number) => (bytes / 1024 ** 3).toFixed(1);
  return (
    `about ${estimate.toLocaleString('en-US')} rows to capture: verification holds every source row and every row ` +
    `rebuilt from the sinks in memory at once (about ${gb(estimate * VERIFY_BYTES_PER_ROW)} GB; this heap holds ` +
    `${gb(heapLimitBytes)} GB), and running out of memory would end the run without dropping its slot and ` +
    'publication. Narrow the run with --tables, or give it more heap: ' +
    `NODE_OPTIONS=--max-old-space-size=${Math.ceil((estimate * VERIFY_BYTES_PER_ROW) / 0.75 / 1024 ** 2)} npm start …`
  );
}

/** The run's selection, as the capture and the verification take it. */
export type Selection = { tables: string[] } | { schemas: string[] };

/** A table of the selection that has no replica identity, and whether it has a primary key. */
interface Unpublishable {
  /** `schema.name` */
  table: string;
  primaryKey: boolean;
}

/** Tables of the selection (sorted by `schema.name`) that have no replica identity. */
async function tablesWithoutReplicaIdentity(client: pg.Client, selection: Selection): Promise<Unpublishable[]> {
  const { rows } = await client.query<{ name: string; pk: boolean }>(
    `SELECT n.nspname || '.' || c.relname AS name,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS pk
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r'
        AND (n.nspname = ANY($1::text[]) OR n.nspname || '.' || c.relname = ANY($2::text[]))
        AND (c.relreplident = 'n'
          OR (c.relreplident = 'd'
            AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))
      ORDER BY 1`,
    ['schemas' in selection ? selection.schemas : [], 'tables' in selection ? selection.tables : []],
  );
  return rows.map((r) => ({ table: r.name, primaryKey: r.pk }));
}

/** DEFAULT where there is a primary key (only the key goes into the WAL), else FULL (the whole old row). */
function fixFor(tables: Unpublishable[]): string {
  return tables.map((t) => `ALTER TABLE ${t.table} REPLICA IDENTITY ${t.primaryKey ? 'DEFAULT' : 'FULL'};`).join(' ');
}

/**
 * The selection to capture from someone else's database: unchanged when every table can be published; without the
 * tables that cannot (and a warning naming them) when a whole schema was selected. Throws a {@link UsageError} when
 * such a table was named with `--tables`, or when nothing would be left.
 */
export async function safeSelection(
  client: pg.Client,
  selection: Selection,
): Promise<{ selection: Selection; warning?: string }> {
  const blocked = await tablesWithoutReplicaIdentity(client, selection);
  if (blocked.length === 0) return { selection };
  const names = blocked.map((t) => t.table);
  const why =
    'no replica identity (DEFAULT without a primary key, or NOTHING): while the run’s publication exists, ' +
    'PostgreSQL would refuse every UPDATE and DELETE on them in your database';
  if ('tables' in selection) {
    throw new UsageError(
      `cannot capture ${names.join(', ')} (${why}). Leave them out of --tables, or make them capturable first: ${fixFor(blocked)}`,
    );
  }
  // The tables the capture would take from the schemas (its own listing), less the unpublishable ones.
  const left = (await new Catalog(client).tablesInSchemas(selection.schemas))
    .map((t) => `${t.schema}.${t.name}`)
    .filter((t) => !names.includes(t));
  if (left.length === 0) {
    throw new UsageError(
      `nothing to capture in ${selection.schemas.join(', ')}: every table there has ${why}. Make them capturable first: ${fixFor(blocked)}`,
    );
  }
  return {
    selection: { tables: left },
    warning: `NOT capturing ${names.join(', ')} (${why}); to include them: ${fixFor(blocked)}`,
  };
}

/** `--workload` on someone else's database writes to the demo tables: they must be there, in `--schema`. */
export async function ensureDemoTables(client: pg.Client, schema: string): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname = ANY($2::text[])`,
    [schema, DEMO_TABLES],
  );
  const have = new Set(rows.map((r) => r.name));
  const missing = DEMO_TABLES.filter((t) => !have.has(t));
  if (missing.length > 0) {
    throw new UsageError(
      `--workload writes to the demo tables, and schema ${schema} of the source lacks ${missing.join(', ')}: ` +
        'run without --workload to capture what others change, or point --schema at a copy of the demo schema',
    );
  }
}

/**
 * The tables a selection captures now, as `schema.table` (Debezium's data-collection names): a table created since
 * the run started counts, a dropped one does not. `exclude` leaves out the signal table.
 */
export async function capturedTables(
  client: pg.Client,
  selection: Selection,
  exclude: string[] = [],
): Promise<string[]> {
  const catalog = new Catalog(client);
  const names =
    'tables' in selection
      ? (
          await Promise.all(
            selection.tables.map(async (t) => {
              const [schema, name] = t.split('.') as [string, string];
              return (await catalog.oidOf(schema, name)) === null ? null : t;
            }),
          )
        ).filter((t): t is string => t !== null)
      : (await catalog.tablesInSchemas(selection.schemas)).map((t) => `${t.schema}.${t.name}`);
  return names.filter((t) => !exclude.includes(t));
}
