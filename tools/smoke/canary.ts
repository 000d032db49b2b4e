/**
 * The canary row: written into the source's heartbeat table, which every source has and the connector captures like
 * any table, so a row there goes through the whole pipeline without touching business data. The connector upserts
 * row 1 on every heartbeat; the canary takes a fresh negative id, so the two never meet.
 *
 * The table's timestamp column is not assumed: the local demo schema calls it `ts`, the documented DDL for deployed
 * sources `last_heartbeat`. Every timestamp column gets `now()`; any other NOT NULL column without a default means
 * the table is not a heartbeat table, and the smoke test says so rather than guessing a value.
 */
import { randomInt } from 'node:crypto';
import pg from 'pg';

/** A problem the user fixes before the smoke test can run (no run, no heartbeat table, unreachable source): exit 2. */
export class SmokeSetupError extends Error {
  override readonly name = 'SmokeSetupError';
}

export interface CanaryWriter {
  /** `schema.table` */
  readonly table: string;
  /** Inserts a canary row under a fresh negative id; resolves once the source acknowledged the commit. */
  insert(): Promise<{ id: number; committedAt: number }>;
  /** Deletes it again; resolves once committed. */
  delete(id: number): Promise<{ committedAt: number }>;
  close(): Promise<void>;
}

/** `"schema"."table"` from `schema.table`. */
export function quoteTable(table: string): string {
  const parts = table.split('.');
  if (parts.length !== 2 || parts.some((p) => p === '')) {
    throw new SmokeSetupError(`the heartbeat table must be named schema.table, got "${table}"`);
  }
  return parts.map((p) => `"${p.replaceAll('"', '""')}"`).join('.');
}

interface Column {
  name: string;
  timestamp: boolean;
  required: boolean;
  key: boolean;
}

/** Connects to the source and checks that the table can take a canary row; `connection` as pg takes it. */
export async function openCanaryWriter(connection: string | pg.ClientConfig, table: string): Promise<CanaryWriter> {
  const quoted = quoteTable(table);
  const client = new pg.Client(connection);
  try {
    await client.connect();
  } catch (error) {
    throw new SmokeSetupError(`cannot connect to the source database: ${(error as Error).message}`);
  }
  try {
    const { rows } = await client.query<Column>(
      `SELECT a.attname AS name,
              a.atttypid IN ('timestamptz'::regtype, 'timestamp'::regtype) AS timestamp,
              a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
                        AND a.attnum = ANY (i.indkey)) AS key
         FROM pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [quoted],
    );
    if (rows.length === 0) throw new SmokeSetupError(`the heartbeat table ${table} does not exist in the source`);
    const keys = rows.filter((c) => c.key).map((c) => c.name);
    if (keys.length !== 1 || keys[0] !== 'id') {
      throw new SmokeSetupError(
        `the heartbeat table ${table} must have the primary key (id), not (${keys.join(', ')})`,
      );
    }
    // Checked before anything is written: a canary the smoke test could insert but not delete would stay behind.
    const rights = await client.query<{ insert: boolean; delete: boolean }>(
      `SELECT has_table_privilege(to_regclass($1), 'INSERT') AS insert,
              has_table_privilege(to_regclass($1), 'DELETE') AS delete`,
      [quoted],
    );
    const missing = ['insert', 'delete'].filter((r) => !rights.rows[0]?.[r as 'insert' | 'delete']);
    if (missing.length > 0) {
      throw new SmokeSetupError(
        `the source user may not ${missing.join(' or ')} rows of ${table}: GRANT ${missing.join(', ').toUpperCase()} ON ${table} TO <user>`,
      );
    }
    const stamps = rows.filter((c) => c.timestamp).map((c) => c.name);
    const unset = rows.filter((c) => c.required && c.name !== 'id' && !c.timestamp).map((c) => c.name);
    if (unset.length > 0) {
      throw new SmokeSetupError(`the heartbeat table ${table} has NOT NULL columns the canary cannot fill: ${unset}`);
    }
    const columns = ['id', ...stamps].map((c) => `"${c.replaceAll('"', '""')}"`).join(', ');
    const values = ['$1', ...stamps.map(() => 'now()')].join(', ');
    const insertSql = `INSERT INTO ${quoted} (${columns}) VALUES (${values}) ON CONFLICT DO NOTHING RETURNING id`;
    return {
      table,
      async insert() {
        // 2^31 negative ids: a clash with an earlier canary left behind is unlikely, and taken care of anyway.
        for (let attempt = 0; attempt < 5; attempt++) {
          const id = -randomInt(1, 2 ** 31 - 1);
          const result = await client.query(insertSql, [id]);
          if (result.rowCount === 1) return { id, committedAt: Date.now() };
        }
        throw new Error(`could not find a free canary id in ${table}`);
      },
      async delete(id) {
        await client.query(`DELETE FROM ${quoted} WHERE id = $1`, [id]);
        return { committedAt: Date.now() };
      },
      async close() {
        await client.end();
      },
    };
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}
