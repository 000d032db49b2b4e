/**
 * The mutations: each turns a valid Kafka record (a base at a fresh position, see corpus.ts) into a damaged one and
 * says what the lanes must do with it. `must`: the record cannot be a change event whatever else it holds, so it is
 * dead-lettered, with one of `codes` (docs/architecture.md, "Errors"). `may`: the damage can leave a valid event (a
 * bit flipped inside a string, a duplicate key with the same value, a big number in a text column), so any outcome is
 * right as long as the record is accounted for, and a dead letter, if any, keeps the original bytes.
 *
 * Sizes are bounded (at most ~1.6 MB per record, ~100,000 levels of nesting) so a batch stays a few MB.
 */
import { isLosslessNumber, parse, stringify } from 'lossless-json';
import type { KafkaRecord } from '../../functions/core/types';
import type { Prng } from '../lib/prng';
import { type Base, payloadOf } from './corpus';

export const MUTATION_KINDS = [
  'base64-bitflip',
  'json-bitflip',
  'truncation',
  'invalid-utf8',
  'wrong-type',
  'missing-source',
  'unknown-op',
  'huge-string',
  'huge-array',
  'deep-nesting',
  'big-number',
  'duplicate-key',
  'mismatched-key',
  'mismatched-schema',
  'not-a-record',
] as const;

export type MutationKind = (typeof MUTATION_KINDS)[number];

export interface Expectation {
  deadLetter: 'must' | 'may';
  /** With `must`: the reason codes the dead letter may carry. */
  codes?: readonly string[];
}

export interface Mutation {
  kind: MutationKind;
  /** A Kafka record, or (`not-a-record`) whatever stands in the event where one should be. */
  record: unknown;
  expect: Expectation;
  /** What was done, for a failure message. */
  note: string;
}

export interface MutationInput {
  /** The valid record (base64 key and value). */
  record: KafkaRecord;
  base: Base;
  /** Its value and key as JSON text. */
  valueText: string;
  keyText: string | null;
  /** Other bases: keys and schemas of other tables. */
  donors: readonly Base[];
  /** The lanes' MAX_RECORD_BYTES: a larger value must be dead-lettered as RECORD_TOO_LARGE. */
  maxRecordBytes: number;
}

const MUST_TRUNCATED = ['BAD_BASE64', 'INVALID_UTF8', 'NOT_JSON'] as const;
const MUST_TOO_LARGE = ['RECORD_TOO_LARGE'] as const;

/** The kinds that apply to a base: the envelope's fields exist only in envelopes. */
export function applicableKinds(base: Base): MutationKind[] {
  return MUTATION_KINDS.filter(
    (kind) => base.shape === 'envelope' || (kind !== 'wrong-type' && kind !== 'missing-source'),
  );
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

const b64 = (text: string | Buffer) => (typeof text === 'string' ? Buffer.from(text, 'utf8') : text).toString('base64');

/** A placeholder in a document, replaced by raw JSON text after stringifying (huge or deep values, bad bytes). */
const HOLE = '@@FUZZ_HOLE@@';
const QUOTED_HOLE = `"${HOLE}"`;

function fillHole(text: string, raw: string): string {
  const at = text.indexOf(QUOTED_HOLE);
  if (at < 0) throw new Error('fuzz: hole not found');
  return text.slice(0, at) + raw + text.slice(at + QUOTED_HOLE.length);
}

/** The objects holding a row's columns: the after (or before) image of an envelope, or the row without metadata. */
function rowOf(base: Base, payload: Json): Json | undefined {
  if (base.shape === 'row') return payload;
  if (isObject(payload.after)) return payload.after;
  if (isObject(payload.before)) return payload.before;
  return undefined;
}

/** Where a value goes: a column of the row (or a new one), or of the key. */
interface Slot {
  holder: Json;
  field: string;
  inKey: boolean;
}

function slot(rng: Prng, base: Base, doc: { payload: Json }, key: Json | undefined, keyShare: number): Slot {
  if (key && rng.chance(keyShare)) {
    const fields = Object.keys(key);
    if (fields.length > 0) return { holder: key, field: rng.pick(fields), inKey: true };
  }
  const row = rowOf(base, doc.payload) ?? doc.payload;
  const columns = Object.keys(row).filter((c) => !c.startsWith('__'));
  const field = columns.length === 0 || rng.chance(0.2) ? 'fuzz_column' : rng.pick(columns);
  return { holder: row, field, inKey: false };
}

/** The documents of a record, parsed losslessly (every digit kept) so that re-stringifying changes nothing else. */
class Documents {
  readonly value: unknown;
  readonly payload: Json;
  readonly key: unknown;
  readonly keyPayload: Json | undefined;

  constructor(input: MutationInput) {
    this.value = parse(input.valueText);
    const found = payloadOf(this.value);
    if (!found) throw new Error(`fuzz: ${input.base.name} has no payload`);
    this.payload = found.payload;
    this.key = input.keyText === null ? undefined : parse(input.keyText);
    this.keyPayload = this.key === undefined ? undefined : payloadOf(this.key)?.payload;
  }

  valueText(): string {
    return stringify(this.value) as string;
  }

  keyText(): string | null {
    return this.key === undefined ? null : (stringify(this.key) as string);
  }
}

/** Every string value in a document, as [holder, field] pairs. */
function stringLeaves(value: unknown, out: Array<[Json | unknown[], string | number]> = []) {
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      if (typeof item === 'string') out.push([value, i]);
      else stringLeaves(item, out);
    });
  } else if (isObject(value)) {
    for (const [field, item] of Object.entries(value)) {
      if (typeof item === 'string') out.push([value, field]);
      else stringLeaves(item, out);
    }
  }
  return out;
}

