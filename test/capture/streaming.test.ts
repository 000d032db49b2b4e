import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { MemoryOffsetStore, type SourceOffset } from '../../tools/local/capture';
import { parseLsn } from '../../tools/local/capture/lsn';
import { captureSchema, changes, deferred, jsonAt, type Parsed, parse, unique, usePostgres, waitFor } from './helpers';

const { db, sql } = usePostgres();

async function newSchema(ddl: (schema: string) => string): Promise<string> {
  const schema = unique('stream');
  await sql().query(`CREATE SCHEMA ${schema}; ${ddl(schema)}`);
  return schema;
}

const PEOPLE = (s: string) =>
  `CREATE TABLE ${s}.people (id integer PRIMARY KEY, name text NOT NULL, note text, qty integer NOT NULL DEFAULT 5)`;

describe('deletes', () => {
  it('emit a delete then a tombstone with the same key', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'Ann', 'x', 3)`);
    await sql().query(`DELETE FROM ${schema}.people WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const [create, del, tombstone] = run.records;
    expect(run.records).toHaveLength(3);
    expect(create && parse(create).value.payload.op).toBe('c');
    expect(del && parse(del).value.payload.op).toBe('d');
    expect(del && parse(del).value.payload.after).toBeNull();
    expect(tombstone?.value).toBeNull();
    expect(tombstone?.key?.toString()).toBe(del?.key?.toString());
    expect(tombstone?.topic).toBe(del?.topic);
  });

  it('under REPLICA IDENTITY DEFAULT carry the key, NULL for nullable columns and defaults/fallbacks otherwise', async () => {
    // Arrange: JdbcValueConverters substitutes the schema default (qty: 5) or a type fallback (name: "") for NULL in a
    // NOT NULL column, and JsonConverter writes the default for null. This is what real Debezium emits.
    const schema = await newSchema(PEOPLE);
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'Ann', 'x', 3)`);
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`DELETE FROM ${schema}.people WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const del = changes(run.records).find((e) => e.value.payload.op === 'd');
    expect(jsonAt(del?.valueText ?? '', 'payload', 'before')).toBe('{"id":1,"name":"","note":null,"qty":5}');
    expect(jsonAt(del?.valueText ?? '', 'schema', 'fields', 0, 'fields', 3)).toBe(
      '{"type":"int32","optional":false,"default":5,"field":"qty"}',
    );
  });
});

describe('primary-key changes', () => {
  it('become delete (old key) + tombstone + create (new key) with the other key in a header', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'Ann', 'x', 3)`);
    const run = await captureSchema(db(), sql(), schema);
    run.records.length = 0;

    // Act
    await sql().query(`UPDATE ${schema}.people SET id = 2, name = 'Bea' WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const [del, tombstone, create] = run.records.map(parse);
    expect(run.records).toHaveLength(3);
    expect(del?.value.payload.op).toBe('d');
    expect(del?.key.payload).toEqual({ id: 1 });
    expect(del?.headers['__debezium.newkey']).toBe('{"id":2}');
    expect(tombstone?.value).toBeNull();
    expect(tombstone?.key.payload).toEqual({ id: 1 });
    expect(create?.value.payload.op).toBe('c');
    expect(create?.key.payload).toEqual({ id: 2 });
    expect(create?.headers['__debezium.oldkey']).toBe('{"id":1}');
    expect(create?.value.payload.after).toEqual({ id: 2, name: 'Bea', note: 'x', qty: 3 });
    expect(create?.value.payload.before).toBeNull();
    // Both events come from the same WAL record.
    expect(del?.value.payload.source.lsn).toBe(create?.value.payload.source.lsn);
  });
});

