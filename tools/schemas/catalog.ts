/**
 * The schema compatibility gate's model: the Avro schemas Debezium's AvroConverter would register for a database's
 * tables (derived from the PostgreSQL catalog exactly as the local capture builds its Connect schemas, then turned
 * into Avro as Confluent's AvroData does), and the committed catalog they are checked against — one file per table,
 * `schemas/<schema>.<table>.json`, holding the table's compatibility mode and the versions registered so far for its
 * key and value subjects, as a schema registry would hold them.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type AvroSchema, type ConnectSchema, connectToAvro } from '../../functions/core/decode/avro';
import { Catalog, type QueryClient } from '../local/capture/catalog';
import { buildTableSchema } from '../local/capture/table-schema';
import { COMPATIBILITY_LEVELS, type CompatibilityLevel, checkCompatibility, type Violation } from './compatibility';

/** The two subjects of a table's topic (TopicNameStrategy): `<topic>-key` and `<topic>-value`. */
export type SubjectPart = 'key' | 'value';

/** What the connector would register for one table. */
export interface DerivedTable {
  /** `schema.table` */
  table: string;
  topic: string;
  /** `<topic>.Envelope`: before/after `<topic>.Value`, the source block, op and timestamps. */
  value: AvroSchema;
  /** `<topic>.Key`; absent for a table without a primary key (Debezium writes null keys). */
  key?: AvroSchema;
}

/** One registered version of a subject. */
export interface CatalogVersion {
  version: number;
  schema: AvroSchema;
}

export interface CatalogSubject {
  subject: string;
  versions: CatalogVersion[];
}

/** The content of `schemas/<schema>.<table>.json`. */
export interface CatalogEntry {
  table: string;
  /** Applies to both subjects, as a registry's per-subject compatibility set for both would. */
  compatibility: CompatibilityLevel;
  key?: CatalogSubject;
  value: CatalogSubject;
}

/** The catalog file is not what this tool writes (unreadable JSON, unknown mode, missing fields). */
export class CatalogFileError extends Error {
  override readonly name = 'CatalogFileError';
}

/** What the check found for one subject. */
export type SubjectFinding =
  /** The schema is the latest registered version (or an earlier one: a registry would reuse that id). */
  | { kind: 'unchanged'; part: SubjectPart; subject: string }
  /** Not in the catalog yet: the table (or its key) is new; the first version needs no check. */
  | { kind: 'new'; part: SubjectPart; subject: string; schema: AvroSchema }
  /** A new version; `violations` empty when the table's mode allows it. */
  | { kind: 'changed'; part: SubjectPart; subject: string; schema: AvroSchema; violations: Violation[] }
  /** The catalog has a key subject but the table has no primary key any more: Debezium writes null keys. */
  | { kind: 'dropped'; part: SubjectPart; subject: string };

export interface TableFinding {
  table: string;
  compatibility: CompatibilityLevel;
  /** False when the table has no catalog file yet. */
  cataloged: boolean;
  subjects: SubjectFinding[];
}

/**
 * Derives the key and value Avro schemas of every ordinary table in the given PostgreSQL schemas: the Connect schemas
 * come from the local capture's TableSchema (the same catalog facts, codecs and defaults Debezium 3.1's PostgreSQL
 * connector uses), the Avro schemas from `connectToAvro` (AvroData.fromConnectSchema with connect.meta.data).
 */
export async function deriveSchemas(
  client: QueryClient,
  schemas: readonly string[],
  topicPrefix: string,
): Promise<DerivedTable[]> {
  const catalog = new Catalog(client);
  const derived: DerivedTable[] = [];
  for (const { schema, name } of await catalog.tablesInSchemas([...schemas])) {
    const oid = await catalog.oidOf(schema, name);
    if (oid === null) continue; // dropped between the two queries
    const table = await catalog.tableIfExists(oid);
    if (!table) continue;
    const built = await buildTableSchema(topicPrefix, catalog, table);
    // TableSchema keeps the JsonConverter document prefix (`{"schema":<schema>,"payload":`): the Connect schema as
    // the capture sends it, built once in one place.
    const connectOf = (prefix: string): ConnectSchema =>
      (JSON.parse(`${prefix}null}`) as { schema: ConnectSchema }).schema;
    const entry: DerivedTable = {
      table: `${schema}.${name}`,
      topic: built.topic,
      value: connectToAvro(connectOf(built.valuePrefix)),
    };
    if (built.keyPrefix) entry.key = connectToAvro(connectOf(built.keyPrefix));
    derived.push(entry);
  }
  return derived;
}

