import * as z from 'zod/mini';
import '../zod';
import { DecodeError } from '../errors';
import type { Op, Row } from '../types';
import type { SourceBlock } from './source';

/**
 * zod schemas of the Debezium value envelope (docs/formats.md §2.3–2.4). Rows are checked for shape only (object or
 * null): their columns depend on the table and are converted by the compiled Connect schema, not validated here.
 */
const int64 = z.custom<number | string>((v) => typeof v === 'number' || (typeof v === 'string' && /^-?\d+$/.test(v)), {
  message: 'must be an integer',
});
const row = z.custom<Row | null>((v) => v === null || (typeof v === 'object' && !Array.isArray(v)), {
  message: 'must be an object or null',
});

/**
 * Only what every source block has is checked here; the connector-specific position fields are checked where they
 * are read (source.ts), with the connector's name in the message. Fewer fields, less work per record: zod builds a
 * new output object for each object schema it parses.
 */
export const SourceBlockSchema = z.object({
  connector: z.string().check(z.minLength(1)),
  name: z.string(),
  ts_ms: z.nullish(int64),
});

export const OPS = ['c', 'u', 'd', 'r', 't', 'm'] as const;

export const EnvelopeSchema = z.object({
  op: z.enum(OPS),
  source: SourceBlockSchema,
  before: z.optional(row),
  after: z.optional(row),
  ts_ms: z.nullish(int64),
});

export interface Envelope {
  op: Op | 'm';
  source: SourceBlock;
  before: Row | null;
  after: Row | null;
  tsMs: number | null;
}

const isInt64 = (v: unknown) => typeof v === 'number' || (typeof v === 'string' && /^-?\d+$/.test(v));
const isRowOrNull = (v: unknown) => v === null || (typeof v === 'object' && !Array.isArray(v));
const isNullishInt64 = (v: unknown) => v === null || v === undefined || isInt64(v);

/**
 * The fast path of EnvelopeSchema: exactly its rules (test/unit/envelope.test.ts checks they agree), without
 * building output objects. When it says no, zod runs and reports why.
 */
export function passesEnvelopeSchema(payload: Record<string, unknown>): boolean {
  const source = payload.source as Record<string, unknown> | null | undefined;
  return (
    typeof payload.op === 'string' &&
    (OPS as readonly string[]).includes(payload.op) &&
    source !== null &&
    typeof source === 'object' &&
    !Array.isArray(source) &&
    typeof source.connector === 'string' &&
    source.connector.length > 0 &&
    typeof source.name === 'string' &&
    isNullishInt64(source.ts_ms) &&
    (payload.before === undefined || isRowOrNull(payload.before)) &&
    (payload.after === undefined || isRowOrNull(payload.after)) &&
    isNullishInt64(payload.ts_ms)
  );
}

/** The first few zod issues as one line, each prefixed with its path (or `what` for the whole value). */
export function describeIssues(
  error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> },
  what = 'envelope',
): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.join('.') || what}: ${issue.message}`)
    .join('; ');
}

/** Validates a payload that has an `op` field. Errors name the field: UNKNOWN_OP, MISSING_SOURCE, INVALID_ENVELOPE. */
export function readEnvelope(payload: Record<string, unknown>): Envelope {
  const op = payload.op;
  if (typeof op !== 'string' || !(OPS as readonly string[]).includes(op)) {
    throw new DecodeError('UNKNOWN_OP', `unknown op ${JSON.stringify(op)} (expected one of ${OPS.join(', ')})`);
  }
  if (payload.source === null || payload.source === undefined) {
    throw new DecodeError('MISSING_SOURCE', `op "${op}" event has no source block`);
  }
  // zod decides (and words the error) only when the cheap test fails: zod builds output objects for every record.
  if (!passesEnvelopeSchema(payload)) {
    const parsed = EnvelopeSchema.safeParse(payload);
    if (!parsed.success) throw new DecodeError('INVALID_ENVELOPE', describeIssues(parsed.error));
  }
  const tsMs = payload.ts_ms;
  const envelope: Envelope = {
    op: op as Envelope['op'],
    // zod's output keeps only the checked fields; the position fields are read from the payload's own block.
    source: payload.source as SourceBlock,
    // zod's output copies the shape; rows are taken from the payload itself to keep their column order untouched.
    before: (payload.before as Row | null | undefined) ?? null,
    after: (payload.after as Row | null | undefined) ?? null,
    tsMs: tsMs === null || tsMs === undefined ? null : Number(tsMs),
  };
  if ((op === 'c' || op === 'r' || op === 'u') && envelope.after === null) {
    throw new DecodeError('INVALID_ENVELOPE', `op "${op}" event has no after image`);
  }
  return envelope;
}
