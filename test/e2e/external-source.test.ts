/**
 * `npm start --source <url> --schema … --tables … --no-workload`: the local pipeline capturing someone else's
 * PostgreSQL — only what was selected, while they change it, until they go quiet — and leaving nothing behind there.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type LocalPostgres, startEmbeddedPostgres } from '../../tools/local/postgres';
import { UsageError } from '../../tools/local/runner/options';
import { runLocal } from '../../tools/local/runner/run';
import { safeSelection, sizeWarning } from '../../tools/local/runner/source-checks';
import { runStart, smallRun, sql } from './support';

const RUN_TIMEOUT = 150_000;

/** A stack trace's frame lines, or the crash report's banner. */
const STACK = /npm start failed|\n\s+at /;

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

  it('warns when verification may not fit in memory: by the rows the statistics count against the heap', async () => {
    // Arrange: a table of 20 rows, analyzed
    await sql(
      source.url,
      'CREATE SCHEMA sized; CREATE TABLE sized.t (id int PRIMARY KEY); INSERT INTO sized.t SELECT generate_series(1, 20); ANALYZE sized.t',
    );
    const client = new pg.Client(source.url);
    await client.connect();
    try {
      // Act
      const roomy = await sizeWarning(client, { tables: ['sized.t'] }, 1024 ** 3);
      const tight = await sizeWarning(client, { schemas: ['sized'] }, (10 * 3500) / 0.75);

      // A partitioned table's rows count once: in its partitions, as the capture takes a schema
      await sql(
        source.url,
        `CREATE TABLE sized.p (id int PRIMARY KEY) PARTITION BY RANGE (id);
         CREATE TABLE sized.p1 PARTITION OF sized.p FOR VALUES FROM (0) TO (100);
         CREATE TABLE sized.p2 PARTITION OF sized.p FOR VALUES FROM (100) TO (200);
         INSERT INTO sized.p SELECT generate_series(1, 150); ANALYZE sized.p`,
      );
      const partitioned = await sizeWarning(client, { schemas: ['sized'] }, (10 * 3500) / 0.75);

      // Assert
      expect(roomy).toBeUndefined();
      expect(tight).toMatch(/^about 20 rows to capture: verification holds every source row/);
      expect(partitioned).toMatch(/^about 170 rows to capture/);
      expect(tight).toContain('Narrow the run with --tables, or give it more heap: NODE_OPTIONS=--max-old-space-size=');
    } finally {
      await client.end();
      await sql(source.url, 'DROP SCHEMA sized CASCADE');
    }
  });

  it(
    'as a command: a table the statistics call large gets the warning, and the run goes on',
    async () => {
      // Arrange: a small table whose statistics say 5 million rows (as after an ANALYZE of a large one)
      await sql(
        source.url,
        `CREATE SCHEMA bulk; CREATE TABLE bulk.events (id int PRIMARY KEY); INSERT INTO bulk.events VALUES (1), (2);
       UPDATE pg_class SET reltuples = 5000000 WHERE oid = 'bulk.events'::regclass`,
      );
      try {
        // Act
        const { code, stderr } = await runStart([
          '--source',
          source.url,
          '--schema',
          'bulk',
          '--no-workload',
          '--idle-ms',
          '500',
        ]);

        // Assert
        expect(code, stderr.slice(-2000)).toBe(0);
        expect(stderr).toContain('!! about 5,000,000 rows to capture: verification holds every source row');
        expect(stderr).not.toMatch(STACK);
      } finally {
        await sql(source.url, 'DROP SCHEMA bulk CASCADE');
      }
    },
    RUN_TIMEOUT,
  );
});

/**
 * Tables PostgreSQL cannot publish updates and deletes of (no primary key and REPLICA IDENTITY DEFAULT, or NOTHING):
 * once in a publication, their owner's UPDATE and DELETE fail. A run against someone else's database never publishes
 * them: left out of a whole schema with a warning, refused when named with --tables.
 */
