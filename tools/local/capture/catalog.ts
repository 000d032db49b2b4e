/**
 * Reads what the capture needs to know about captured tables from the PostgreSQL catalog: columns (type OID, typmod,
 * NOT NULL, default expression), the primary key, the replica identity, and the types behind the columns (arrays,
 * domains, enum labels). Debezium builds its Connect schemas from the same facts (via JDBC metadata).
 */
import { SourceError } from './types';

/** The subset of node-postgres' client used here; rows come back as text (see `TEXT_TYPES`). */
export interface QueryClient {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, string | null>> }>;
}

export interface PgType {
  oid: number;
  schema: string;
  name: string;
  /** b base, e enum, d domain, c composite, r range, m multirange, p pseudo. */
  typtype: string;
  /** A for arrays, N numeric, S string, ... */
  category: string;
  /** Element type of an array type, 0 otherwise. */
  elemOid: number;
  /** Base type of a domain, 0 otherwise. */
  baseOid: number;
  baseTypmod: number;
  /** Array element delimiter (`,` for all but box). */
  delimiter: string;
  /** Labels in sort order, for enums. */
  enumLabels?: string[];
}

export interface CatalogColumn {
  name: string;
  typeOid: number;
  typmod: number;
  notNull: boolean;
  /** `pg_get_expr(adbin)`, e.g. `'pending'::text`, `nextval('x_id_seq'::regclass)`, `now()`. */
  defaultExpr: string | null;
  /** Serial/bigserial (a nextval default owned by the column), as pgjdbc reports the type name. */
  serial: boolean;
}

export interface CatalogTable {
  oid: number;
  schema: string;
  name: string;
  columns: CatalogColumn[];
  primaryKey: string[];
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
}

/** node-postgres type parsing that returns every value as PostgreSQL's text, like pgoutput sends it. */
export const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

const TABLE_SQL = `
  SELECT c.oid::text AS oid, n.nspname AS schema, c.relname AS name, c.relreplident AS replident
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = $1::oid`;

const COLUMNS_SQL = `
  SELECT a.attname AS name, a.atttypid::text AS type_oid, a.atttypmod::text AS typmod,
         a.attnotnull::text AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
         (pg_get_serial_sequence(quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname)
           IS NOT NULL)::text AS serial
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  ORDER BY a.attnum`;

// PG < 12 has no attgenerated; the capture works on PG >= 10, so fall back to a query without it.
const COLUMNS_SQL_PRE12 = COLUMNS_SQL.replace(" AND a.attgenerated = ''", '');

const PK_SQL = `
  SELECT a.attname AS name
  FROM pg_index i
  CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
  WHERE i.indrelid = $1::oid AND i.indisprimary
  ORDER BY k.ord`;

const TYPES_SQL = `
  SELECT t.oid::text AS oid, n.nspname AS schema, t.typname AS name, t.typtype AS typtype,
         t.typcategory AS category, t.typelem::text AS elem, t.typbasetype::text AS base,
         t.typtypmod::text AS base_typmod, t.typdelim AS delim
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  WHERE t.oid = ANY($1::oid[])`;

const ENUM_SQL = `
  SELECT enumtypid::text AS oid, enumlabel AS label FROM pg_enum
  WHERE enumtypid = ANY($1::oid[]) ORDER BY enumtypid, enumsortorder`;

/** The relation asked for is not in the catalog (any more). */
export class RelationMissing extends Error {
  override readonly name = 'RelationMissing';
}

/** Catalog reader with a type cache; one per capture. */
export class Catalog {
  private readonly types = new Map<number, PgType>();
  private columnsSql = COLUMNS_SQL;

  constructor(private readonly client: QueryClient) {}

