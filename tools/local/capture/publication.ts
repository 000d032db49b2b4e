/**
 * The publication the slot decodes with, and the optional signal table. Debezium's `publication.autocreate.mode`
 * creates `FOR ALL TABLES` or `FOR TABLE …` (filtered); this capture, when it captures whole schemas, publishes
 * `FOR TABLES IN SCHEMA` (PostgreSQL >= 15) so a table created later in a captured schema is streamed from its first
 * row without a restart. Older servers (or a role that may not create such a publication: it needs a superuser)
 * fall back to `FOR TABLE` with a warning.
 */
import type { QueryClient } from './catalog';
import { quoteIdent } from './replication';
import type { CaptureLogger } from './types';

type Name = { schema: string; name: string };

const qualified = (t: Name) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`;

/** Creates the publication, or adds what an existing one lacks (schemas, tables). Never removes anything. */
export async function ensurePublication(
  client: QueryClient,
  spec: {
    publication: string;
    /** Captured schemas, or null when an explicit table list is captured. */
    schemas: string[] | null;
    /** Tables that must be published (captured tables and the signal table). */
    tables: Name[];
    /** `server_version_num` */
    serverVersion: number;
    logger: CaptureLogger;
  },
): Promise<void> {
  const pub = quoteIdent(spec.publication);
  const bySchema = spec.schemas !== null && spec.serverVersion >= 150000;
  if (spec.schemas !== null && !bySchema) {
    spec.logger.warn(
      `capture: PostgreSQL ${spec.serverVersion} has no FOR TABLES IN SCHEMA: tables created later need a restart`,
    );
  }
  const existing = (
    await client.query('SELECT oid::text AS oid, puballtables::text AS all FROM pg_publication WHERE pubname = $1', [
      spec.publication,
    ])
  ).rows[0];
  if (!existing) {
    if (bySchema && spec.schemas) {
      const schemaList = spec.schemas.map(quoteIdent).join(', ');
      const extra = spec.tables.filter((t) => !spec.schemas?.includes(t.schema));
      try {
        await client.query(
          `CREATE PUBLICATION ${pub} FOR TABLES IN SCHEMA ${schemaList}` +
            (extra.length > 0 ? `, TABLE ${extra.map(qualified).join(', ')}` : ''),
        );
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '42501') throw err;
        spec.logger.warn(
          'capture: only a superuser may publish FOR TABLES IN SCHEMA: publishing FOR TABLE instead; tables ' +
            'created later need a restart',
        );
      }
    }
    if (spec.tables.length === 0) throw new Error('no tables to publish');
    await client.query(`CREATE PUBLICATION ${pub} FOR TABLE ${spec.tables.map(qualified).join(', ')}`);
    return;
  }
  if (existing.all === 'true') return;
  if (bySchema && spec.schemas) {
    // A publication created FOR TABLE by an older run keeps working; schemas are added when the role may.
    const { rows } = await client.query(
      `SELECT n.nspname AS schema FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid
       WHERE pn.pnpubid = $1::oid`,
      [existing.oid],
    );
    const have = new Set(rows.map((r) => r.schema));
    const missing = spec.schemas.filter((s) => !have.has(s));
    if (missing.length > 0) {
      try {
        await client.query(`ALTER PUBLICATION ${pub} ADD TABLES IN SCHEMA ${missing.map(quoteIdent).join(', ')}`);
        spec.logger.info(`capture: publication ${spec.publication} now publishes schema ${missing.join(', ')}`);
      } catch (err) {
        if ((err as { code?: string }).code !== '42501') throw err;
        spec.logger.warn(
          `capture: publication ${spec.publication} lists tables and only a superuser may add schemas: tables ` +
            'created later need a restart',
        );
      }
    }
  }
  const { rows } = await client.query(
    'SELECT schemaname AS schema, tablename AS name FROM pg_publication_tables WHERE pubname = $1',
    [spec.publication],
  );
  const have = new Set(rows.map((r) => `${r.schema}.${r.name}`));
  const missing = spec.tables.filter((t) => !have.has(`${t.schema}.${t.name}`));
  if (missing.length > 0) {
    spec.logger.warn(
      `capture: adding ${missing.map((t) => `${t.schema}.${t.name}`).join(', ')} to publication ${spec.publication}`,
    );
    await client.query(`ALTER PUBLICATION ${pub} ADD TABLE ${missing.map(qualified).join(', ')}`);
  }
}

/**
 * Creates the signal table with Debezium's layout when it is missing and returns its OID. Debezium expects the user
 * to create it; doing it here keeps `npm start` a one-step affair.
 */
export async function ensureSignalTable(client: QueryClient, table: Name, logger: CaptureLogger): Promise<number> {
  const find = () =>
    client.query(
      `SELECT c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [table.schema, table.name],
    );
  let oid = (await find()).rows[0]?.oid;
  if (!oid) {
    logger.info(`capture: creating signal table ${table.schema}.${table.name}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${qualified(table)} ` +
        '(id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))',
    );
    oid = (await find()).rows[0]?.oid;
  }
  if (!oid) throw new Error(`signal table ${table.schema}.${table.name} could not be created`);
  return Number(oid);
}
