/**
 * `npm start -- --format avro` end to end: the capture's records go through the local stand-in for Confluent's
 * AvroConverter (schemas registered in the run's local registry under `<topic>-key` / `<topic>-value`, records
 * Confluent-framed), the lanes decode them with their Avro decoder from that registry, and the run ends consistent as
 * with JSON, schema changes included. A change the registry refuses stops the capture with one line.
 */
import { describe, expect, it } from 'vitest';
import { peekSchemaRef } from '../../functions/core/decode/avro';
import { IncompatibleSchemaError } from '../../tools/local/registry/avro-converter';
import type { RunContext } from '../../tools/local/runner/run';
import { runLocal } from '../../tools/local/runner/run';
import { smallRun, sql } from './support';

const RUN_TIMEOUT = 240_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('npm start --format avro', () => {
  it(
    'registers key and value schemas per topic, frames every record, and ends consistent through schema changes',
    async () => {
      // Arrange: the demo workload (with its ADD COLUMN … DEFAULT) and, beside it, changes BACKWARD accepts: a
      // dropped column, a widened integer, an added nullable column, a new table
      const options = smallRun({ format: 'avro', durationMs: 6000, releaseConsumed: false });
      const framings = new Set<string>();
      const ddl = async ({ connectionString: url, pipeline }: RunContext) => {
        await sleep(1000);
        await sql(url, 'ALTER TABLE public.products DROP COLUMN tags');
        await sql(url, 'ALTER TABLE public.order_items ALTER COLUMN quantity TYPE bigint');
        await sql(url, 'ALTER TABLE public.page_views ADD COLUMN device text');
        await sql(url, 'CREATE TABLE public.coupons (id serial PRIMARY KEY, code text NOT NULL, percent int)');
        await sql(url, "INSERT INTO public.coupons (code, percent) SELECT 'C' || g, g FROM generate_series(1, 20) g");
        await sleep(1500);
        for (const topic of pipeline.tableTopics()) {
          for (const record of pipeline.broker.read(topic, 0, 0, 50)) {
            if (record.value) framings.add(peekSchemaRef(record.value.toString('base64'))?.registry ?? 'none');
            if (record.key) framings.add(peekSchemaRef(record.key.toString('base64'))?.registry ?? 'none');
          }
        }
      };

      // Act
      const result = await runLocal(options, { whileRunning: ddl });

      // Assert: every key and value read was Confluent-framed Avro, and the sinks equal the source
      expect([...framings]).toEqual(['confluent']);
      const why = JSON.stringify({ w: result.checks.warehouse, c: result.checks.cache, a: result.checks.audit });
      expect(result.consistent, why).toBe(true);
      expect(result.checks.warehouse.checked && result.checks.warehouse.tables['pg.public.coupons']).toMatchObject({
        sourceRows: 20,
        different: 0,
      });
      // Assert: the registry holds a key and a value subject per keyed topic, a value subject for the keyless one
      // and the new table's, with the changed tables' new versions; Avro records are much smaller than JSON's
      const format = result.details.format;
      if (format.kind !== 'avro') throw new Error('expected an Avro run');
      expect(format.subjects).toBeGreaterThanOrEqual(10);
      expect(format.schemas).toBeGreaterThan(format.subjects / 2);
      expect(format.avroBytes * 3).toBeLessThan(format.jsonBytes);
      expect(result.lanes.warehouse.deadLettered + result.lanes.audit.deadLettered).toBe(0);
      const changed = new Set(result.schemaChanges.map((c) => c.table));
      expect(changed).toEqual(
        new Set(['pg.public.customers', 'pg.public.products', 'pg.public.order_items', 'pg.public.page_views']),
      );
    },
    RUN_TIMEOUT,
  );

  it(
    'a schema change the registry refuses (a renamed NOT NULL column under BACKWARD) stops the capture with one line',
    async () => {
      // Arrange: a NOT NULL column without a default, renamed: its new name is a required field without a default,
      // which a reader of the new schema cannot fill from the old records (BACKWARD)
      const options = smallRun({ format: 'avro', durationMs: 4000, schemaChange: false });
      const rename = async ({ connectionString: url }: RunContext) => {
        await sleep(500);
        await sql(url, 'CREATE TABLE public.gadgets (id int PRIMARY KEY, size int NOT NULL)');
        await sql(url, 'INSERT INTO public.gadgets VALUES (1, 10)');
        await sleep(300);
        await sql(url, 'ALTER TABLE public.gadgets RENAME COLUMN size TO dimension');
        await sql(url, 'INSERT INTO public.gadgets VALUES (2, 20)');
      };

      // Act
      const outcome = await runLocal(options, { whileRunning: rename }).then(
        () => undefined,
        (error: unknown) => error,
      );

      // Assert: the run fails with the converter's error, one line naming the table, the change and the rule
      expect(outcome).toBeInstanceOf(IncompatibleSchemaError);
      const error = outcome as IncompatibleSchemaError;
      expect(error.table).toBe('public.gadgets');
      expect(error.subject).toBe('pg.public.gadgets-value');
      expect(error.level).toBe('BACKWARD');
      expect(error.message).not.toContain('\n');
      expect(error.message).toMatch(/public\.gadgets.*BACKWARD.*dimension: READER_FIELD_MISSING_DEFAULT_VALUE/);
    },
    RUN_TIMEOUT,
  );
});
