/**
 * Reading the audit log for a rebuild: every hash chain under the prefix, verified as it is read, and the changes of
 * the tables asked for, each with the column types its table's schema version gives (the warehouse writes typed
 * Parquet with them, as the lane does with the types the record carried).
 *
 * A chain that holds changes of those tables, or is named after one of them, must verify: a rebuild from a chain with
 * a gap, a changed or a reordered entry would restore something the source never had, so it is refused
 * ({@link BrokenChainError}, naming the chain and where it breaks). A broken chain of other tables is only reported.
 *
 * Audit objects never change (S3 Object Lock), so the reader keeps what it downloaded: reading again (a rebuild does,
 * once the audit lane caught up with a sink's lane) fetches only the objects written since.
 */
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { type AuditSchemaEntry, type ChainProblem, verifyChain } from '../../functions/adapters/audit-chain';
import { compileRowPlan } from '../../functions/core/decode/connect-schema';
import type { ChangeEvent, ColumnTypes, SchemaColumn } from '../../functions/core/types';
import { mapInOrder, READS_IN_FLIGHT } from '../lib/concurrency';
import { tableOf } from './order';

/** A change read from the audit log, with its table's column types when the stream carried schemas. */
export interface AuditedChange {
  event: ChangeEvent;
  columns: ColumnTypes | undefined;
}

/** A chain that does not verify. */
export interface BrokenChain {
  /** `<topic>/<partition>/<epoch>` */
  chain: string;
  problems: ChainProblem[];
}

export interface AuditRead {
  /** Changes per table id, each change once (the first chain that holds its id), in no particular order. */
  tables: Map<string, AuditedChange[]>;
  /** Every table id the log holds changes of (the tables asked for are among them, or are unknown to the log). */
  known: Set<string>;
  /** Broken chains that hold nothing of the tables asked for (reported, not refused). */
  otherBroken: BrokenChain[];
  chains: number;
  objects: number;
}

/** The audit log holds a broken chain the rebuild would read from. */
export class BrokenChainError extends Error {
  override readonly name = 'BrokenChainError';
  constructor(readonly broken: BrokenChain[]) {
    super(
      `refusing to rebuild from a broken audit chain: ${broken.map((b) => `${b.chain} (${describeProblem(b.problems[0] as ChainProblem)})`).join('; ')}; npm run verify-audit says more`,
    );
  }
}

export function describeProblem(problem: ChainProblem): string {
  const where = `${problem.object} line ${problem.line}`;
  switch (problem.kind) {
    case 'unparsable':
      return `unreadable entry at ${where}`;
    case 'gap':
      return `entry ${problem.seq} where ${problem.expectedSeq} was due, at ${where}`;
    case 'prev-mismatch':
      return `entry ${problem.seq} does not follow the one before it, at ${where}`;
    case 'hash-mismatch':
      return `entry ${problem.seq} was changed, at ${where}`;
  }
}

/** The column types of a schema version, through the decoder's own mapping of Connect types. */
export function columnTypesOf(columns: readonly SchemaColumn[]): ColumnTypes {
  return compileRowPlan({
    type: 'struct',
    fields: columns.map((c) => ({
      field: c.name,
      // Containers are spelled with what they hold (`array<int64>`); the mapping needs the container's own type.
      type: /^(array|map|struct)</.exec(c.type)?.[1] ?? c.type,
      ...(c.logical !== undefined ? { name: c.logical } : {}),
      ...(c.parameters !== undefined ? { parameters: c.parameters } : {}),
      optional: c.optional,
    })),
  }).columns;
}

type SchemaEntry = Extract<AuditSchemaEntry, { kind: 'schema' }>;

/** The schema version in force at `order`: the one first carried at the highest order not above it. */
function versionAt(versions: readonly SchemaEntry[] | undefined, order: string): SchemaEntry | undefined {
  let found: SchemaEntry | undefined;
  for (const v of versions ?? []) if (v.order <= order && (!found || v.order >= found.order)) found = v;
  return found;
}

export class AuditLogReader {
  /** Objects read so far, with the ETag read: a lane's replay rewrites the last object of a chain, read it again. */
  private readonly texts = new Map<string, { etag: string; text: string }>();
  private readonly typesByFingerprint = new Map<string, ColumnTypes>();