/** JSON with object keys sorted: schemas compare equal whatever order a hand edit left their properties in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

function compareSubject(
  part: SubjectPart,
  subject: string,
  schema: AvroSchema | undefined,
  registered: CatalogSubject | undefined,
  mode: CompatibilityLevel,
): SubjectFinding | undefined {
  if (schema === undefined) return registered ? { kind: 'dropped', part, subject: registered.subject } : undefined;
  if (!registered || registered.versions.length === 0) return { kind: 'new', part, subject, schema };
  const text = canonical(schema);
  // A registry answers a schema already registered under the subject with its id, without a compatibility check.
  if (registered.versions.some((v) => canonical(v.schema) === text)) return { kind: 'unchanged', part, subject };
  const violations = checkCompatibility(
    schema,
    registered.versions.map((v) => v.schema),
    mode,
  ).map((v) => ({ ...v, version: registered.versions[(v.version ?? registered.versions.length) - 1]?.version }));
  return { kind: 'changed', part, subject, schema, violations };
}

/** Compares what the connector would register for one table with its catalog entry (undefined: none yet). */
export function checkTable(
  derived: DerivedTable,
  entry: CatalogEntry | undefined,
  defaultMode: CompatibilityLevel,
): TableFinding {
  const mode = entry?.compatibility ?? defaultMode;
  const subjects: SubjectFinding[] = [];
  const key = compareSubject('key', `${derived.topic}-key`, derived.key, entry?.key, mode);
  const value = compareSubject('value', `${derived.topic}-value`, derived.value, entry?.value, mode);
  if (key) subjects.push(key);
  if (value) subjects.push(value);
  return { table: derived.table, compatibility: mode, cataloged: entry !== undefined, subjects };
}

/** The catalog entry after registering what a finding saw (new versions appended; `dropped` keys kept as history). */
export function updatedEntry(finding: TableFinding, entry: CatalogEntry | undefined): CatalogEntry {
  const next: CatalogEntry = entry
    ? structuredClone(entry)
    : { table: finding.table, compatibility: finding.compatibility, value: { subject: '', versions: [] } };
  for (const s of finding.subjects) {
    if (s.kind !== 'new' && s.kind !== 'changed') continue;
    const current = next[s.part] ?? { subject: s.subject, versions: [] };
    current.subject = s.subject;
    const last = current.versions.at(-1)?.version ?? 0;
    current.versions.push({ version: last + 1, schema: s.schema });
    next[s.part] = current;
  }
  // Key first, as a reader expects (`{table, compatibility, key, value}`).
  const { table, compatibility, key, value } = next;
  return key ? { table, compatibility, key, value } : { table, compatibility, value };
}

/** `schemas/<schema>.<table>.json` */
export function entryFile(dir: string, table: string): string {
  return join(dir, `${table}.json`);
}

function isSubject(value: unknown): value is CatalogSubject {
  const v = value as CatalogSubject | undefined;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.subject === 'string' &&
    Array.isArray(v.versions) &&
    v.versions.every((x) => typeof x?.version === 'number' && x.schema !== undefined)
  );
}

/** Reads a catalog file; undefined when there is none. Throws CatalogFileError for a file this tool cannot use. */
export async function readEntry(file: string): Promise<CatalogEntry | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let entry: CatalogEntry;
  try {
    entry = JSON.parse(text) as CatalogEntry;
  } catch (error) {
    throw new CatalogFileError(`${file}: not JSON (${(error as Error).message})`);
  }
  if (!COMPATIBILITY_LEVELS.includes(entry.compatibility)) {
    throw new CatalogFileError(
      `${file}: compatibility ${JSON.stringify(entry.compatibility)} is not one of ${COMPATIBILITY_LEVELS.join(', ')}`,
    );
  }
  if (typeof entry.table !== 'string' || !isSubject(entry.value) || (entry.key !== undefined && !isSubject(entry.key)))
    throw new CatalogFileError(
      `${file}: expected {table, compatibility, key?, value} with {subject, versions} subjects`,
    );
  return entry;
}

const LINE_WIDTH = 120;

/**
 * JSON in the layout the repository's formatter (Biome, 120 columns) keeps, so a file `--write` produced passes
 * `biome ci` as it is: objects one property per line, arrays of scalars on one line when they fit there.
 * Hand-written because JSON.stringify has no such mode and the formatter is a dev tool, not a library to call.
 */
export function formatCatalogJson(value: unknown): string {
  const out = (v: unknown, indent: string, column: number, tail: number): string => {
    if (v === null || typeof v !== 'object') return JSON.stringify(v);
    const inner = `${indent}  `;
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      if (v.every((x) => x === null || typeof x !== 'object')) {
        const flat = `[${v.map((x) => JSON.stringify(x)).join(', ')}]`;
        if (column + flat.length + tail <= LINE_WIDTH) return flat;
      }
      const items = v.map((x, i) => inner + out(x, inner, inner.length, i < v.length - 1 ? 1 : 0));
      return `[\n${items.join(',\n')}\n${indent}]`;
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    const lines = entries.map(([k, x], i) => {
      const head = `${inner}${JSON.stringify(k)}: `;
      return head + out(x, inner, head.length, i < entries.length - 1 ? 1 : 0);
    });
    return `{\n${lines.join(',\n')}\n${indent}}`;
  };
  return `${out(value, '', 0, 0)}\n`;
}

/** Writes a catalog file (see formatCatalogJson). */
export async function writeEntry(file: string, entry: CatalogEntry): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, formatCatalogJson(entry));
}

/** The tables the catalog directory holds entries for, in the given schemas (to report tables that are gone). */
export async function catalogedTables(dir: string, schemas: readonly string[]): Promise<string[]> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return files
    .filter((f) => f.endsWith('.json') && schemas.some((s) => f.startsWith(`${s}.`)))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}
