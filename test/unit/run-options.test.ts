import { describe, expect, it } from 'vitest';
import { parseRunOptions, UsageError } from '../../tools/local/runner/options';

describe('npm start --format / --compatibility', () => {
  it('defaults to JSON; --format avro takes a registry compatibility level', () => {
    // Act
    const defaults = parseRunOptions([]);
    const avro = parseRunOptions(['--format', 'avro', '--compatibility', 'full_transitive']);

    // Assert
    expect(defaults).toMatchObject({ format: 'json', compatibility: 'BACKWARD' });
    expect(avro).toMatchObject({ format: 'avro', compatibility: 'FULL_TRANSITIVE' });
  });

  it('refuses an unknown format, an unknown level, and a level without Avro', () => {
    expect(() => parseRunOptions(['--format', 'protobuf'])).toThrow(/--format must be json or avro/);
    expect(() => parseRunOptions(['--format', 'avro', '--compatibility', 'SOMETIMES'])).toThrow(UsageError);
    expect(() => parseRunOptions(['--compatibility', 'FULL'])).toThrow(/needs --format avro/);
  });
});