  constructor(
    private readonly s3: S3Client,
    private readonly where: { bucket: string; prefix: string },
  ) {}

  /** Reads (again) every chain; changes of the tables `wanted` says yes to. Throws BrokenChainError. */
  async read(wanted: (table: string) => boolean): Promise<AuditRead> {
    const { bucket, prefix } = this.where;
    const byChain = new Map<string, string[]>();
    const listed = await this.listKeys();
    for (const { key } of listed) {
      const chain = key.slice(prefix.length, key.lastIndexOf('/'));
      byChain.set(chain, [...(byChain.get(chain) ?? []), key]);
    }
    // Without an ETag (an emulator that lists none) an object is read every time.
    const stale = listed
      .filter(({ key, etag }) => etag === '' || this.texts.get(key)?.etag !== etag)
      .map(({ key }) => key);
    await mapInOrder(stale, READS_IN_FLIGHT, async (key) => {
      const object = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const bytes = await object.Body?.transformToByteArray();
      this.texts.set(key, { etag: object.ETag ?? '', text: gunzipSync(bytes ?? new Uint8Array()).toString('utf8') });
    });

    const checked = [...byChain].map(([chain, keys]) => {
      keys.sort(); // object names are zero-padded first sequence numbers
      return {
        chain,
        ...verifyChain(keys.map((key) => ({ key, text: (this.texts.get(key) as { text: string }).text }))),
      };
    });
    const known = new Set<string>();
    const refused: BrokenChain[] = [];
    const otherBroken: BrokenChain[] = [];
    // Schema versions per table: per chain (a partition's entries say when its records changed version), and over
    // every chain for a change its own chain has no entry for yet (a chain restarted in a new epoch).
    const allVersions = new Map<string, SchemaEntry[]>();
    const chainVersions = checked.map((c) => {
      const versions = new Map<string, SchemaEntry[]>();
      for (const s of c.schemas) {
        if (s.kind !== 'schema') continue;
        versions.set(s.table, [...(versions.get(s.table) ?? []), s]);
        allVersions.set(s.table, [...(allVersions.get(s.table) ?? []), s]);
      }
      return versions;
    });
    for (const c of checked) {
      const topic = c.chain.split('/')[0] as string;
      const tables = new Set(c.events.map(tableOf));
      for (const t of tables) known.add(t);
      if (c.problems.length === 0) continue;
      const broken = { chain: c.chain, problems: c.problems };
      if (wanted(topic) || [...tables].some(wanted)) refused.push(broken);
      else otherBroken.push(broken);
    }
    if (refused.length > 0) throw new BrokenChainError(refused);

    const seen = new Set<string>();
    const tables = new Map<string, AuditedChange[]>();
    checked.forEach((c, i) => {
      for (const event of c.events) {
        const table = tableOf(event);
        if (!wanted(table) || seen.has(event.id)) continue;
        seen.add(event.id);
        const order = event.source.order;
        const version = versionAt(chainVersions[i]?.get(table), order) ?? versionAt(allVersions.get(table), order);
        const list = tables.get(table) ?? [];
        list.push({ event, columns: version ? this.types(version) : undefined });
        tables.set(table, list);
      }
    });
    return { tables, known, otherBroken, chains: checked.length, objects: this.texts.size };
  }

  private types(version: SchemaEntry): ColumnTypes {
    let types = this.typesByFingerprint.get(version.fingerprint);
    if (!types) {
      types = columnTypesOf(version.columns);
      this.typesByFingerprint.set(version.fingerprint, types);
    }
    return types;
  }

  private async listKeys(): Promise<Array<{ key: string; etag: string }>> {
    const keys: Array<{ key: string; etag: string }> = [];
    let marker: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsCommand({ Bucket: this.where.bucket, Prefix: this.where.prefix, Marker: marker }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key?.endsWith('.ndjson.gz')) keys.push({ key: o.Key, etag: o.ETag ?? '' });
      }
      // ListObjects (v1) pages by the last key: s3rver cannot make v2 continuation tokens on Node 20 (DES).
      marker = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
    } while (marker);
    return keys;
  }
}