  /** OIDs of the given `schema.table` names (throws for a missing table). */
  async tableOids(names: Array<{ schema: string; name: string }>): Promise<number[]> {
    const oids: number[] = [];
    for (const t of names) {
      const { rows } = await this.client.query(
        `SELECT c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
        [t.schema, t.name],
      );
      const oid = rows[0]?.oid;
      if (!oid) throw new SourceError(`table ${t.schema}.${t.name} does not exist`);
      oids.push(Number(oid));
    }
    return oids;
  }

  /** All ordinary tables of the given schemas, as `{schema, name}` sorted by `schema.table`. */
  async tablesInSchemas(schemas: string[]): Promise<Array<{ schema: string; name: string }>> {
    const { rows } = await this.client.query(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ANY($1::text[]) AND c.relkind = 'r' ORDER BY 1, 2`,
      [schemas],
    );
    return rows.map((r) => ({ schema: r.schema ?? '', name: r.name ?? '' }));
  }

  /** OID of `schema.table` (ordinary or partitioned), or null when there is no such table. */
  async oidOf(schema: string, name: string): Promise<number | null> {
    const { rows } = await this.client.query(
      `SELECT c.oid::text AS oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [schema, name],
    );
    return rows[0]?.oid ? Number(rows[0].oid) : null;
  }

  /**
   * Like `table`, but null when the relation no longer exists: a table dropped after the change that announced it
   * was written (the stream runs behind the catalog). A concurrent DROP can also make the catalog functions fail
   * with "cache lookup failed" (XX000) mid-query.
   */
  async tableIfExists(oid: number): Promise<CatalogTable | null> {
    try {
      return await this.table(oid);
    } catch (err) {
      if (err instanceof RelationMissing) return null;
      if ((err as { code?: string }).code === 'XX000' && /cache lookup failed/.test(String(err))) return null;
      throw err;
    }
  }

  /** Columns, key and replica identity of one table. */
  async table(oid: number): Promise<CatalogTable> {
    const { rows: tableRows } = await this.client.query(TABLE_SQL, [oid]);
    const t = tableRows[0];
    if (!t) throw new RelationMissing(`relation ${oid} does not exist`);
    let columnRows: Array<Record<string, string | null>>;
    try {
      columnRows = (await this.client.query(this.columnsSql, [oid])).rows;
    } catch (err) {
      if (this.columnsSql === COLUMNS_SQL_PRE12 || !/attgenerated/.test(String(err))) throw err;
      this.columnsSql = COLUMNS_SQL_PRE12;
      columnRows = (await this.client.query(this.columnsSql, [oid])).rows;
    }
    const { rows: pkRows } = await this.client.query(PK_SQL, [oid]);
    const columns: CatalogColumn[] = columnRows.map((r) => ({
      name: r.name ?? '',
      typeOid: Number(r.type_oid),
      typmod: Number(r.typmod),
      notNull: r.not_null === 'true',
      defaultExpr: r.default_expr ?? null,
      serial: r.serial === 'true',
    }));
    await this.ensureTypes(columns.map((c) => c.typeOid));
    return {
      oid,
      schema: t.schema ?? '',
      name: t.name ?? '',
      columns,
      primaryKey: pkRows.map((r) => r.name ?? ''),
      replicaIdentity: (t.replident ?? 'd') as CatalogTable['replicaIdentity'],
    };
  }

  /** Loads the given types and, transitively, their element and base types and enum labels. */
  async ensureTypes(oids: number[]): Promise<void> {
    let missing = [...new Set(oids)].filter((oid) => oid > 0 && !this.types.has(oid));
    while (missing.length > 0) {
      const { rows } = await this.client.query(TYPES_SQL, [missing]);
      const enums: number[] = [];
      for (const r of rows) {
        const type: PgType = {
          oid: Number(r.oid),
          schema: r.schema ?? '',
          name: r.name ?? '',
          typtype: r.typtype ?? 'b',
          category: r.category ?? 'U',
          elemOid: Number(r.elem),
          baseOid: Number(r.base),
          baseTypmod: Number(r.base_typmod),
          delimiter: r.delim ?? ',',
        };
        this.types.set(type.oid, type);
        if (type.typtype === 'e') enums.push(type.oid);
      }
      if (enums.length > 0) {
        const { rows: labels } = await this.client.query(ENUM_SQL, [enums]);
        for (const r of labels) {
          const type = this.types.get(Number(r.oid));
          if (!type) continue;
          type.enumLabels = [...(type.enumLabels ?? []), r.label ?? ''];
        }
      }
      for (const oid of missing) {
        if (!this.types.has(oid)) throw new Error(`type ${oid} does not exist`);
      }
      const next = rows.flatMap((r) => [Number(r.elem), Number(r.base)]);
      missing = [...new Set(next)].filter((oid) => oid > 0 && !this.types.has(oid));
    }
  }

  /** A type loaded by `ensureTypes` (or by `table`). */
  type(oid: number): PgType {
    const type = this.types.get(oid);
    if (!type) throw new Error(`type ${oid} was not loaded`);
    return type;
  }
}