/** Byte sequences no UTF-8 decoder may accept. */
const INVALID_UTF8: ReadonlyArray<readonly number[]> = [
  [0xff],
  [0xfe],
  [0x80],
  [0xc3, 0x28],
  [0xc0, 0xaf], // overlong "/"
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xe2, 0x82], // cut short
];

/** Numbers a double cannot hold exactly (past 2^53) or at all (past its range). */
const BIG_NUMBERS = [
  '9007199254740993',
  '-9007199254740993',
  '18446744073709551616',
  '-9223372036854775809',
  '123456789012345678901234567890',
  '12345678901234567.89',
  '0.1000000000000000055511151231257827',
  '1.7976931348623159e308',
  '2e308',
  '1e309',
  '-1e400',
  '1E+400',
  '4.9e-325',
];

/** A field of the envelope, values of the wrong type for it, and the codes the decoder must give for them. */
interface WrongType {
  path: string;
  holder: Json;
  field: string;
  values: unknown[];
  codes: string[];
}

function wrongTypeTargets(base: Base, payload: Json): WrongType[] {
  const source = payload.source as Json;
  const invalid = ['INVALID_ENVELOPE'];
  const targets: WrongType[] = [
    { path: 'op', holder: payload, field: 'op', values: [1, true, null, {}, ['c']], codes: ['UNKNOWN_OP'] },
    { path: 'source', holder: payload, field: 'source', values: ['postgresql', 42, true, []], codes: invalid },
    { path: 'ts_ms', holder: payload, field: 'ts_ms', values: ['yesterday', true, {}, [], '1.5'], codes: invalid },
    { path: 'after', holder: payload, field: 'after', values: [42, 'row', [], true], codes: invalid },
    { path: 'before', holder: payload, field: 'before', values: [42, 'row', [1], false], codes: invalid },
    { path: 'source.connector', holder: source, field: 'connector', values: [7, '', null, []], codes: invalid },
    { path: 'source.name', holder: source, field: 'name', values: [7, null, {}, false], codes: invalid },
    { path: 'source.ts_ms', holder: source, field: 'ts_ms', values: ['noon', {}, true, '12:00'], codes: invalid },
    { path: 'source.txId', holder: source, field: 'txId', values: [{}, [1], true], codes: invalid },
  ];
  const position = { pg: 'lsn', my: 'pos', ms: 'commit_lsn' }[base.family as 'pg' | 'my' | 'ms'];
  if (position) {
    targets.push({
      path: `source.${position}`,
      holder: source,
      field: position,
      values: [{}, [1], true, null],
      codes: invalid,
    });
  }
  if (base.family === 'my') {
    targets.push({ path: 'source.file', holder: source, field: 'file', values: [null, {}], codes: invalid });
  }
  return targets;
}