describe('truncate', () => {
  it.each([
    [[], 2],
    [['t' as const], 0],
  ])('with skippedOperations %j emits %i events (one per table, null key, no row images)', async (skipped, count) => {
    // Arrange
    const schema = await newSchema(
      (s) => `CREATE TABLE ${s}.a (id integer PRIMARY KEY); CREATE TABLE ${s}.b (id integer PRIMARY KEY);
              INSERT INTO ${s}.a VALUES (1); INSERT INTO ${s}.b VALUES (1);`,
    );
    const run = await captureSchema(db(), sql(), schema, { skippedOperations: skipped });
    run.records.length = 0;

    // Act
    await sql().query(`TRUNCATE ${schema}.a, ${schema}.b`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const events = changes(run.records);
    expect(events).toHaveLength(count);
    for (const e of events) {
      expect(e.key).toBeNull();
      expect(e.value.payload.op).toBe('t');
      expect(e.value.payload.before).toBeNull();
      expect(e.value.payload.after).toBeNull();
    }
    expect(events.map((e) => e.topic).sort()).toEqual(count ? [`test.${schema}.a`, `test.${schema}.b`] : []);
  });
});

describe('replica identity', () => {
  it.each([
    ['DEFAULT', 'null', '{"id":1,"name":"","note":null,"qty":5}'],
    ['FULL', '{"id":1,"name":"Ann","note":"x","qty":3}', '{"id":1,"name":"Bea","note":"x","qty":3}'],
  ])('%s: update before is %s, delete before is %s', async (identity, updateBefore, deleteBefore) => {
    // Arrange
    const schema = await newSchema((s) => `${PEOPLE(s)}; ALTER TABLE ${s}.people REPLICA IDENTITY ${identity}`);
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'Ann', 'x', 3)`);
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`UPDATE ${schema}.people SET name = 'Bea' WHERE id = 1`);
    await sql().query(`DELETE FROM ${schema}.people WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const events = changes(run.records);
    const update = events.find((e) => e.value.payload.op === 'u');
    const del = events.find((e) => e.value.payload.op === 'd');
    expect(jsonAt(update?.valueText ?? '', 'payload', 'before')).toBe(updateBefore);
    expect(jsonAt(update?.valueText ?? '', 'payload', 'after')).toBe('{"id":1,"name":"Bea","note":"x","qty":3}');
    expect(jsonAt(del?.valueText ?? '', 'payload', 'before')).toBe(deleteBefore);
  });

  it('tables without a primary key (REPLICA IDENTITY FULL) have a null key', async () => {
    // Arrange
    const schema = await newSchema(
      (s) => `CREATE TABLE ${s}.views (path text NOT NULL, ms integer); ALTER TABLE ${s}.views REPLICA IDENTITY FULL`,
    );
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`INSERT INTO ${schema}.views VALUES ('/a', 1)`);
    await sql().query(`UPDATE ${schema}.views SET ms = 2`);
    await sql().query(`DELETE FROM ${schema}.views`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const ops = run.records.map((r) => (r.value ? parse(r).value.payload.op : 'tombstone'));
    expect(ops).toEqual(['c', 'u', 'd', 'tombstone']);
    expect(run.records.every((r) => r.key === null)).toBe(true);
    const [, update] = changes(run.records);
    expect(update?.value.payload.before).toEqual({ path: '/a', ms: 1 });
  });
});