describe('npm start against a database with tables that have no replica identity', () => {
  let source: LocalPostgres;
  const query = (text: string) => sql(source.url, text);
  const ours = async () => ({
    slots: (await query('SELECT slot_name FROM pg_replication_slots')).rows,
    publications: (await query('SELECT pubname FROM pg_publication')).rows,
  });

  beforeAll(async () => {
    source = await startEmbeddedPostgres();
    await query(`
      CREATE SCHEMA legacy;
      CREATE TABLE legacy.orders (id int PRIMARY KEY, status text);
      CREATE TABLE legacy.trail (at timestamptz, what text);
      CREATE TABLE legacy.events (at timestamptz, what text);
      ALTER TABLE legacy.events REPLICA IDENTITY FULL;
      CREATE TABLE legacy.locked (id int PRIMARY KEY, note text);
      ALTER TABLE legacy.locked REPLICA IDENTITY NOTHING;
      INSERT INTO legacy.orders SELECT g, 'new' FROM generate_series(1, 10) g;
      INSERT INTO legacy.trail SELECT now(), 'seed ' || g FROM generate_series(1, 10) g;
      INSERT INTO legacy.events SELECT now(), 'seed ' || g FROM generate_series(1, 10) g;
      INSERT INTO legacy.locked SELECT g, 'seed' FROM generate_series(1, 10) g;
      CREATE SCHEMA bare;
      CREATE TABLE bare.log (line text);
    `);
  }, 60_000);
  afterAll(async () => {
    await source?.stop();
  });

  it(
    'leaves them out of a whole schema with a warning, and their owner can still update and delete them during the run',
    async () => {
      // Arrange
      const options = smallRun({
        source: source.url,
        schema: 'legacy',
        workload: false,
        idleMs: 2000,
        durationMs: 60_000,
      });
      let theirs: Promise<number[]> | undefined;

      // Act: while the run captures, their application changes every table, the uncapturable ones included
      const result = await runLocal(options, {
        onStarted: () => {
          theirs = (async () => {
            const counts: number[] = [];
            for (const text of [
              "UPDATE legacy.trail SET what = what || ' (seen)' WHERE what LIKE 'seed 1%'",
              "DELETE FROM legacy.trail WHERE what = 'seed 2'",
              "UPDATE legacy.locked SET note = 'changed' WHERE id <= 3",
              'DELETE FROM legacy.locked WHERE id = 10',
              "UPDATE legacy.orders SET status = 'paid' WHERE id <= 4",
              "UPDATE legacy.events SET what = 'changed' WHERE what = 'seed 1'",
            ]) {
              counts.push((await query(text)).rowCount ?? 0);
            }
            return counts;
          })();
        },
      });

      // Assert: their updates and deletes went through
      expect(await (theirs as Promise<number[]>)).toEqual([2, 1, 3, 1, 4, 1]);
      // Assert: the run captured and verified the other tables, and said loudly what it left out and why
      expect(result.consistent).toBe(true);
      const { warehouse } = result.checks;
      if (!warehouse.checked) throw new Error('the warehouse check must have run');
      expect(Object.keys(warehouse.tables).sort()).toEqual(['pg.legacy.events', 'pg.legacy.orders']);
      expect(result.details.problems).toEqual([
        expect.stringMatching(
          /^NOT capturing legacy\.locked, legacy\.trail \(no replica identity \(DEFAULT without a primary key, or NOTHING\).*ALTER TABLE legacy\.locked REPLICA IDENTITY DEFAULT; ALTER TABLE legacy\.trail REPLICA IDENTITY FULL;$/,
        ),
      ]);
      expect(await ours()).toEqual({ slots: [], publications: [] });
    },
    RUN_TIMEOUT,
  );

  it('refuses to start when --tables names one, before creating anything in the database, and says how to fix it', async () => {
    // Act
    const run = runLocal(
      smallRun({ source: source.url, schema: 'legacy', tables: ['orders', 'trail'], workload: false, idleMs: 1000 }),
    );

    // Assert
    await expect(run).rejects.toBeInstanceOf(UsageError);
    await expect(run).rejects.toThrow(
      /cannot capture legacy\.trail .*Leave them out of --tables, or make them capturable first: ALTER TABLE legacy\.trail REPLICA IDENTITY FULL;/,
    );
    expect(await ours()).toEqual({ slots: [], publications: [] });
  }, 60_000);

  it('as a command: exit code 2 and the message, without a stack trace', async () => {
    // Act
    const { code, stderr } = await runStart(['--source', source.url, '--schema', 'legacy', '--tables', 'locked']);

    // Assert
    expect(code, stderr).toBe(2);
    expect(stderr).toContain(
      'npm start: cannot capture legacy.locked (no replica identity (DEFAULT without a primary key, or NOTHING)',
    );
    expect(stderr).not.toMatch(STACK);
  }, 60_000);

  it('a table named in --tables that does not exist: says which, exit code 2, creates nothing there', async () => {
    // Act
    const { code, stderr } = await runStart(['--source', source.url, '--schema', 'legacy', '--tables', 'orders,ordrs']);

    // Assert
    expect(code, stderr).toBe(2);
    expect(stderr).toContain('npm start: table legacy.ordrs does not exist');
    expect(stderr).not.toMatch(STACK);
    expect(await ours()).toEqual({ slots: [], publications: [] });
  }, 60_000);

  it('--workload on a database without the demo tables: says which are missing, exit code 2, creates nothing there', async () => {
    // Act
    const { code, stderr } = await runStart([
      '--source',
      source.url,
      '--schema',
      'legacy',
      '--workload',
      '--duration',
      '2',
    ]);

    // Assert
    expect(code, stderr).toBe(2);
    expect(stderr).toContain(
      'npm start: --workload writes to the demo tables, and schema legacy of the source lacks customers, products, order_items, page_views',
    );
    expect(stderr).not.toMatch(STACK);
    expect(await ours()).toEqual({ slots: [], publications: [] });
  }, 60_000);

  it('refuses a schema in which no table could be captured safely', async () => {
    // Arrange
    const client = new pg.Client(source.url);
    await client.connect();

    // Act
    const selecting = safeSelection(client, { schemas: ['bare'] });

    // Assert
    await expect(selecting).rejects.toThrow(
      /nothing to capture in bare: .*ALTER TABLE bare\.log REPLICA IDENTITY FULL;/,
    );
    await client.end();
  });
});

describe('npm start against a database it cannot capture', () => {
  it('not set up for logical decoding: says what to change, exit code 2, creates nothing there', async () => {
    // Arrange
    const replica = await startEmbeddedPostgres({ settings: { wal_level: 'replica' } });
    try {
      // Act
      const { code, stderr } = await runStart(['--source', replica.url, '--no-workload', '--duration', '5']);

      // Assert
      expect(code, stderr).toBe(2);
      expect(stderr).toContain(
        'npm start: wal_level is replica on the source database; logical decoding needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart the server)',
      );
      expect(stderr).not.toMatch(STACK);
      const client = new pg.Client(replica.url);
      await client.connect();
      try {
        expect((await client.query('SELECT pubname FROM pg_publication')).rows).toEqual([]);
        expect((await client.query('SELECT slot_name FROM pg_replication_slots')).rows).toEqual([]);
      } finally {
        await client.end();
      }
    } finally {
      await replica.stop();
    }
  }, 90_000);

  it('without room for two replication slots: says so before it starts, exit code 2', async () => {
    // Arrange: two slots allowed, one taken by someone else
    const tight = await startEmbeddedPostgres({ settings: { max_replication_slots: '2' } });
    const client = new pg.Client(tight.url);
    await client.connect();
    try {
      await client.query(`SELECT pg_create_logical_replication_slot('theirs', 'pgoutput')`);

      // Act
      const { code, stderr } = await runStart(['--source', tight.url, '--no-workload', '--duration', '5']);

      // Assert
      expect(code, stderr).toBe(2);
      expect(stderr).toContain(
        'npm start: the source database has 1 free replication slot(s) (max_replication_slots = 2, 1 in use); a run needs 2 of each',
      );
      expect(stderr).not.toMatch(STACK);
      expect(stderr).not.toContain('capturing (slot');
      expect((await client.query('SELECT slot_name FROM pg_replication_slots')).rows).toEqual([
        { slot_name: 'theirs' },
      ]);
    } finally {
      await client.end();
      await tight.stop();
    }
  }, 90_000);

  it('as a role without the rights to capture: says which rights, exit code 2, creates nothing there', async () => {
    // Arrange: someone else's database, and a role of theirs that may log in and read, nothing more
    const theirs = await startEmbeddedPostgres();
    const admin = new pg.Client(theirs.url);
    await admin.connect();
    try {
      await admin.query('CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1)');
      await admin.query(`CREATE ROLE reader LOGIN PASSWORD 'reader'; GRANT SELECT ON things TO reader`);
      const url = theirs.url.replace(/\/\/[^@]*@/, '//reader:reader@');

      // Act
      const { code, stderr } = await runStart(['--source', url, '--no-workload', '--duration', '5']);

      // Assert
      expect(code, stderr).toBe(2);
      expect(stderr).toMatch(/npm start: permission denied .* — capturing needs a role with REPLICATION/);
      expect(stderr).not.toMatch(STACK);
      expect((await admin.query('SELECT pubname FROM pg_publication')).rows).toEqual([]);
      expect((await admin.query('SELECT slot_name FROM pg_replication_slots')).rows).toEqual([]);
    } finally {
      await admin.end();
      await theirs.stop();
    }
  }, 90_000);

  it('unreachable: names it without its password, exit code 2', async () => {
    // Arrange
    const port = await freePort();

    // Act
    const { code, stderr } = await runStart([
      '--source',
      `postgres://someone:s3cret@127.0.0.1:${port}/theirs`,
      '--no-workload',
    ]);

    // Assert
    expect(code, stderr).toBe(2);
    expect(stderr).toContain(`npm start: cannot connect to postgres://someone:***@127.0.0.1:${port}/theirs: `);
    expect(stderr).toContain('ECONNREFUSED');
    expect(stderr).not.toContain('s3cret');
    expect(stderr).not.toMatch(STACK);
    expect(stderr).not.toContain('cleanup of');
  }, 60_000);
});
