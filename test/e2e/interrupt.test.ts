/**
 * `npm start` stopped by a signal (Ctrl-C, or SIGTERM from a CI runner or `timeout`): it undoes what it did before
 * exiting — above all, the replication slot and publication it made in someone else's database (`--source`), which
 * left behind would make that server keep its WAL until its disk fills. And a lost database connection ends the
 * workload with an error instead of crashing its process.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryOffsetStore, startPostgresCapture } from '../../tools/local/capture';
import { createDemoSchema, type LocalPostgres, seedDemo, startEmbeddedPostgres } from '../../tools/local/postgres';
import { dropSlotsAndPublications, readSourceRows } from '../../tools/local/runner/source-rows';
import { startWorkload } from '../../tools/local/runner/workload';
import { runStart, spawnStart, sql } from './support';

async function query<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  return (await sql<T>(url, text)).rows;
}

/** Keys under `prefix:` in the Redis the runs use (the machine's, as `npm start` finds it). */
async function cacheKeys(prefix: string): Promise<string[]> {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  try {
    return await redis.keys(`${prefix}:*`);
  } finally {
    redis.disconnect();
  }
}

/** Resolves once `condition` holds (polled every 100 ms), or rejects after `timeoutMs`. */
async function until(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('npm start interrupted', () => {
  let theirs: LocalPostgres;

  beforeAll(async () => {
    theirs = await startEmbeddedPostgres();
    await query(
      theirs.url,
      'CREATE TABLE accounts (id int PRIMARY KEY, owner text); INSERT INTO accounts VALUES (1, $$a$$)',
    );
  }, 120_000);

  afterAll(async () => {
    await theirs?.stop();
  });

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'by %s while capturing someone else’s database: drops its slot and publication there, says so, exits %i',
    async (signal, exitCode) => {
      // Arrange: a run waiting for their changes, its slot in their database active
      const { child, output, exit } = spawnStart([
        '--source',
        theirs.url,
        '--no-workload',
        '--duration',
        '120',
        '--json',
      ]);
      const slots = () =>
        query<{ slot_name: string; active: boolean }>(
          theirs.url,
          `SELECT slot_name, active FROM pg_replication_slots WHERE slot_name LIKE 'cdc_sync_start_%'`,
        );
      await until(async () => (await slots()).some((s) => s.active), 90_000, 'the run’s slot to be active');
      await until(async () => output.stderr.includes('waiting for changes'), 30_000, 'the run to wait for changes');
      const [slot] = await slots();
      // The run's cache keys in the shared Redis carry the same id as its slot
      const cachePrefix = `cdc-start-${slot?.slot_name.replace('cdc_sync_start_', '')}`;
      expect(await cacheKeys(cachePrefix)).not.toEqual([]);

      // Act
      child.kill(signal);
      const { code, stdout, stderr } = await exit;

      // Assert
      expect(code, stderr.slice(-2000)).toBe(exitCode);
      expect(stderr).toContain('interrupted: stopping the pipeline and cleaning up');
      expect(stderr).toContain(`dropped from the source: slot ${slot?.slot_name}, publication ${slot?.slot_name}`);
      expect(await slots()).toEqual([]);
      expect(
        await query(theirs.url, `SELECT pubname FROM pg_publication WHERE pubname LIKE 'cdc_sync_start_%'`),
      ).toEqual([]);
      expect(await cacheKeys(cachePrefix)).toEqual([]);
      expect(JSON.parse(stdout)).toEqual({ consistent: false, error: 'interrupted' }); // no result: it did not finish
      expect(stderr).not.toContain('npm start failed');
    },
    150_000,
  );

  it('by Ctrl-C twice: the second one does not cut the cleanup short, and says so', async () => {
    // Arrange: a run waiting for their changes, its slot in their database active
    const { child, output, exit } = spawnStart(['--source', theirs.url, '--no-workload', '--duration', '120']);
    const slots = () =>
      query<{ active: boolean }>(
        theirs.url,
        `SELECT active FROM pg_replication_slots WHERE slot_name LIKE 'cdc_sync_start_%'`,
      );
    await until(async () => (await slots()).some((s) => s.active), 90_000, 'the run’s slot to be active');
    await until(async () => output.stderr.includes('waiting for changes'), 30_000, 'the run to wait for changes');

    // Act: Ctrl-C, and again 30 ms later, while it cleans up (that takes a few hundred ms)
    child.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 30));
    child.kill('SIGINT');
    const { code, stderr } = await exit;

    // Assert
    expect(code, stderr.slice(-2000)).toBe(130);
    expect(stderr).toContain('still cleaning up, at most 10 s: stopping now would leave the run’s slot in the source');
    expect(stderr).toMatch(/dropped from the source: slot cdc_sync_start_/);
    expect(await slots()).toEqual([]);
  }, 150_000);

  it.each(['exception', 'rejection'])(
    'by a crash (an uncaught %s) while capturing someone else’s database: says so, drops its slot and publication there, exits 2',
    async (kind) => {
      // Arrange: a run waiting for their changes, into which a module preloaded from outside throws once it waits
      const crash = fileURLToPath(new URL('./fixtures/crash-while-waiting.mjs', import.meta.url));
      const { exit } = spawnStart(['--source', theirs.url, '--no-workload', '--duration', '120', '--json'], {
        nodeArgs: ['--import', pathToFileURL(crash).href],
        env: { ...process.env, CRASH_KIND: kind },
      });

      // Act
      const { code, stdout, stderr } = await exit;

      // Assert
      expect(code, stderr.slice(-2000)).toBe(2);
      expect(stderr).toContain(`npm start crashed: Error: simulated bug (${kind})`);
      expect(stderr).toContain('crashed: stopping the pipeline and cleaning up');
      expect(stderr).toMatch(/dropped from the source: slot cdc_sync_start_[0-9a-f]+, publication cdc_sync_start_/);
      expect(
        await query(theirs.url, `SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'cdc_sync_start_%'`),
      ).toEqual([]);
      expect(
        await query(theirs.url, `SELECT pubname FROM pg_publication WHERE pubname LIKE 'cdc_sync_start_%'`),
      ).toEqual([]);
      expect(JSON.parse(stdout)).toEqual({ consistent: false, error: `crashed: simulated bug (${kind})` });
    },
    150_000,
  );

  it('killed outright (SIGKILL): the next run names the slot and publication left behind, with SQL that removes them', async () => {
    // Arrange: a run killed while capturing, which could not clean up
    const killed = spawnStart(['--source', theirs.url, '--no-workload', '--duration', '120']);
    const ours = () =>
      query<{ slot_name: string; active: boolean }>(
        theirs.url,
        `SELECT slot_name, active FROM pg_replication_slots WHERE slot_name LIKE 'cdc_sync_start_%'`,
      );
    await until(async () => (await ours()).some((s) => s.active), 90_000, 'the run’s slot to be active');
    const [left] = await ours();
    killed.child.kill('SIGKILL');
    await killed.exit;
    await until(async () => (await ours()).every((s) => !s.active), 30_000, 'the killed run’s slot to be let go');

    // Act: the next run
    const { code, stderr } = await runStart(['--source', theirs.url, '--no-workload', '--idle-ms', '500']);

    // Assert: it ran, warned about the leftovers without touching them, and its SQL removes them
    expect(code, stderr.slice(-2000)).toBe(0);
    const warning = stderr.split('\n').find((line) => line.includes('earlier runs that could not clean up'));
    expect(warning).toContain(`replication slot ${left?.slot_name} (keeps `);
    expect(warning).toContain(`publication ${left?.slot_name}`);
    expect((await ours()).map((s) => s.slot_name)).toEqual([left?.slot_name]);
    const removal = warning?.slice(warning.indexOf('remove them: ') + 'remove them: '.length) ?? '';
    expect(removal).toBe(
      `SELECT pg_drop_replication_slot('${left?.slot_name}'); DROP PUBLICATION IF EXISTS "${left?.slot_name}";`,
    );
    await sql(theirs.url, removal);
    expect(await ours()).toEqual([]);
    expect(await query(theirs.url, `SELECT pubname FROM pg_publication WHERE pubname LIKE 'cdc_sync_start_%'`)).toEqual(
      [],
    );
  }, 180_000);

  it('by Ctrl-C while it cleans up at the end: the cleanup still finishes', async () => {
    // Arrange: a run that finds nothing to wait for and ends; its cleanup starts by stopping the capture, which leaves
    // the slot inactive until the cleanup drops it
    const { child, output, exit } = spawnStart(['--source', theirs.url, '--no-workload', '--idle-ms', '500']);
    const slot = async () =>
      (
        await query<{ name: string; active: boolean }>(
          theirs.url,
          `SELECT slot_name AS name, active FROM pg_replication_slots WHERE slot_name LIKE 'cdc_sync_start_%' AND slot_name NOT LIKE '%_verify_%'`,
        )
      )[0];
    await until(async () => (await slot())?.active === true, 90_000, 'the run’s slot to be active');
    await until(async () => output.stderr.includes('verifying'), 60_000, 'the run to verify');
    // Act: Ctrl-C once the slot is let go (or, if that moment was missed, whenever the poll sees it gone)
    await until(async () => (await slot())?.active !== true, 60_000, 'the capture to stop');
    child.kill('SIGINT');
    const { code, stderr } = await exit;

    // Assert: finished or interrupted, it left nothing behind
    expect([0, 130], stderr.slice(-2000)).toContain(code);
    expect(await query(theirs.url, 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    expect(await query(theirs.url, 'SELECT pubname FROM pg_publication')).toEqual([]);
  }, 150_000);

  it('when the source database goes away mid-run: stops at once, says so, and says how to remove what it left there', async () => {
    // Arrange: their server, whose data outlives a stop, and a run waiting (up to two minutes) for their changes
    const base = await mkdtemp(join(tmpdir(), 'cdc-sync-gone-'));
    await chmod(base, 0o755); // as root, the server runs as the postgres user, which must reach its data
    const dataDir = join(base, 'data');
    let server = await startEmbeddedPostgres({ dataDir });
    await query(server.url, 'CREATE TABLE items (id int PRIMARY KEY)');
    const { output, exit } = spawnStart([
      '--source',
      server.url,
      '--no-workload',
      '--duration',
      '120',
      '--idle-ms',
      '120000',
    ]);
    await until(async () => output.stderr.includes('waiting for changes'), 90_000, 'the run to wait for changes');

    // Act
    await server.stop();
    const stoppedAt = Date.now();
    const { code, stderr } = await exit;

    // Assert: it ended long before its two minutes, with one line saying why and how to clean up
    try {
      expect(Date.now() - stoppedAt).toBeLessThan(30_000);
      expect(code, stderr.slice(-2000)).toBe(2);
      expect(stderr).toContain('npm start: lost the connection to the source database: ');
      expect(stderr).not.toMatch(/npm start failed|\n\s+at /);
      const slot = /capturing \(slot (\S+)\)/.exec(stderr)?.[1] ?? '';
      expect(stderr).toContain(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE starts_with(slot_name, '${slot}'); DROP PUBLICATION IF EXISTS ${slot};`,
      );
      // ... which is what their server, back up, needs: the slot outlived the restart
      server = await startEmbeddedPostgres({ dataDir });
      expect(await query(server.url, 'SELECT slot_name FROM pg_replication_slots')).toEqual([{ slot_name: slot }]);
      await query(
        server.url,
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE starts_with(slot_name, '${slot}')`,
      );
      await query(server.url, `DROP PUBLICATION IF EXISTS ${slot}`);
      expect(await query(server.url, 'SELECT slot_name FROM pg_replication_slots')).toEqual([]);
    } finally {
      await server.stop();
      await rm(base, { recursive: true, force: true });
    }
  }, 180_000);

  it('leaves nothing named after the run: its inactive slot, a verification snapshot’s active one, their publications', async () => {
    // Arrange: what a run interrupted during verification leaves: its own slot and publication, and a verification
    // capture still holding its slot (an active walsender); and someone else's slot and publication beside them
    const prefix = 'cdc_sync_start_0badcafe';
    const verification = await startPostgresCapture({
      connectionString: theirs.url,
      topicPrefix: 'pg',
      slotName: `${prefix}_verify_1`,
      publicationName: `${prefix}_verify_1`,
      tables: ['public.accounts'],
      snapshotMode: 'initial',
      produce: async () => undefined,
      offsets: new MemoryOffsetStore(),
    });
    // One statement each: a slot cannot be created in a transaction that has written.
    for (const statement of [
      `SELECT pg_create_logical_replication_slot('${prefix}', 'pgoutput')`,
      `CREATE PUBLICATION ${prefix} FOR TABLE accounts`,
      `SELECT pg_create_logical_replication_slot('their_slot', 'pgoutput')`,
      'CREATE PUBLICATION their_publication FOR TABLE accounts',
    ]) {
      await query(theirs.url, statement);
    }
    const client = new pg.Client(theirs.url);
    await client.connect();

    try {
      // Act
      const dropped = await dropSlotsAndPublications(client, prefix);

      // Assert
      expect(dropped.sort()).toEqual([
        `publication ${prefix}`,
        `publication ${prefix}_verify_1`,
        `slot ${prefix}`,
        `slot ${prefix}_verify_1`,
      ]);
      expect(await query(theirs.url, 'SELECT slot_name FROM pg_replication_slots')).toEqual([
        { slot_name: 'their_slot' },
      ]);
      expect(await query(theirs.url, 'SELECT pubname FROM pg_publication')).toEqual([{ pubname: 'their_publication' }]);
    } finally {
      await client.end();
      await verification.stop().catch(() => undefined);
      await query(theirs.url, `SELECT pg_drop_replication_slot('their_slot')`);
      await query(theirs.url, 'DROP PUBLICATION their_publication');
    }
  }, 60_000);

  it('verification whose capture fails half-way (publication made, no slot left for it) removes its publication', async () => {
    // Arrange: a server with one slot, taken, so the throw-away capture gets as far as its publication
    const tight = await startEmbeddedPostgres({ settings: { max_replication_slots: '1' } });
    try {
      await sql(tight.url, 'CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1)');
      await sql(tight.url, `SELECT pg_create_logical_replication_slot('theirs', 'pgoutput')`);

      // Act
      const reading = readSourceRows({
        connectionString: tight.url,
        topicPrefix: 'pg',
        tables: ['public.things'],
        namePrefix: 'cdc_sync_start_0badf00d',
      });

      // Assert
      await expect(reading).rejects.toThrow(/replication slots are in use/);
      expect((await sql(tight.url, 'SELECT pubname FROM pg_publication')).rows).toEqual([]);
      expect((await sql(tight.url, 'SELECT slot_name FROM pg_replication_slots')).rows).toEqual([
        { slot_name: 'theirs' },
      ]);
    } finally {
      await tight.stop();
    }
  }, 90_000);

  it('a workload whose connections the server terminates ends with an error, not a crash', async () => {
    // Arrange: the demo schema, and a slow workload (its connections idle between transactions most of the time)
    await query(theirs.url, 'CREATE SCHEMA demo');
    const client = new pg.Client(theirs.url);
    await client.connect();
    try {
      await createDemoSchema(client, { schema: 'demo' });
      await seedDemo(client, { schema: 'demo', rows: 20 });
    } finally {
      await client.end();
    }
    const workload = startWorkload({
      connectionString: theirs.url,
      schema: 'demo',
      rate: 20,
      durationMs: 60_000,
      truncate: false,
    });
    const outcome = workload.done.then(
      () => 'finished',
      (error: unknown) => error,
    );
    await until(async () => workload.changes() > 0, 30_000, 'the workload’s first changes');

    // Act: what a server shutting down (or an administrator) does to its sessions
    await query(
      theirs.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND datname = current_database()`,
    );

    // Assert: the workload rejects; an 'error' event nobody listened to would have failed this test as uncaught
    const result = await outcome;
    expect(result).toBeInstanceOf(Error);
    expect(String(result)).toMatch(/terminat|Connection|not queryable/i);
  }, 90_000);
});
