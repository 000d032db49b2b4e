import { describe, expect, it } from 'vitest';
import { parseFlags, UsageError } from '../../tools/lib/args';

const FLAGS = {
  json: { type: 'boolean' },
  state: { type: 'string' },
  local: { type: 'string', optionalValue: true },
} as const;

describe('parseFlags', () => {
  it('reads switches, values after a space or =, and positionals in order', () => {
    // Act
    const parsed = parseFlags(['audit', '--state', 'dir', 'file.json', '--json', '--local=s3'], FLAGS);

    // Assert
    expect(parsed).toEqual({ positionals: ['audit', 'file.json'], values: { state: 'dir', json: true, local: 's3' } });
  });

  it('leaves out flags not given, keeps the last of a repeated one and takes words after -- as positionals', () => {
    expect(parseFlags(['--state', 'a', '--state=b', '--', '--json'], FLAGS)).toEqual({
      positionals: ['--json'],
      values: { state: 'b' },
    });
  });

  it.each([
    [['--local'], true, []],
    [['--local', 'dir'], 'dir', []],
    [['--local', '--json'], true, []],
    [['--json', '--local', 'dir', 'extra'], 'dir', ['extra']],
  ])('gives an optional value %j → %j', (argv, local, positionals) => {
    const parsed = parseFlags(argv, FLAGS);
    expect(parsed.values.local).toBe(local);
    expect(parsed.positionals).toEqual(positionals);
  });

  it.each([
    [['--bogus'], 'unknown option --bogus'],
    [['-x'], 'unknown option -x'],
    [['--state'], '--state needs a value'],
    [['--state', '--json'], '--state needs a value'],
    [['--json=yes'], '--json takes no value'],
    [['--constructor'], 'unknown option --constructor'],
  ])('refuses %j with "%s"', (argv, message) => {
    expect(() => parseFlags(argv, FLAGS)).toThrow(new UsageError(message));
  });

  it('takes a value that starts with a dash when it is written inline', () => {
    expect(parseFlags(['--state=-odd'], FLAGS).values).toEqual({ state: '-odd' });
  });
});
