/**
 * npm run schemas -- check --source <postgres-url> [--schema <s>…] [--catalog <dir>] [--write]
 *
 * The schema compatibility gate, for the CI of the repository that owns the database migrations: derives the Avro
 * schemas Debezium's AvroConverter would register for the current tables (value `<topic>.Envelope`, key
 * `<topic>.Key`) and checks each against the committed catalog (`schemas/<schema>.<table>.json`) under the table's
 * compatibility mode, as the schema registry will when the connector registers it after the migration. Every
 * violation is printed with its column and Avro's rule. `--write` records the schemas as new versions.
 *
 * Exit code 0 compatible and catalog current, 1 a violation or a schema not in the catalog yet (run with --write and
 * commit), 2 usage error, unreachable database or unreadable catalog file.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { TEXT_TYPES } from '../local/capture/catalog';
import {
  type CatalogEntry,
  CatalogFileError,
  catalogedTables,
  checkTable,
  deriveSchemas,
  entryFile,
  readEntry,
  type TableFinding,
  updatedEntry,
  writeEntry,
} from './catalog';
import { COMPATIBILITY_LEVELS, type CompatibilityLevel, type Violation } from './compatibility';

export const USAGE = `usage: npm run schemas -- check --source <postgres-url> [options]

Checks the Avro schemas Debezium's AvroConverter would register for the current tables against the committed
catalog (one file per table: its compatibility mode and registered versions), under each table's mode.

  --source <url>          the database whose current tables are checked (e.g. $DATABASE_URL after the migrations)
  --schema <name>         PostgreSQL schema to check; repeat for several (default public)
  --catalog <dir>         the catalog directory (default schemas/)
  --topic-prefix <name>   Debezium topic.prefix: it names the topics, subjects and Avro records (default pg)
  --compatibility <mode>  mode of tables new to the catalog (default BACKWARD): ${COMPATIBILITY_LEVELS.join(', ')}
  --write                 record the current schemas as new versions (new tables get a file)
  --help                  this text

Exit code 0 compatible and catalog current, 1 violations or schemas not in the catalog, 2 usage or connection error.`;

const FLAGS = {
  source: { type: 'string' },
  schema: { type: 'string', multiple: true },
  catalog: { type: 'string' },
  'topic-prefix': { type: 'string' },
  compatibility: { type: 'string' },
  write: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

/** The parsed command line of `schemas check`. */
export interface SchemasOptions {
  source: string;
  schemas: string[];
  catalog: string;
  topicPrefix: string;
  compatibility: CompatibilityLevel;
  write: boolean;
}

/** A command line this tool cannot run (exit 2). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Parses `check …` (the argv after `npm run schemas --`). */
export function parseSchemasArgs(argv: readonly string[]): SchemasOptions | 'help' {
  let parsed: ReturnType<typeof parseArgs<{ allowPositionals: true; strict: true; options: typeof FLAGS }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: FLAGS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  if (positionals[0] !== 'check' || positionals.length > 1)
    throw new UsageError(`expected the command "check", got "${positionals.join(' ')}"`);
  if (!values.source) throw new UsageError('--source <postgres-url> is required');
  const compatibility = (values.compatibility ?? 'BACKWARD').toUpperCase() as CompatibilityLevel;
  if (!COMPATIBILITY_LEVELS.includes(compatibility))
    throw new UsageError(
      `--compatibility must be one of ${COMPATIBILITY_LEVELS.join(', ')}, got "${values.compatibility}"`,
    );
  const topicPrefix = values['topic-prefix'] ?? 'pg';
  if (!/^[A-Za-z0-9_-]+$/.test(topicPrefix))
    throw new UsageError(`--topic-prefix may hold letters, digits, _ and - only, got "${topicPrefix}"`);
  return {
    source: values.source,
    schemas: values.schema?.length ? [...new Set(values.schema)] : ['public'],
    catalog: values.catalog ?? 'schemas',
    topicPrefix,
    compatibility,
    write: values.write ?? false,
  };
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(the --source URL)';
  }
}

/** Output channels (tests capture them). */
export interface SchemasIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** `public.orders.after.status` → column `status`; source-block and envelope paths stay as they are. */
function columnOf(part: 'key' | 'value', path: string): string {
  if (part === 'key') return `column ${path || '(key)'}`;
  const match = /^(?:before|after)\.([^.]+)(.*)$/.exec(path);
  return match ? `column ${match[1]}${match[2]}` : `field ${path || '(envelope)'}`;
}