/** Applies one mutation of `kind` to the input's record. */
export function mutate(kind: MutationKind, input: MutationInput, rng: Prng): Mutation {
  const { record } = input;
  const may = { deadLetter: 'may' } as const;
  const withValue = (value: string, expect: Expectation, note: string): Mutation => ({
    kind,
    record: { ...record, value },
    expect,
    note,
  });
  const withKeyText = (keyText: string | null, expect: Expectation, note: string): Mutation => ({
    kind,
    record: { ...record, key: keyText === null ? null : b64(keyText) },
    expect,
    note,
  });
  /** A value grown by a huge or deep insert: too large for the lanes, or anything. */
  const sized = (valueText: string, note: string): Mutation => {
    const bytes = Buffer.byteLength(valueText);
    return withValue(
      b64(valueText),
      bytes > input.maxRecordBytes ? { deadLetter: 'must', codes: MUST_TOO_LARGE } : may,
      `${note} (${bytes} bytes)`,
    );
  };

  switch (kind) {
    case 'base64-bitflip': {
      const chars = [...(record.value as string)];
      const flips: string[] = [];
      for (let n = rng.int(1, 3); n > 0; n--) {
        const at = rng.int(0, chars.length - 1);
        const bit = rng.int(0, 7);
        chars[at] = String.fromCharCode((chars[at] as string).charCodeAt(0) ^ (1 << bit));
        flips.push(`char ${at} bit ${bit}`);
      }
      return withValue(chars.join(''), may, `base64 value: flipped ${flips.join(', ')}`);
    }
    case 'json-bitflip': {
      const inKey = input.keyText !== null && rng.chance(0.15);
      const bytes = Buffer.from(inKey ? (input.keyText as string) : input.valueText, 'utf8');
      const flips: string[] = [];
      for (let n = rng.int(1, 3); n > 0; n--) {
        const at = rng.int(0, bytes.length - 1);
        const bit = rng.int(0, 7);
        bytes[at] = (bytes[at] as number) ^ (1 << bit);
        flips.push(`byte ${at} bit ${bit}`);
      }
      const note = `${inKey ? 'key' : 'value'} JSON: flipped ${flips.join(', ')}`;
      return inKey
        ? { kind, record: { ...record, key: b64(bytes) }, expect: may, note }
        : withValue(b64(bytes), may, note);
    }
    case 'truncation': {
      const expect = { deadLetter: 'must', codes: MUST_TRUNCATED } as const;
      if (rng.chance(0.5)) {
        const value = record.value as string;
        const length = rng.int(1, value.length - 1);
        return withValue(value.slice(0, length), expect, `base64 value cut to ${length} of ${value.length} characters`);
      }
      const bytes = Buffer.from(input.valueText, 'utf8');
      const length = rng.int(1, bytes.length - 1);
      return withValue(b64(bytes.subarray(0, length)), expect, `value cut to ${length} of ${bytes.length} bytes`);
    }
    case 'invalid-utf8': {
      const docs = new Documents(input);
      const keyLeaves = docs.key === undefined ? [] : stringLeaves(docs.key);
      const inKey = keyLeaves.length > 0 && rng.chance(0.2);
      const leaves = inKey ? keyLeaves : stringLeaves(docs.value);
      const bad = rng.pick(INVALID_UTF8);
      const hex = bad.map((b) => b.toString(16)).join(' ');
      if (leaves.length === 0) {
        // A value without strings: a new column holds the bad bytes.
        leaves.push([docs.payload, 'fuzz_column']);
        docs.payload.fuzz_column = '';
      }
      const [holder, field] = rng.pick(leaves);
      const original = (holder as Record<string | number, unknown>)[field] as string;
      (holder as Record<string | number, unknown>)[field] = HOLE;
      const text = inKey ? (docs.keyText() as string) : docs.valueText();
      // The bad bytes go at the start or the end of the string, never inside an escape sequence.
      const quoted = JSON.stringify(original);
      const atStart = rng.chance(0.5);
      const at = text.indexOf(QUOTED_HOLE);
      const before = atStart ? '"' : quoted.slice(0, -1);
      const after = atStart ? quoted.slice(1) : '"';
      const bytes = Buffer.concat([
        Buffer.from(text.slice(0, at) + before, 'utf8'),
        Buffer.from(bad),
        Buffer.from(after + text.slice(at + QUOTED_HOLE.length), 'utf8'),
      ]);
      const note = `${inKey ? 'key' : 'value'} string ${String(field)}: bytes ${hex}`;
      const expect = { deadLetter: 'must', codes: ['INVALID_UTF8'] } as const;
      return inKey
        ? { kind, record: { ...record, key: b64(bytes) }, expect, note }
        : withValue(b64(bytes), expect, note);
    }
    case 'wrong-type': {
      const docs = new Documents(input);
      const target = rng.pick(wrongTypeTargets(input.base, docs.payload));
      const value = rng.pick(target.values);
      target.holder[target.field] = value;
      return withValue(
        b64(docs.valueText()),
        { deadLetter: 'must', codes: target.codes },
        `${target.path} = ${JSON.stringify(value)}`,
      );
    }
    case 'missing-source': {
      const docs = new Documents(input);
      const remove = rng.chance(0.7);
      if (remove) delete docs.payload.source;
      else docs.payload.source = null;
      return withValue(
        b64(docs.valueText()),
        { deadLetter: 'must', codes: ['MISSING_SOURCE'] },
        remove ? 'source removed' : 'source = null',
      );
    }
    case 'unknown-op': {
      const docs = new Documents(input);
      const op = rng.pick(['x', 'C', '', 'insert', 'cc', 'u ', 'd\u0000', 'ü']);
      const field = input.base.shape === 'envelope' ? 'op' : '__op';
      docs.payload[field] = op;
      return withValue(
        b64(docs.valueText()),
        { deadLetter: 'must', codes: ['UNKNOWN_OP'] },
        `${field} = ${JSON.stringify(op)}`,
      );
    }
    case 'huge-string': {
      const docs = new Documents(input);
      const target = slot(rng, input.base, docs, docs.keyPayload, 0.1);
      const alphabet = 'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,;:!?é中';
      let chunk = '';
      for (let i = 0; i < 97; i++) chunk += alphabet[rng.int(0, alphabet.length - 1)];
      let chars = rng.logInt(16 * 1024, 1_600_000);
      const huge = () => `"${chunk.repeat(Math.ceil(chars / chunk.length)).slice(0, chars)}"`;
      target.holder[target.field] = HOLE;
      if (target.inKey) {
        const note = `key ${target.field}: a ${chars}-character string`;
        return withKeyText(fillHole(docs.keyText() as string, huge()), may, note);
      }
      const other = docs.valueText();
      let text = fillHole(other, huge());
      // Sizes within a few bytes of the limit are left out: the limit is checked on the base64 length (record.ts).
      if (Math.abs(Buffer.byteLength(text) - input.maxRecordBytes) < 64) {
        chars -= 256;
        text = fillHole(other, huge());
      }
      return sized(text, `${target.field}: a ${chars}-character string`);
    }
    case 'huge-array': {
      const docs = new Documents(input);
      const target = slot(rng, input.base, docs, docs.keyPayload, 0.1);
      const element = rng.pick(['0', '1.5', '"x"', 'null', '{}', '[]', 'true', '{"a":[1,2]}']);
      // At most ~1.6 MB of elements, like the huge strings.
      let length = Math.min(rng.logInt(1_000, 300_000), Math.floor(1_600_000 / (element.length + 1)));
      target.holder[target.field] = HOLE;
      const build = () => `[${new Array(length).fill(element).join(',')}]`;
      if (target.inKey) {
        return withKeyText(
          fillHole(docs.keyText() as string, build()),
          may,
          `key ${target.field}: an array of ${length} × ${element}`,
        );
      }
      const other = docs.valueText();
      let text = fillHole(other, build());
      if (Math.abs(Buffer.byteLength(text) - input.maxRecordBytes) < 64) {
        length -= 200;
        text = fillHole(other, build());
      }
      return sized(text, `${target.field}: an array of ${length} × ${element}`);
    }
    case 'deep-nesting': {
      const docs = new Documents(input);
      const target = slot(rng, input.base, docs, docs.keyPayload, 0.1);
      const depth = rng.logInt(50, 100_000);
      const form = rng.pick(['array', 'object', 'mixed', 'string'] as const);
      let nested: string;
      if (form === 'array') nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      else if (form === 'object') nested = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      else if (form === 'mixed') nested = `${'[{"a":'.repeat(depth)}null${'}]'.repeat(depth)}`;
      // As text in a string column: a JSON column (io.debezium.data.Json) parses it.
      else nested = JSON.stringify(`${'['.repeat(depth)}${']'.repeat(depth)}`);
      target.holder[target.field] = HOLE;
      const note = `${target.inKey ? 'key ' : ''}${target.field}: ${form} nested ${depth} deep`;
      if (target.inKey) return withKeyText(fillHole(docs.keyText() as string, nested), may, note);
      return sized(fillHole(docs.valueText(), nested), note);
    }
    case 'big-number': {
      const docs = new Documents(input);
      const number = rng.pick(BIG_NUMBERS);
      const where = rng.next();
      let note: string;
      if (where < 0.65) {
        const target = slot(rng, input.base, docs, docs.keyPayload, 0.15);
        target.holder[target.field] = HOLE;
        note = `${target.inKey ? 'key ' : ''}${target.field} = ${number}`;
        if (target.inKey) return withKeyText(fillHole(docs.keyText() as string, number), may, note);
      } else if (input.base.shape === 'envelope') {
        const source = docs.payload.source as Json;
        const field = rng.pick(['ts_ms', 'source.ts_ms', 'source.ts_ns', 'source.position']);
        const position = input.base.family === 'pg' ? 'lsn' : input.base.family === 'my' ? 'pos' : 'event_serial_no';
        if (field === 'ts_ms') docs.payload.ts_ms = HOLE;
        else if (field === 'source.position') source[position] = HOLE;
        else source[field.slice('source.'.length)] = HOLE;
        note = `${field === 'source.position' ? `source.${position}` : field} = ${number}`;
      } else {
        const field = rng.pick(['__lsn', '__source_ts_ms', '__ts_ms']);
        docs.payload[field] = HOLE;
        note = `${field} = ${number}`;
      }
      return withValue(b64(fillHole(docs.valueText(), number)), may, note);
    }
    case 'duplicate-key': {
      const docs = new Documents(input);
      const candidates: Json[] = [docs.payload];
      const row = rowOf(input.base, docs.payload);
      if (row && row !== docs.payload) candidates.push(row);
      if (isObject(docs.payload.source)) candidates.push(docs.payload.source);
      const holder = rng.pick(candidates);
      const fields = Object.keys(holder);
      const field = fields.length > 0 ? rng.pick(fields) : 'op';
      const same = rng.chance(0.5);
      const duplicate = same
        ? (stringify(holder[field] ?? null) as string)
        : rng.pick(['"x"', '0', 'null', '{}', '[]', 'true', '-1', '"c"', '"d"']);
      holder['@@FUZZ_DUP@@'] = HOLE;
      const text = docs.valueText().replace(`"@@FUZZ_DUP@@":${QUOTED_HOLE}`, `${JSON.stringify(field)}:${duplicate}`);
      return withValue(b64(text), may, `"${field}" twice, the second ${same ? 'equal' : `= ${duplicate}`}`);
    }
    case 'mismatched-key': {
      const others = input.donors.filter((d) => d.topic !== input.base.topic && d.keyText !== null);
      const donor = others.length > 0 ? rng.pick(others) : rng.pick(input.donors.filter((d) => d.keyText !== null));
      return withKeyText(donor.keyText, may, `the key of ${donor.name}`);
    }
    case 'mismatched-schema': {
      const docs = new Documents(input);
      const schemaDonors = input.donors.filter((d) => d.schemas && d.topic !== input.base.topic);
      const donorSchema = () => {
        const donor = rng.pick(schemaDonors.length > 0 ? schemaDonors : input.donors.filter((d) => d.schemas));
        return { name: donor.name, schema: (parse(donor.template) as Json).schema };
      };
      if (!input.base.schemas) {
        const { name, schema } = donorSchema();
        const text = stringify({ schema, payload: docs.value }) as string;
        return withValue(b64(text), may, `the schema of ${name} around a schemaless payload`);
      }
      const doc = docs.value as Json;
      if (rng.chance(0.4)) {
        const { name, schema } = donorSchema();
        doc.schema = schema;
        return withValue(b64(docs.valueText()), may, `the schema of ${name}`);
      }
      const note = retype(rng, input.base, doc.schema as Json);
      return withValue(b64(docs.valueText()), may, note);
    }
    case 'not-a-record': {
      const variants: Array<[string, () => unknown]> = [
        ['partition as text', () => ({ ...record, partition: String(record.partition) })],
        ['negative offset', () => ({ ...record, offset: -1 })],
        ['fractional offset', () => ({ ...record, offset: record.offset + 0.5 })],
        ['empty topic', () => ({ ...record, topic: '' })],
        ['no topic', () => omit(record, 'topic')],
        ['no offset', () => omit(record, 'offset')],
        ['timestamp as text', () => ({ ...record, timestamp: 'now' })],
        ['value a number', () => ({ ...record, value: 42 })],
        ['key an object', () => ({ ...record, key: { id: 1 } })],
        ['headers not a list', () => ({ ...record, headers: 'none' })],
        ['null', () => null],
        ['a number', () => 42],
        ['a string', () => 'record'],
        ['a list', () => [record]],
      ];
      const [note, make] = rng.pick(variants);
      return { kind, record: make(), expect: { deadLetter: 'must', codes: ['INVALID_RECORD'] }, note };
    }
  }
}

