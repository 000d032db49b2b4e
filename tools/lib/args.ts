/**
 * Command-line flags for the `npm run` tools, on node:util's `parseArgs`. Its non-strict mode splits the words
 * (`--flag`, `--flag value`, `--flag=value`, `--` ends the flags); the checks here give the one-line messages the
 * tools print (the same wording as `npm start`'s): `unknown option --x`, `--state needs a value`, `--json takes no
 * value`. Strict mode's own messages name JavaScript options and suggest quoting rules rather than what to type.
 */
import { parseArgs } from 'node:util';
import { fail } from './cli';

/**
 * A switch (`boolean`), or a flag with a value (`string`). An `optionalValue` flag may stand alone (`--local`) or
 * take the word after it (`--local dir`, unless that word is a flag) or an inline one (`--local=dir`).
 */
export type FlagSpec = { readonly type: 'boolean' } | { readonly type: 'string'; readonly optionalValue?: boolean };

type FlagValue<S extends FlagSpec> = S extends { type: 'boolean' }
  ? true
  : S extends { optionalValue: true }
    ? string | true
    : string;

export interface CommandLine<F extends Readonly<Record<string, FlagSpec>>> {
  /** The words that are not flags or their values, in order. */
  positionals: string[];
  /** Each flag given (the last one wins when repeated); a flag not given is absent. */
  values: { [K in keyof F]?: FlagValue<F[K]> };
}

/** A command line the tool cannot run; the message is one line, for the user. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Parses `argv` against `flags`; throws {@link UsageError} for an unknown flag or a missing or unexpected value. */
export function parseFlags<const F extends Readonly<Record<string, FlagSpec>>>(
  argv: readonly string[],
  flags: F,
): CommandLine<F> {
  // An optional value is found below, from the word that follows; parseArgs would take that word even if a flag.
  const options = Object.fromEntries(
    Object.entries(flags).map(([name, spec]) => [
      name,
      { type: spec.type === 'string' && !spec.optionalValue ? 'string' : 'boolean' } as const,
    ]),
  );
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const positionals: string[] = [];
  const values: Record<string, string | true> = {};
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(flags, token.name) ? flags[token.name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown option ${token.rawName}`);
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`--${token.name} takes no value`);
      values[token.name] = true;
    } else if (spec.optionalValue) {
      const next = tokens[i + 1];
      if (token.value !== undefined) {
        values[token.name] = token.value;
      } else if (next?.kind === 'positional' && next.index === token.index + 1) {
        values[token.name] = next.value;
        i++;
      } else {
        values[token.name] = true;
      }
    } else {
      // `--state --json`: parseArgs takes the next word whatever it is; a flag there means the value was left out.
      const missing = token.value === undefined || (!token.inlineValue && /^-./.test(token.value));
      if (missing) throw new UsageError(`--${token.name} needs a value`);
      values[token.name] = token.value;
    }
  }
  return { positionals, values: values as CommandLine<F>['values'] };
}

/** {@link parseFlags} for a tool's main: a bad command line prints the reason and the usage, and exits 2. */
export function parseFlagsOrExit<const F extends Readonly<Record<string, FlagSpec>>>(
  argv: readonly string[],
  flags: F,
  usage: string,
): CommandLine<F> {
  try {
    return parseFlags(argv, flags);
  } catch (error) {
    if (error instanceof UsageError) fail(`${error.message}\n${usage}`);
    throw error;
  }
}

/** A `--flag <n>` value: a whole number up to `max`, `fallback` when absent; otherwise one line and exit 2. */
export function wholeNumber(
  text: string | undefined,
  flag: string,
  fallback: number,
  max: number,
  usage: string,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max) fail(`--${flag} must be a whole number up to ${max}, not "${text}"\n${usage}`);
  return n;
}
