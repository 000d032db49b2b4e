import { describe, expect, it } from 'vitest';
import { Catalog, type PgType } from '../../tools/local/capture/catalog';
import { codecFor, defaultJson } from '../../tools/local/capture/codecs';
import { bigIntToBase64, javaFloatText, jsonString, twosComplementBytes } from '../../tools/local/capture/json';
import { formatLsn, parseLsn } from '../../tools/local/capture/lsn';
import {
  intervalMicrosText,
  microsText,
  parseArray,
  parseDate,
  parseTimestamp,
  zonedTimestampText,
  zonedTimeText,
} from '../../tools/local/capture/pgtext';

/** A catalog preloaded with a few pg_catalog types, so codecs can be built without a server. */
function fakeCatalog(): Catalog {
  const catalog = new Catalog({ query: async () => ({ rows: [] }) });
  const types: PgType[] = [
    {
      oid: 1700,
      schema: 'pg_catalog',
      name: 'numeric',
      typtype: 'b',
      category: 'N',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 1184,
      schema: 'pg_catalog',
      name: 'timestamptz',
      typtype: 'b',
      category: 'D',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 20,
      schema: 'pg_catalog',
      name: 'int8',
      typtype: 'b',
      category: 'N',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 25,
      schema: 'pg_catalog',
      name: 'text',
      typtype: 'b',
      category: 'S',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 3802,
      schema: 'pg_catalog',
      name: 'jsonb',
      typtype: 'b',
      category: 'U',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 2950,
      schema: 'pg_catalog',
      name: 'uuid',
      typtype: 'b',
      category: 'U',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 1082,
      schema: 'pg_catalog',
      name: 'date',
      typtype: 'b',
      category: 'D',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
    },
    {
      oid: 90001,
      schema: 'public',
      name: 'order_status',
      typtype: 'e',
      category: 'E',
      elemOid: 0,
      baseOid: 0,
      baseTypmod: -1,
      delimiter: ',',
      enumLabels: ['pending', 'paid'],
    },
  ];
  const internal = catalog as unknown as { types: Map<number, PgType> };
  for (const t of types) internal.types.set(t.oid, t);
  return catalog;
}

/** numeric(p,s) typmod as PostgreSQL stores it. */
const numericTypmod = (p: number, s: number) => ((p << 16) | s) + 4;

describe('Decimal (decimal.handling.mode=precise)', () => {
  // Expected values from docs/formats.md §2.9 (99.99 "Jw8=" is also what real Debezium events show).
  it.each([
    ['99.99', 'Jw8='],
    ['123.45', 'MDk='],
    ['1.28', 'AIA='],
    ['19.95', 'B8s='],
    ['0.00', 'AA=='],
    ['-1.00', 'nA=='],
    ['-0.01', '/w=='],
  ])('numeric(10,2) %s is base64 %s', (text, expected) => {
    // Arrange
    const codec = codecFor(fakeCatalog(), 1700, numericTypmod(10, 2));

    // Act
    const json = codec.encode(text);

    // Assert
    expect(json).toBe(`"${expected}"`);
  });

  it('declares scale and precision as Debezium does', () => {
    // Arrange
    const codec = codecFor(fakeCatalog(), 1700, numericTypmod(10, 2));

    // Act / Assert
    expect(codec.typeJson + codec.logicalJson).toBe(
      '"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"}',
    );
  });

  it.each([
    [0n, '00'],
    [127n, '7f'],
    [128n, '0080'],
    [255n, '00ff'],
    [-1n, 'ff'],
    [-128n, '80'],
    [-129n, 'ff7f'],
    [2n ** 63n, '008000000000000000'],
  ])('BigInteger.toByteArray(%s) is %s', (value, hex) => {
    // Act / Assert
    expect(twosComplementBytes(value).toString('hex')).toBe(hex);
  });

  it('writes NaN as null (precise mode cannot represent it)', () => {
    // Arrange
    const codec = codecFor(fakeCatalog(), 1700, numericTypmod(10, 2));

    // Act / Assert
    expect(codec.encode('NaN')).toBe('null');
  });

  it('numeric without scale is a VariableScaleDecimal struct keeping the value scale', () => {
    // Arrange
    const codec = codecFor(fakeCatalog(), 1700, -1);

    // Act / Assert
    expect(codec.encode('123.45')).toBe(`{"scale":2,"value":"${bigIntToBase64(12345n)}"}`);
    expect(codec.encode('1.250')).toBe(`{"scale":3,"value":"${bigIntToBase64(1250n)}"}`);
    expect(codec.encode('-7')).toBe(`{"scale":0,"value":"+Q=="}`);
  });
});

describe('Java number formatting (Jackson writes Float/Double.toString)', () => {
  it.each([
    ['1', '1.0'],
    ['1.5', '1.5'],
    ['-0', '-0.0'],
    ['0.001', '0.001'],
    ['0.0001', '1.0E-4'],
    ['1234567', '1234567.0'],
    ['12345678', '1.2345678E7'],
    ['1e+20', '1.0E20'],
    ['1.5e-05', '1.5E-5'],
    ['123456789.125', '1.23456789125E8'],
    ['3.4028235e+38', '3.4028235E38'],
    ['NaN', '"NaN"'],
    ['Infinity', '"Infinity"'],
    ['-Infinity', '"-Infinity"'],
  ])('%s -> %s', (pg, java) => {
    // Act / Assert
    expect(javaFloatText(pg)).toBe(java);
  });
});