describe('schema changes', () => {
  it('pick up a column added while streaming', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const run = await captureSchema(db(), sql(), schema);
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'a', NULL, 1)`);

    // Act
    await sql().query(`ALTER TABLE ${schema}.people ADD COLUMN score numeric(5,1) NOT NULL DEFAULT 0`);
    await sql().query(`INSERT INTO ${schema}.people VALUES (2, 'b', NULL, 1, 12.5)`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const [first, second] = changes(run.records);
    expect(Object.keys(first?.value.payload.after ?? {})).toEqual(['id', 'name', 'note', 'qty']);
    expect(jsonAt(second?.valueText ?? '', 'payload', 'after')).toBe(
      '{"id":2,"name":"b","note":null,"qty":1,"score":"fQ=="}',
    );
    expect(jsonAt(second?.valueText ?? '', 'schema', 'fields', 1, 'fields', 4)).toBe(
      '{"type":"bytes","optional":false,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"1","connect.decimal.precision":"5"},"default":"AA==","field":"score"}',
    );
  });
});

describe('TOAST', () => {
  const big = randomBytes(6000).toString('hex');
  const blob = randomBytes(12000).toString('hex');
  const tags = `{${Array.from({ length: 400 }, () => randomBytes(8).toString('hex')).join(',')}}`;
  const TOASTY = (s: string) =>
    `CREATE TABLE ${s}.docs (id integer PRIMARY KEY, title text, body text, data bytea, tags text[])`;

  it.each([
    [
      'DEFAULT',
      '"__debezium_unavailable_value"',
      '"X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="',
      '["__debezium_unavailable_value"]',
    ],
    ['FULL', `"${big}"`, `"${Buffer.from(blob, 'hex').toString('base64')}"`, null],
  ])('%s: unchanged toasted text, bytea and text[] columns in an update', async (identity, body, data, tagsJson) => {
    // Arrange
    const schema = await newSchema((s) => `${TOASTY(s)}; ALTER TABLE ${s}.docs REPLICA IDENTITY ${identity}`);
    await sql().query(`INSERT INTO ${schema}.docs VALUES (1, 'a', $1, decode($2, 'hex'), $3)`, [big, blob, tags]);
    const run = await captureSchema(db(), sql(), schema);
    run.records.length = 0;

    // Act
    await sql().query(`UPDATE ${schema}.docs SET title = 'b' WHERE id = 1`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const update = changes(run.records)[0];
    const text = update?.valueText ?? '';
    expect(jsonAt(text, 'payload', 'after', 'title')).toBe('"b"');
    expect(jsonAt(text, 'payload', 'after', 'body')).toBe(body);
    expect(jsonAt(text, 'payload', 'after', 'data')).toBe(data);
    if (tagsJson) expect(jsonAt(text, 'payload', 'after', 'tags')).toBe(tagsJson);
    else expect(update?.value.payload.after.tags).toHaveLength(400);
  });

  it('a changed toasted column carries its new value', async () => {
    // Arrange
    const schema = await newSchema(TOASTY);
    await sql().query(`INSERT INTO ${schema}.docs VALUES (1, 'a', $1, NULL, NULL)`, [big]);
    const run = await captureSchema(db(), sql(), schema);
    run.records.length = 0;
    const next = randomBytes(6000).toString('hex');

    // Act
    await sql().query(`UPDATE ${schema}.docs SET body = $1 WHERE id = 1`, [next]);
    await run.capture.flushed();
    await run.stop();

    // Assert
    expect(changes(run.records)[0]?.value.payload.after.body).toBe(next);
  });
});

describe('positions', () => {
  it('(sequence[0], lsn) increases over the stream even when transactions interleave', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const run = await captureSchema(db(), sql(), schema);
    const other = new pg.Client({ connectionString: db().url });
    await other.connect();

    // Act: A starts first, B commits first; pgoutput streams B before A while A's first change has the lower LSN.
    await sql().query('BEGIN');
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'a1', NULL, 1)`);
    await other.query(`INSERT INTO ${schema}.people VALUES (2, 'b', NULL, 1)`);
    await sql().query(`INSERT INTO ${schema}.people VALUES (3, 'a2', NULL, 1)`);
    await sql().query('COMMIT');
    for (let i = 4; i < 8; i++) await other.query(`INSERT INTO ${schema}.people VALUES (${i}, 'x', NULL, 1)`);
    await other.end();
    await run.capture.flushed();
    await run.stop();

    // Assert
    const events = changes(run.records);
    const positions = events.map((e) => {
      const [lastCommit, lsn] = JSON.parse(e.value.payload.source.sequence) as [string | null, string];
      expect(lsn).toBe(jsonAt(e.valueText ?? '', 'payload', 'source', 'lsn'));
      return [BigInt(lastCommit ?? '0'), BigInt(lsn)] as const;
    });
    expect(events.map((e) => e.value.payload.after.name)).toEqual(['b', 'a1', 'a2', 'x', 'x', 'x', 'x']);
    expect(positions[1]?.[1]).toBeLessThan(positions[0]?.[1] ?? 0n); // a1 was written before b
    for (let i = 1; i < positions.length; i++) {
      const [prev, cur] = [positions[i - 1], positions[i]] as [readonly [bigint, bigint], readonly [bigint, bigint]];
      expect(cur[0] > prev[0] || (cur[0] === prev[0] && cur[1] > prev[1])).toBe(true);
    }
  });

  it('writes ts_ns, ts_us, ts_ms and lsn with every digit', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const run = await captureSchema(db(), sql(), schema);

    // Act
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'a', NULL, 1)`);
    await run.capture.flushed();
    await run.stop();

    // Assert
    const text = changes(run.records)[0]?.valueText ?? '';
    const sourceUs = /"source":\{.*?"ts_us":(\d+),"ts_ns":(\d+)/.exec(text);
    expect(sourceUs?.[2]).toBe(`${sourceUs?.[1]}000`); // commit time has microsecond precision
    const envelope = /"op":"c","ts_ms":(\d+),"ts_us":(\d+),"ts_ns":(\d+)\}\}$/.exec(text);
    const ns = envelope?.[3] ?? '';
    expect(ns).toHaveLength(19);
    expect(envelope?.[2]).toBe(ns.slice(0, -3));
    expect(envelope?.[1]).toBe(ns.slice(0, -6));
    const lsn = jsonAt(text, 'payload', 'source', 'lsn');
    expect(lsn).toMatch(/^\d+$/);
    expect(BigInt(lsn)).toBeLessThan(run.capture.status().acknowledgedLsn);
  });
});

describe('heartbeats', () => {
  it('are emitted on __debezium-heartbeat.<prefix> with Debezium schemas, partition 0', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);

    // Act
    const run = await captureSchema(db(), sql(), schema, { heartbeatIntervalMs: 50 });
    await waitFor(() => run.records.filter((r) => r.topic.startsWith('__debezium')).length >= 2);
    await run.stop();

    // Assert
    const beat = run.records.find((r) => r.topic === '__debezium-heartbeat.test');
    expect(beat?.partition).toBe(0);
    expect(beat?.key?.toString()).toBe(
      '{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"serverName"}],"optional":false,"name":"io.debezium.connector.common.ServerNameKey","version":1},"payload":{"serverName":"test"}}',
    );
    expect(beat?.value?.toString()).toMatch(
      /^\{"schema":\{"type":"struct","fields":\[\{"type":"int64","optional":false,"field":"ts_ms"\}\],"optional":false,"name":"io\.debezium\.connector\.common\.Heartbeat","version":1\},"payload":\{"ts_ms":\d{13}\}\}$/,
    );
  });

  it('let the slot advance while only uncaptured tables change', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const elsewhere = await newSchema((s) => `CREATE TABLE ${s}.noise (id serial PRIMARY KEY, v text)`);
    const run = await captureSchema(db(), sql(), schema, { heartbeatIntervalMs: 50 });

    // Act
    for (let i = 0; i < 5; i++) await sql().query(`INSERT INTO ${elsewhere}.noise (v) VALUES ('x')`);
    const target = parseLsn((await sql().query('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0].l);
    const confirmed = async () =>
      parseLsn(
        (
          await sql().query('SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1', [
            run.slot,
          ])
        ).rows[0].l,
      );
    await waitFor(async () => (await confirmed()) >= target);
    const advanced = await confirmed();
    await run.stop();

    // Assert
    expect(advanced).toBeGreaterThanOrEqual(target);
    expect(changes(run.records)).toHaveLength(0);
  });
});

describe('heartbeat action (heartbeat.action.query on a heartbeat table)', () => {
  it('upserts the heartbeat row at every heartbeat: records of the table, counted apart, and pausable', async () => {
    // Arrange
    const schema = await newSchema(
      (s) => `CREATE TABLE ${s}.cdc_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)`,
    );
    const run = await captureSchema(db(), sql(), schema, {
      heartbeatIntervalMs: 50,
      heartbeatTable: `${schema}.cdc_heartbeat`,
    });

    // Act
    await waitFor(() => changes(run.records, 'cdc_heartbeat').length >= 3);
    run.capture.pauseHeartbeatAction(true);
    await new Promise((r) => setTimeout(r, 150)); // one in flight may still land
    const whilePaused = changes(run.records, 'cdc_heartbeat').length;
    await new Promise((r) => setTimeout(r, 300));
    const status = run.capture.status();
    await run.stop();

    // Assert: an insert, then updates of row 1 with a later ts; counted as heartbeat actions, not as changes
    const beats = changes(run.records, 'cdc_heartbeat');
    expect(beats[0]?.value.payload.op).toBe('c');
    expect(beats.slice(1).every((b) => b.value.payload.op === 'u' && b.value.payload.after?.id === 1)).toBe(true);
    expect(status.emitted.heartbeatAction).toBe(beats.length);
    expect(status.emitted.create + status.emitted.update).toBe(0);
    expect(beats.length).toBe(whilePaused);
  });
});

describe('acknowledgement', () => {
  async function confirmedFlush(slot: string): Promise<bigint> {
    const { rows } = await sql().query(
      'SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1',
      [slot],
    );
    return parseLsn(rows[0].l);
  }

  it('waits for produce() to resolve and the offset to be saved before confirming the LSN', async () => {
    // Arrange
    const schema = await newSchema(PEOPLE);
    const produceGate = deferred();
    const saveGate = deferred();
    let blockProduce = false;
    let blockSave = false;
    const produced: Parsed[] = [];
    const memory = new MemoryOffsetStore();
    const offsets = {
      load: () => memory.load(),
      save: async (offset: SourceOffset) => {
        if (blockSave) await saveGate.promise;
        await memory.save(offset);
      },
    };
    const run = await captureSchema(db(), sql(), schema, {
      offsets,
      offsetFlushIntervalMs: 20,
      produce: async (records) => {
        if (blockProduce) await produceGate.promise;
        produced.push(...records.map(parse));
      },
    });
    const start = await confirmedFlush(run.slot);
    blockProduce = true;

    // Act 1: the change is received but produce() has not resolved
    await sql().query(`INSERT INTO ${schema}.people VALUES (1, 'a', NULL, 1)`);
    await waitFor(() => run.capture.status().receivedLsn > start);
    await new Promise((r) => setTimeout(r, 200));
    const whileProducing = await confirmedFlush(run.slot);

    // Act 2: produce() resolved, the offset store has not saved yet
    blockSave = true;
    produceGate.resolve();
    await waitFor(() => produced.length === 1);
    await new Promise((r) => setTimeout(r, 200));
    const whileSaving = await confirmedFlush(run.slot);

    // Act 3: saved
    saveGate.resolve();
    await waitFor(async () => (await confirmedFlush(run.slot)) > start);
    const afterSave = await confirmedFlush(run.slot);
    await run.stop();

    // Assert
    expect(whileProducing).toBe(start);
    expect(whileSaving).toBe(start);
    const saved = memory.history.find((o) => o.messageType === 'COMMIT');
    expect(afterSave).toBe(saved?.lsn_commit);
  });
});