function omit(record: KafkaRecord, field: keyof KafkaRecord): Json {
  const copy: Json = { ...record };
  delete copy[field];
  return copy;
}

const LOGICAL_TYPES: ReadonlyArray<{ type: string; name?: string; parameters?: Record<string, string> }> = [
  { type: 'int32' },
  { type: 'int64' },
  { type: 'string' },
  { type: 'boolean' },
  { type: 'bytes' },
  { type: 'double' },
  { type: 'float' },
  { type: 'array' },
  { type: 'map' },
  { type: 'struct' },
  { type: 'bytes', name: 'org.apache.kafka.connect.data.Decimal', parameters: { scale: '2' } },
  { type: 'struct', name: 'io.debezium.data.VariableScaleDecimal' },
  { type: 'int32', name: 'io.debezium.time.Date' },
  { type: 'int64', name: 'io.debezium.time.MicroTimestamp' },
  { type: 'int64', name: 'io.debezium.time.NanoTime' },
  { type: 'string', name: 'io.debezium.time.ZonedTimestamp' },
  { type: 'string', name: 'io.debezium.data.Json' },
];

/** Gives one column of the row schema another type (both images of an envelope). Returns what it did. */
function retype(rng: Prng, base: Base, schema: Json): string {
  const structs: Json[] = [];
  if (base.shape === 'row') structs.push(schema);
  else {
    for (const field of (schema.fields as Json[] | undefined) ?? []) {
      if ((field.field === 'before' || field.field === 'after') && Array.isArray(field.fields)) structs.push(field);
    }
  }
  const columns = structs.flatMap((s) => (s.fields as Json[]).map((f) => String(f.field)));
  if (columns.length === 0) return 'no column to retype';
  const column = rng.pick(columns);
  const current = structs.flatMap((s) => s.fields as Json[]).find((f) => f.field === column);
  const type = rng.pick(LOGICAL_TYPES.filter((t) => t.type !== current?.type || t.name !== current?.name));
  for (const struct of structs) {
    for (const field of struct.fields as Json[]) {
      if (field.field !== column) continue;
      field.type = type.type;
      if (type.name) field.name = type.name;
      else delete field.name;
      if (type.parameters) field.parameters = type.parameters;
      else delete field.parameters;
      if (type.type === 'array') field.items = { type: rng.pick(['int64', 'string', 'double']), optional: true };
    }
  }
  return `column ${column} declared ${type.name ?? type.type}`;
}
