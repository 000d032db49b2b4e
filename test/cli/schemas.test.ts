import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { createDemoSchema } from '../../tools/local/postgres';
import { formatCatalogJson, readEntry } from '../../tools/schemas/catalog';
import { parseSchemasArgs, runSchemasCheck, type SchemasOptions, UsageError } from '../../tools/schemas/cli';
import { unique, usePostgres } from '../capture/helpers';
import { throwawayDir } from '../support/scratch';
import { runTool } from '../support/tool';

/** `npm run schemas -- …` as CI runs it: a process, its exit code and output. */
const cli = (...args: string[]) => runTool('tools/schemas/cli.ts', args);

/** The check in-process (faster than a process per call where the exit path is not what is tested). */
async function check(options: Partial<SchemasOptions> & { source: string }) {
  const lines: string[] = [];
  const errors: string[] = [];
  const code = await runSchemasCheck(
    {
      schemas: ['public'],
      catalog: 'schemas',
      topicPrefix: 'pg',
      compatibility: 'BACKWARD',
      write: false,
      ...options,
    },
    { out: (l) => lines.push(l), err: (l) => errors.push(l) },
  );
  return { code, lines, errors };
}

const { db, sql } = usePostgres();

beforeAll(async () => {
  await createDemoSchema(sql());
});

describe('npm run schemas -- check', () => {
  it('passes the demo schema against the committed catalog (schemas/)', async () => {
    // Act
    const result = await check({ source: db().url });
    // Assert
    expect(result.errors).toEqual([]);
    expect(result.lines.at(-1)).toMatch(/^\d+ tables in public: compatible with the catalog$/);
    expect(result.code).toBe(0);
  });

  it('fails a breaking migration with the column and the rule, and passes once --write records it', async () => {
    // Arrange: the demo tables in a scratch schema, cataloged as they are; orders under FORWARD
    const schema = unique('gate');
    const catalog = throwawayDir('schemas-');
    await createDemoSchema(sql(), { schema });
    const baseline = await check({ source: db().url, schemas: [schema], catalog, write: true });
    expect(baseline.code).toBe(0);
    const ordersFile = join(catalog, `${schema}.orders.json`);
    const orders = JSON.parse(await readFile(ordersFile, 'utf8'));
    await writeFile(ordersFile, formatCatalogJson({ ...orders, compatibility: 'FORWARD' }));
    // a NOT NULL column without default dropped (old readers need it), a column retyped int → text
    await sql().query(`ALTER TABLE "${schema}".orders DROP COLUMN customer_id`);
    await sql().query(`ALTER TABLE "${schema}".order_items ALTER COLUMN quantity TYPE text`);
    // Act
    const failed = await cli('check', '--source', db().url, '--schema', schema, '--catalog', catalog);
    // Assert
    expect(failed.code).toBe(1);
    const lines = failed.stdout.trim().split('\n');
    expect(lines).toContain(
      `${schema}.orders value: column customer_id: READER_FIELD_MISSING_DEFAULT_VALUE under FORWARD (forward, against v1): field customer_id is read but not written, and has no default`,
    );
    expect(lines).toContain(
      `${schema}.order_items value: column quantity: TYPE_MISMATCH under BACKWARD (backward, against v1): reader type string cannot read writer type int`,
    );
    expect(lines.at(-1)).toMatch(/2 compatibility violation\(s\)/);

    // Act: accept the change deliberately, then check again
    const written = await cli('check', '--source', db().url, '--schema', schema, '--catalog', catalog, '--write');
    const again = await cli('check', '--source', db().url, '--schema', schema, '--catalog', catalog);
    // Assert
    expect(written.code).toBe(0);
    expect(written.stdout).toContain(`accepted: ${schema}.orders value: column customer_id`);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('compatible with the catalog');
    const entry = await readEntry(ordersFile);
    expect(entry?.compatibility).toBe('FORWARD');
    expect(entry?.value.versions.map((v) => v.version)).toEqual([1, 2]);
    expect(entry?.key?.versions).toHaveLength(1);
  });

  it('asks for --write when a compatible change is not in the catalog yet, and for a new table', async () => {
    // Arrange
    const schema = unique('gate');
    const catalog = throwawayDir('schemas-');
    await createDemoSchema(sql(), { schema });
    await check({ source: db().url, schemas: [schema], catalog, write: true });
    await sql().query(`ALTER TABLE "${schema}".customers ADD COLUMN nickname text`);
    await sql().query(`CREATE TABLE "${schema}".coupons (code text PRIMARY KEY)`);
    // Act
    const result = await check({ source: db().url, schemas: [schema], catalog });
    const written = await check({ source: db().url, schemas: [schema], catalog, write: true });
    const after = await check({ source: db().url, schemas: [schema], catalog });
    // Assert
    expect(result.code).toBe(1);
    expect(result.lines).toContain(`${schema}.customers value: compatible new version under BACKWARD`);
    expect(result.lines).toContain(`${schema}.coupons key: pg.${schema}.coupons-key is not in the catalog`);
    expect(result.lines.at(-1)).toMatch(/2 table\(s\) with schemas not in the catalog: run with --write/);
    expect(written.code).toBe(0);
    expect(after.code).toBe(0);
    expect((await readEntry(join(catalog, `${schema}.coupons.json`)))?.compatibility).toBe('BACKWARD');
  });

  it('exits 2 with one line naming the database (without its password) when it cannot connect', async () => {
    // Act
    const result = await cli('check', '--source', 'postgres://gate:s3cret@127.0.0.1:1/app');
    // Assert
    expect(result.code).toBe(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^schemas: cannot connect to postgres:\/\/gate:\*\*\*@127\.0\.0\.1:1\/app: ECONNREFUSED/);
    expect(result.stderr).not.toContain('s3cret');
  });

  it('exits 2 for a schema without tables (a typo must not pass the gate)', async () => {
    const result = await check({ source: db().url, schemas: ['no_such_schema'] });
    expect(result.code).toBe(2);
    expect(result.errors).toEqual([expect.stringMatching(/^schemas: no tables in schema no_such_schema/)]);
  });
});

describe('parseSchemasArgs', () => {
  it('defaults to public, schemas/, topic prefix pg and BACKWARD for new tables', () => {
    expect(parseSchemasArgs(['check', '--source', 'postgres://x'])).toEqual({
      source: 'postgres://x',
      schemas: ['public'],
      catalog: 'schemas',
      topicPrefix: 'pg',
      compatibility: 'BACKWARD',
      write: false,
    });
  });

  it('refuses a missing --source, an unknown mode and an unknown command', () => {
    expect(() => parseSchemasArgs(['check'])).toThrow(UsageError);
    expect(() => parseSchemasArgs(['check', '--source', 'x', '--compatibility', 'SIDEWAYS'])).toThrow(/SIDEWAYS/);
    expect(() => parseSchemasArgs(['register', '--source', 'x'])).toThrow(/"check"/);
  });
});

describe('formatCatalogJson', () => {
  it('keeps objects one property per line and short scalar arrays on one line, as the formatter does', () => {
    const long = Array.from({ length: 30 }, (_, i) => `symbol_${i}`);
    expect(formatCatalogJson({ a: ['null', 'long'], b: {}, c: long.slice(0, 2) })).toBe(
      '{\n  "a": ["null", "long"],\n  "b": {},\n  "c": ["symbol_0", "symbol_1"]\n}\n',
    );
    const wrapped = formatCatalogJson({ symbols: long });
    expect(wrapped.split('\n')).toHaveLength(long.length + 5);
  });
});
