import { describe, expect, it } from 'vitest';
import type { AvroField, AvroSchema } from '../../functions/core/decode/avro/avsc-types';
import { type CompatibilityLevel, checkCompatibility, readerViolations } from '../../tools/schemas/compatibility';

const ID: AvroField = { name: 'id', type: 'int' };
const NAME: AvroField = { name: 'name', type: 'string' };
const NOTE: AvroField = { name: 'note', type: ['null', 'string'], default: null };
const record = (...fields: AvroField[]): AvroSchema => ({
  type: 'record',
  name: 'T',
  namespace: 'pg.public.t',
  fields,
});
const V1 = record(ID, NAME, NOTE);

/** [change, new schema, violations under BACKWARD as `path:rule`, under FORWARD] — FULL is both, NONE none. */
const CHANGES: Array<[string, AvroSchema, string[], string[]]> = [
  [
    'add a field with a default',
    record(ID, NAME, NOTE, { name: 'extra', type: ['null', 'long'], default: null }),
    [],
    [],
  ],
  [
    'add a field without default',
    record(ID, NAME, NOTE, { name: 'extra', type: 'long' }),
    ['extra:READER_FIELD_MISSING_DEFAULT_VALUE'],
    [],
  ],
  ['drop a field with a default', record(ID, NAME), [], []],
  ['drop a field without default', record(ID, NOTE), [], ['name:READER_FIELD_MISSING_DEFAULT_VALUE']],
  [
    'rename a field',
    record(ID, { name: 'title', type: 'string' }, NOTE),
    ['title:READER_FIELD_MISSING_DEFAULT_VALUE'],
    ['name:READER_FIELD_MISSING_DEFAULT_VALUE'],
  ],
  [
    'rename a field with an alias',
    record(ID, { name: 'title', type: 'string', aliases: ['name'] }, NOTE),
    [],
    ['name:READER_FIELD_MISSING_DEFAULT_VALUE'],
  ],
  ['widen int to long', record({ name: 'id', type: 'long' }, NAME, NOTE), [], ['id:TYPE_MISMATCH']],
  [
    'retype string to int',
    record(ID, { name: 'name', type: 'int' }, NOTE),
    ['name:TYPE_MISMATCH'],
    ['name:TYPE_MISMATCH'],
  ],
  [
    'make a field optional',
    record(ID, { name: 'name', type: ['null', 'string'], default: null }, NOTE),
    [],
    ['name:TYPE_MISMATCH'],
  ],
  ['change a default', record(ID, NAME, { name: 'note', type: ['null', 'string'], default: null, doc: 'x' }), [], []],
  ['give a required field a default', record(ID, { name: 'name', type: 'string', default: '' }, NOTE), [], []],
];

const LEVELS: CompatibilityLevel[] = ['BACKWARD', 'FORWARD', 'FULL', 'NONE'];

function expectedFor(level: CompatibilityLevel, backward: string[], forward: string[]): string[] {
  if (level === 'NONE') return [];
  if (level === 'BACKWARD') return backward;
  if (level === 'FORWARD') return forward;
  return [...backward, ...forward];
}

describe('checkCompatibility: each mode × change', () => {
  const table = CHANGES.flatMap(([change, schema, backward, forward]) =>
    LEVELS.map((level) => [level, change, schema, expectedFor(level, backward, forward)] as const),
  );
  it.each(table)('%s: %s', (level, _change, schema, expected) => {
    // Act
    const violations = checkCompatibility(schema, [V1], level);
    // Assert
    expect(violations.map((v) => `${v.path}:${v.rule}`)).toEqual(expected);
  });
});

describe('transitive modes', () => {
  it('BACKWARD checks the latest version only, BACKWARD_TRANSITIVE every one', () => {
    // Arrange: v2 added x with a default; the candidate drops the default
    const v1 = record(ID);
    const v2 = record(ID, { name: 'x', type: 'string', default: 'a' });
    const candidate = record(ID, { name: 'x', type: 'string' });
    // Act
    const latest = checkCompatibility(candidate, [v1, v2], 'BACKWARD');
    const all = checkCompatibility(candidate, [v1, v2], 'BACKWARD_TRANSITIVE');
    // Assert
    expect(latest).toEqual([]);
    expect(all).toEqual([
      expect.objectContaining({ path: 'x', rule: 'READER_FIELD_MISSING_DEFAULT_VALUE', version: 1 }),
    ]);
  });

  it.each([
    ['FORWARD', 0],
    ['FORWARD_TRANSITIVE', 1],
    ['FULL', 0],
    ['FULL_TRANSITIVE', 1],
  ] as const)('%s: a field v1 required and v2 made optional is dropped → %i violation(s)', (level, count) => {
    // Arrange
    const v1 = record(ID, { name: 'y', type: 'int' });
    const v2 = record(ID, { name: 'y', type: ['null', 'int'], default: null });
    // Act
    const violations = checkCompatibility(record(ID), [v1, v2], level);
    // Assert
    expect(violations.filter((v) => v.direction === 'forward')).toHaveLength(count);
  });
});

describe('schema resolution details', () => {
  const enumOf = (...symbols: string[]): AvroSchema => ({ type: 'enum', name: 'Mood', symbols });

  it('needs every written enum symbol in the reader, unless the reader has a default', () => {
    // Act + Assert
    expect(readerViolations(enumOf('a'), enumOf('a', 'b')).map((v) => v.rule)).toEqual(['MISSING_ENUM_SYMBOLS']);
    expect(readerViolations({ type: 'enum', name: 'Mood', symbols: ['a'], default: 'a' }, enumOf('a', 'b'))).toEqual(
      [],
    );
  });

  it('reads nested records field by field, with the path', () => {
    // Arrange
    const envelope = (row: AvroSchema): AvroSchema => ({
      type: 'record',
      name: 'Envelope',
      fields: [{ name: 'after', type: ['null', row], default: null }],
    });
    // Act
    const violations = readerViolations(envelope(record(ID, { name: 'qty', type: 'int' })), envelope(record(ID)));
    // Assert
    expect(violations.map((v) => `${v.path}:${v.rule}`)).toEqual(['after.qty:READER_FIELD_MISSING_DEFAULT_VALUE']);
  });

  it('matches records by name or by a reader alias', () => {
    // Arrange
    const other: AvroSchema = { type: 'record', name: 'U', fields: [ID] };
    // Act + Assert
    expect(readerViolations(other, record(ID)).map((v) => v.rule)).toEqual(['NAME_MISMATCH']);
    expect(readerViolations({ type: 'record', name: 'U', aliases: ['T'], fields: [ID] }, record(ID))).toEqual([]);
  });

  it('promotes int→long→float→double and string↔bytes, not back', () => {
    // Act + Assert
    for (const [writer, reader] of [
      ['int', 'long'],
      ['int', 'double'],
      ['long', 'float'],
      ['float', 'double'],
      ['string', 'bytes'],
      ['bytes', 'string'],
    ])
      expect(readerViolations(reader as AvroSchema, writer as AvroSchema)).toEqual([]);
    expect(readerViolations('int', 'long').map((v) => v.rule)).toEqual(['TYPE_MISMATCH']);
  });

  it('needs a reader union branch for every writer branch', () => {
    // Act + Assert
    expect(readerViolations(['null', 'long'], 'int')).toEqual([]);
    expect(readerViolations(['null', 'int'], ['null', 'string']).map((v) => v.rule)).toEqual(['MISSING_UNION_BRANCH']);
  });
});