/** One line per violation, the before/after twins of a column's violation folded into one. */
function violationLines(finding: TableFinding, part: 'key' | 'value', violations: Violation[]): string[] {
  const lines = new Set<string>();
  for (const v of violations) {
    const message = v.message.replace(/^field (?:before|after)\./, 'field ');
    const against = v.version === undefined ? '' : ` v${v.version}`;
    lines.add(
      `${finding.table} ${part}: ${columnOf(part, v.path)}: ${v.rule} under ${finding.compatibility} (${v.direction}, against${against}): ${message}`,
    );
  }
  return [...lines];
}

/**
 * Runs `schemas check`; returns the exit code. Every finding is one line on `out`, errors on `err`. Exported for
 * tests; the command line below only wires process.argv and process.exit to it.
 */
export async function runSchemasCheck(options: SchemasOptions, io: SchemasIo): Promise<number> {
  const client = new pg.Client({
    connectionString: options.source,
    types: TEXT_TYPES,
    connectionTimeoutMillis: 10_000,
  });
  // An unreachable server emits 'error' as well as rejecting connect(); without a listener that would crash the tool.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    io.err(`schemas: cannot connect to ${redact(options.source)}: ${e.code ? `${e.code} ` : ''}${e.message}`.trim());
    return 2;
  }
  let derived: Awaited<ReturnType<typeof deriveSchemas>>;
  try {
    derived = await deriveSchemas(client, options.schemas, options.topicPrefix);
  } catch (error) {
    io.err(`schemas: cannot read the tables of ${options.schemas.join(', ')}: ${(error as Error).message}`);
    return 2;
  } finally {
    await client.end().catch(() => undefined);
  }
  if (derived.length === 0) {
    io.err(`schemas: no tables in schema ${options.schemas.join(', ')} of ${redact(options.source)}`);
    return 2;
  }
  const catalogDir = resolve(options.catalog);
  let failing = 0;
  let pending = 0;
  let written = 0;
  for (const table of derived) {
    const file = entryFile(catalogDir, table.table);
    let entry: CatalogEntry | undefined;
    try {
      entry = await readEntry(file);
    } catch (error) {
      if (!(error instanceof CatalogFileError)) throw error;
      io.err(`schemas: ${error.message}`);
      return 2;
    }
    const finding = checkTable(table, entry, options.compatibility);
    let changed = false;
    for (const s of finding.subjects) {
      if (s.kind === 'unchanged') continue;
      if (s.kind === 'dropped') {
        io.out(
          `${finding.table} key: no primary key any more; Debezium writes null keys (${s.subject} keeps its history)`,
        );
        continue;
      }
      changed = true;
      if (s.kind === 'new') {
        io.out(
          `${finding.table} ${s.part}: ${s.subject} is not in the catalog${options.write ? ': recorded as v1' : ''}`,
        );
        continue;
      }
      const next = (entry?.[s.part]?.versions.at(-1)?.version ?? 0) + 1;
      if (s.violations.length === 0) {
        io.out(
          `${finding.table} ${s.part}: compatible new version under ${finding.compatibility}${options.write ? `: recorded as v${next}` : ''}`,
        );
        continue;
      }
      const lines = violationLines(finding, s.part, s.violations);
      failing += lines.length;
      for (const line of lines) io.out(options.write ? `accepted: ${line}` : line);
      if (options.write)
        io.out(
          `${finding.table} ${s.part}: recorded as v${next}; a registry under ${finding.compatibility} refuses it (409) until the subject's compatibility is lowered or the subject reset`,
        );
    }
    if (!changed) continue;
    if (options.write) {
      await writeEntry(file, updatedEntry(finding, entry));
      written++;
    } else {
      pending++;
    }
  }
  for (const gone of await catalogedTables(catalogDir, options.schemas)) {
    if (!derived.some((t) => t.table === gone)) io.out(`${gone}: in the catalog but not in the database (dropped?)`);
  }
  const summary = `${derived.length} tables in ${options.schemas.join(', ')}`;
  if (options.write) {
    io.out(
      `${summary}: ${written} catalog file(s) written to ${options.catalog}${failing ? `, ${failing} violation(s) accepted` : ''}`,
    );
    return 0;
  }
  if (failing > 0) {
    io.out(
      `${summary}: ${failing} compatibility violation(s); make the migration compatible, or run with --write to accept it`,
    );
    return 1;
  }
  if (pending > 0) {
    io.out(
      `${summary}: compatible; ${pending} table(s) with schemas not in the catalog: run with --write and commit ${options.catalog}/`,
    );
    return 1;
  }
  io.out(`${summary}: compatible with the catalog`);
  return 0;
}

async function main(): Promise<void> {
  let options: SchemasOptions | 'help';
  try {
    options = parseSchemasArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const code = await runSchemasCheck(options, {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
  process.exit(code);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
