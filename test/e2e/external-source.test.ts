/**
 * `npm start --source <url> --schema … --tables … --no-workload`: the local pipeline capturing someone else's
 * PostgreSQL — only what was selected, while they change it, until they go quiet — and leaving nothing behind there.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalPostgres, startEmbeddedPostgres } from '../../tools/local/postgres';
import { runLocal } from '../../tools/local/runner/run';
import { smallRun } from './support';

const RUN_TIMEOUT = 150_000;

const SCHEMA = `
  CREATE SCHEMA shop;
  CREATE TABLE shop.accounts (
    id bigint PRIMARY KEY, owner text NOT NULL, balance numeric(12, 2), opened timestamptz, tags jsonb
  );
  CREATE TABLE shop.notes (account_id bigint, line int, body text, PRIMARY KEY (account_id, line));
  CREATE TABLE shop.internal (id serial PRIMARY KEY, what text);
  CREATE TABLE public.elsewhere (id int PRIMARY KEY);
  INSERT INTO shop.accounts
    SELECT g, 'owner ' || g, g * 10.5, '2024-01-01T00:00:00Z'::timestamptz + g * interval '1 day', jsonb_build_object('n', g)
    FROM generate_series(1, 20) g;
  INSERT INTO shop.notes SELECT g % 20 + 1, g, 'note ' || g FROM generate_series(1, 30) g;
  INSERT INTO shop.internal (what) VALUES ('seed');
  INSERT INTO public.elsewhere VALUES (1);
`;

/**
 * Someone else's application: a burst of changes to every table, selected or not, in a few transactions. Returns how
 * many change events the selected tables' changes make.
 */
async function theirChanges(url: string): Promise<number> {
  const client = new pg.Client(url);
  await client.connect();
  let selected = 0;
  try {
    for (let round = 0; round < 10; round++) {
      await client.query('BEGIN');
      await client.query(`INSERT INTO shop.accounts VALUES ($1, $2, 1.25, now(), '{"new": true}')`, [
        100 + round,
        `late ${round}`,
      ]);
      await client.query('UPDATE shop.accounts SET balance = balance + 1 WHERE id = $1', [round + 1]);
      await client.query('INSERT INTO shop.notes VALUES ($1, 100, $2)', [round + 1, `added ${round}`]);
      await client.query('INSERT INTO shop.internal (what) VALUES ($1)', [`not captured ${round}`]);
      await client.query('INSERT INTO public.elsewhere VALUES ($1)', [round + 2]);
      await client.query('COMMIT');
      selected += 3;
      await new Promise((r) => setTimeout(r, 50));
    }
    const deleted = await client.query('DELETE FROM shop.notes WHERE account_id = 2');
    await client.query('UPDATE shop.accounts SET id = 999 WHERE id = 3'); // a key change: a delete and a create
    return selected + (deleted.rowCount ?? 0) + 2;
  } finally {
    await client.end();
  }
}

describe('npm start against an existing database', () => {
  let source: LocalPostgres;
  beforeAll(async () => {
    source = await startEmbeddedPostgres();
    const client = new pg.Client(source.url);
    await client.connect();
    await client.query(SCHEMA);
    await client.end();
  }, 60_000);
  afterAll(async () => {
    await source?.stop();
  });

  it(
    'captures only the selected tables while someone else changes them, stops when they go quiet, and leaves no slot or publication behind',
    async () => {
      // Arrange
      const options = smallRun({
        source: source.url,
        schema: 'shop',
        tables: ['accounts', 'notes'],
        workload: false,
        idleMs: 2000,
        durationMs: 60_000,
      });
      let theirs: Promise<number> | undefined;

      // Act
      const result = await runLocal(options, {
        onStarted: () => {
          theirs = theirChanges(source.url);
        },
      });
      const changed = await (theirs as Promise<number>);

      // Assert: consistent over exactly the selected tables, with their changes in it
      expect(result.consistent).toBe(true);
      const { warehouse, cache, audit } = result.checks;
      if (!warehouse.checked || !cache.checked || !audit.checked) throw new Error('every check must have run');
      expect(Object.keys(warehouse.tables).sort()).toEqual(['pg.shop.accounts', 'pg.shop.notes']);
      expect(Object.keys(cache.tables).sort()).toEqual(['pg.shop.accounts', 'pg.shop.notes']);
      expect(warehouse.tables['pg.shop.accounts']).toMatchObject({ sourceRows: 30, missing: 0, extra: 0 });
      expect(cache.tables['pg.shop.notes']).toMatchObject({ kind: 'keyed', missing: 0, extra: 0, different: 0 });
      const snapshotReads = 20 + 30;
      expect(audit.distinctChanges).toBe(snapshotReads + changed);
      expect(audit).toMatchObject({ duplicateIds: 0, missing: 0, unexpected: 0 });
      // Assert: it waited for them, and stopped after the quiet, long before --duration
      expect(result.details.workload).toBeNull();
      expect(result.details.timingsMs.workload).toBeGreaterThan(2000);
      expect(result.details.timingsMs.workload).toBeLessThan(30_000);

      // Assert: their database holds what it held, and none of ours
      const client = new pg.Client(source.url);
      await client.connect();
      try {
        const slots = await client.query('SELECT slot_name FROM pg_replication_slots');
        const publications = await client.query('SELECT pubname FROM pg_publication');
        const demo = await client.query(
          "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_schema IN ('public', 'shop') ORDER BY 1",
        );
        expect(slots.rows).toEqual([]);
        expect(publications.rows).toEqual([]);
        expect(demo.rows.map((r) => r.t)).toEqual(['public.elsewhere', 'shop.accounts', 'shop.internal', 'shop.notes']);
      } finally {
        await client.end();
      }
    },
    RUN_TIMEOUT,
  );
});
