import { describe, expect, it } from 'vitest';
import type { ColumnType } from '../../functions/core/types';
import { comparable, rowDifferences, stableJson, timestampMicros } from '../../tools/local/runner/normalize';

describe('comparable values (canonical change events vs DuckDB over the change log)', () => {
  it.each<[string, ColumnType | undefined, unknown, unknown]>([
    [
      'timestamptz, trimmed fraction vs DuckDB with +00',
      'timestamptz',
      '2024-03-15T10:30:00.5Z',
      '2024-03-15 10:30:00.5+00',
    ],
    ['timestamptz, DuckDB in another session zone', 'timestamptz', '2024-03-15T10:30:00Z', '2024-03-15 12:30:00+02:00'],
    ['timestamp(6), naive', 'timestamp', '2024-01-01T00:00:00.123456', '2024-01-01 00:00:00.123456'],
    ['timestamp before 1970', 'timestamp', '1900-01-01T00:00:00', '1900-01-01 00:00:00'],
    ['date', 'date', '2024-02-29', '2024-02-29'],
    ['int64 beyond 2^53: string vs string', 'int64', '9007199254740993', '9007199254740993'],
    ['int64 small: number vs DuckDB string', 'int64', 42, '42'],
    ['int32', 'int32', 7, 7],
    ['decimal stays exact text', 'decimal', '12.50', '12.50'],
    ['jsonb: parsed vs text, key order ignored', 'json', { b: [1, 2], a: 'x' }, '{"a":"x","b":[1,2]}'],
    ['text array (json in the change log)', 'json', ['sale', 'a'], '["sale","a"]'],
    ['double', 'double', 1.5, 1.5],
    ['boolean', 'boolean', true, true],
    ['uuid text', 'string', '6f1c0c1e-8d4a-4b7e-9a55-0a1b2c3d4e5f', '6f1c0c1e-8d4a-4b7e-9a55-0a1b2c3d4e5f'],
  ])('%s', (_name, type, canonical, duckdb) => {
    // Act
    const a = comparable(canonical, type, 'canonical');
    const b = comparable(duckdb, type, 'duckdb');

    // Assert
    expect(a).not.toBeNull();
    expect(a).toBe(b);
  });

  it.each<[string, ColumnType | undefined, unknown, unknown]>([
    ['timestamps a microsecond apart', 'timestamptz', '2024-03-15T10:30:00.000001Z', '2024-03-15 10:30:00+00'],
    ['decimals with a different scale are different values here', 'decimal', '12.5', '12.50'],
    ['dates', 'date', '2024-02-29', '2024-03-01'],
    ['json values', 'json', { a: 1 }, '{"a":2}'],
    ['null vs a value', 'string', null, ''],
  ])('tells apart %s', (_name, type, canonical, duckdb) => {
    // Act / Assert
    expect(comparable(canonical, type, 'canonical')).not.toBe(comparable(duckdb, type, 'duckdb'));
  });

  it('reads timestamps with any zone form as epoch microseconds', () => {
    // Act / Assert
    expect(timestampMicros('1970-01-01T00:00:01Z')).toBe('1000000');
    expect(timestampMicros('1970-01-01 01:00:01+01')).toBe('1000000');
    expect(timestampMicros('1969-12-31T23:59:59.999999Z')).toBe('-1');
    expect(timestampMicros('infinity')).toBeNull();
  });

  it('serialises JSON with sorted keys at every depth', () => {
    // Act / Assert
    expect(stableJson({ b: { d: 1, c: [{ f: 1, e: 2 }] }, a: null })).toBe(
      '{"a":null,"b":{"c":[{"e":2,"f":1}],"d":1}}',
    );
  });

  it('lists the columns that differ, with both comparable values', () => {
    // Arrange
    const types = new Map<string, ColumnType>([
      ['id', 'int64'],
      ['placed_at', 'timestamptz'],
      ['total', 'decimal'],
    ]);

    // Act
    const diffs = rowDifferences(
      { id: 1, placed_at: '2024-01-01T00:00:00Z', total: '10.00' },
      { id: '1', placed_at: '2024-01-01 00:00:00+00', total: '11.00' },
      types,
      'duckdb',
    );

    // Assert
    expect(diffs).toEqual([{ column: 'total', expected: '10.00', actual: '11.00' }]);
  });
});