describe('JSON strings as Jackson writes them', () => {
  it.each([
    ['plain', '"plain"'],
    ['quote " and \\', '"quote \\" and \\\\"'],
    ['tab\tnew\nline', '"tab\\tnew\\nline"'],
    ['unit\u001fsep', '"unit\\u001Fsep"'],
    ['bs \\u001f not a control', '"bs \\\\u001f not a control"'],
    ['héllo ✓', '"héllo ✓"'],
  ])('%j', (value, expected) => {
    // Act / Assert
    expect(jsonString(value)).toBe(expected);
  });
});

describe('temporal values', () => {
  it('dates are days since the epoch', () => {
    // Act / Assert (docs/formats.md: 2024-03-15 -> 19797)
    expect(parseDate('2024-03-15')).toBe(19797);
    expect(parseDate('1970-01-01')).toBe(0);
    expect(parseDate('1969-12-31')).toBe(-1);
    expect(parseDate('0001-01-01 BC')).toBe(-719528);
  });

  it('timestamps are exact epoch microseconds', () => {
    // Act
    const t = parseTimestamp('2024-03-15 10:30:00.123456');

    // Assert (docs/formats.md: 2024-03-15T10:30:00.123456 -> 1710498600123456)
    expect(t && microsText(t)).toBe('1710498600123456');
  });

  it.each([
    ['2024-03-15 10:30:00.123456+00', 6, '2024-03-15T10:30:00.123456Z'],
    ['2024-03-15 10:30:00.5+00', 6, '2024-03-15T10:30:00.500000Z'],
    ['2024-03-15 10:30:00+00', 6, '2024-03-15T10:30:00.000000Z'],
    ['2024-03-15 12:30:00.5+02', 3, '2024-03-15T10:30:00.500Z'],
    ['2024-03-15 05:00:00-05:30', 6, '2024-03-15T10:30:00.000000Z'],
    ['2024-03-15 10:30:00+00', 0, '2024-03-15T10:30:00Z'],
  ])('ZonedTimestamp %s (precision %i) -> %s', (text, precision, expected) => {
    // Arrange
    const t = parseTimestamp(text);

    // Act / Assert (DBZ-5996: fraction padded to the column precision)
    expect(t && zonedTimestampText(t, precision)).toBe(expected);
  });

  it.each([
    ['10:30:00.123+02', '08:30:00.123Z'],
    ['01:00:00+02', '23:00:00Z'],
    ['23:30:00-01', '00:30:00Z'],
  ])('ZonedTime %s -> %s (UTC)', (text, expected) => {
    // Act / Assert
    expect(zonedTimeText(text)).toBe(expected);
  });

  it.each([
    // ((14 months * 30.4375 + 3) days * 24 + 4) h, 5 min, 6.5 s
    ['1 year 2 mons 3 days 04:05:06.5', '37091106500000'],
    ['-1 days +02:03:00', '-79020000000'],
    ['00:00:00.000001', '1'],
    ['-00:00:01.5', '-1500000'],
    ['1 mon', '2629800000000'],
  ])('MicroDuration %s -> %s', (text, expected) => {
    // Act / Assert
    expect(intervalMicrosText(text)).toBe(expected);
  });
});

describe('arrays', () => {
  it.each([
    ['{1,2,NULL}', ['1', '2', null]],
    ['{"a b","c\\"d",e}', ['a b', 'c"d', 'e']],
    [
      '{{1,2},{3,4}}',
      [
        ['1', '2'],
        ['3', '4'],
      ],
    ],
    ['{}', []],
    ['[0:1]={7,8}', ['7', '8']],
  ])('%s', (text, expected) => {
    // Act / Assert
    expect(parseArray(text)).toEqual(expected);
  });
});

describe('schema defaults (PostgresDefaultValueConverter)', () => {
  const catalog = fakeCatalog();
  it.each([
    ['bigserial', 20, -1, "nextval('t_id_seq'::regclass)", '0'],
    ['int8', 20, -1, '42', '42'],
    ['int8', 20, -1, 'NULL::bigint', undefined],
    ['timestamptz', 1184, -1, 'now()', '"1970-01-01T00:00:00.000000Z"'],
    ['timestamptz', 1184, -1, 'CURRENT_TIMESTAMP', '"1970-01-01T00:00:00.000000Z"'],
    ['text', 25, -1, "'pending'::text", '"pending"'],
    ['jsonb', 3802, -1, "'{}'::jsonb", '"{}"'],
    ['uuid', 2950, -1, 'gen_random_uuid()', '"00000000-0000-0000-0000-000000000000"'],
    ['date', 1082, -1, 'CURRENT_DATE', '0'],
    ['numeric', 1700, numericTypmod(12, 2), '0', '"AA=="'],
    ['numeric', 1700, numericTypmod(12, 2), '12.5', `"${bigIntToBase64(1250n)}"`],
    ['numeric', 1700, -1, '1.5', undefined],
  ])('%s default %s', (typeName, oid, typmod, expr, expected) => {
    // Arrange
    const codec = codecFor(catalog, oid, typmod);

    // Act / Assert
    expect(defaultJson(codec, typeName, false, expr)).toBe(expected);
  });

  it('enum defaults strip the cast', () => {
    // Arrange
    const codec = codecFor(catalog, 90001, -1);

    // Act / Assert
    expect(defaultJson(codec, 'order_status', true, "'pending'::order_status")).toBe('"pending"');
    expect(codec.logicalJson).toBe(
      ',"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"pending,paid"}',
    );
  });
});

describe('LSNs', () => {
  it('round-trips PostgreSQL text form through bigint', () => {
    // Act / Assert
    expect(parseLsn('0/17764B8')).toBe(24601784n);
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
  });
});
