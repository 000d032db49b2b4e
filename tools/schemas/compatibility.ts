/**
 * Avro schema compatibility, as Confluent Schema Registry checks it before a registration: the Avro specification's
 * schema resolution rules (can a reader schema read what a writer schema wrote?) applied per compatibility mode.
 * Pure functions over schemas in their JSON form; rule names follow Avro's `SchemaCompatibility.SchemaIncompatibilityType`
 * (READER_FIELD_MISSING_DEFAULT_VALUE, TYPE_MISMATCH, NAME_MISMATCH, MISSING_ENUM_SYMBOLS, MISSING_UNION_BRANCH,
 * FIXED_SIZE_MISMATCH), which Confluent prints in its 409 messages.
 *
 * - BACKWARD: the new schema reads data written with the latest one (consumers upgrade first).
 * - FORWARD: the latest schema reads data written with the new one (producers upgrade first).
 * - FULL: both. `_TRANSITIVE`: against every earlier version, not only the latest. NONE: no check.
 */
import type { AvroField, AvroSchema, AvroSchemaObject } from '../../functions/core/decode/avro/avsc-types';

export const COMPATIBILITY_LEVELS = [
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
  'NONE',
] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];

export type IncompatibilityRule =
  | 'READER_FIELD_MISSING_DEFAULT_VALUE'
  | 'TYPE_MISMATCH'
  | 'NAME_MISMATCH'
  | 'MISSING_ENUM_SYMBOLS'
  | 'MISSING_UNION_BRANCH'
  | 'FIXED_SIZE_MISMATCH';

export interface Violation {
  /** Field path from the top record, e.g. `after.price` (`` for the top level). */
  path: string;
  rule: IncompatibilityRule;
  /** Which direction failed: the new schema reading old data (backward) or the old reading new data (forward). */
  direction: 'backward' | 'forward';
  /** The version checked against, when the caller numbered them. */
  version?: number;
  message: string;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
/** Writer type → reader types that can read it (Avro spec "Schema Resolution"). */
const PROMOTIONS: Record<string, readonly string[]> = {
  int: ['long', 'float', 'double'],
  long: ['float', 'double'],
  float: ['double'],
  string: ['bytes'],
  bytes: ['string'],
};

type Named = Map<string, AvroSchemaObject>;

function fullName(name: string, namespace: string | undefined): string {
  return name.includes('.') || !namespace ? name : `${namespace}.${name}`;
}

function collect(schema: AvroSchema, namespace: string | undefined, named: Named): void {
  if (typeof schema === 'string') return;
  if (Array.isArray(schema)) {
    for (const branch of schema) collect(branch, namespace, named);
    return;
  }
  let ns = namespace;
  if (
    (schema.type === 'record' || schema.type === 'error' || schema.type === 'enum' || schema.type === 'fixed') &&
    schema.name
  ) {
    const full = fullName(schema.name, schema.namespace ?? namespace);
    ns = full.includes('.') ? full.slice(0, full.lastIndexOf('.')) : undefined;
    named.set(full, { ...schema, name: full });
  }
  if (typeof schema.type === 'object') collect(schema.type, ns, named);
  for (const field of schema.fields ?? []) collect(field.type, ns, named);
  if (schema.items) collect(schema.items, ns, named);
  if (schema.values) collect(schema.values, ns, named);
}

/** A schema with references resolved one level: a union (array) or an object with a concrete `type`. */
function resolve(schema: AvroSchema, named: Named, namespace?: string): AvroSchemaObject | AvroSchema[] {
  if (Array.isArray(schema)) return schema;
  if (typeof schema === 'string') {
    if (PRIMITIVES.has(schema)) return { type: schema };
    const found = named.get(fullName(schema, namespace)) ?? named.get(schema);
    if (!found) throw new Error(`unknown Avro type ${schema}`);
    return found;
  }
  if (typeof schema.type === 'object') return resolve(schema.type, named, namespace);
  if (
    typeof schema.type === 'string' &&
    !PRIMITIVES.has(schema.type) &&
    !['record', 'error', 'enum', 'fixed', 'array', 'map'].includes(schema.type)
  ) {
    return resolve(schema.type, named, namespace);
  }
  if ((schema.type === 'record' || schema.type === 'enum' || schema.type === 'fixed') && schema.name) {
    return named.get(fullName(schema.name, schema.namespace ?? namespace)) ?? schema;
  }
  return schema;
}

function describe(schema: AvroSchemaObject | AvroSchema[]): string {
  if (Array.isArray(schema)) return `union`;
  return schema.name ? `${schema.type} ${schema.name}` : String(schema.type);
}

function unqualified(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

/** Avro matches named types by unqualified name (or an alias of the reader's). */
function namesMatch(reader: AvroSchemaObject, writer: AvroSchemaObject): boolean {
  const writerName = unqualified(writer.name ?? '');
  if (unqualified(reader.name ?? '') === writerName) return true;
  return ((reader.aliases as string[] | undefined) ?? []).some((alias) => unqualified(alias) === writerName);
}

interface Context {
  readerNamed: Named;
  writerNamed: Named;
  violations: Violation[];
  direction: 'backward' | 'forward';
  /** Record pairs being checked (recursive schemas). */
  seen: Set<string>;
}

function join(path: string, field: string): string {
  return path ? `${path}.${field}` : field;
}

function check(readerSchema: AvroSchema, writerSchema: AvroSchema, path: string, context: Context): boolean {
  const reader = resolve(readerSchema, context.readerNamed);
  const writer = resolve(writerSchema, context.writerNamed);
  const fail = (rule: IncompatibilityRule, message: string): false => {
    context.violations.push({ path, rule, direction: context.direction, message });
    return false;
  };
  if (Array.isArray(writer)) {
    // Every branch the writer may have written must be readable.
    let ok = true;
    for (const branch of writer) if (!check(readerSchema, branch, path, context)) ok = false;
    return ok;
  }
  if (Array.isArray(reader)) {
    // The branch of the writer's own type (and name) decides, with its violations: a changed row record inside
    // `["null", Value]` reports the row's fields, not a missing branch.
    const same = reader.find((branch) => {
      const resolved = resolve(branch, context.readerNamed);
      return (
        !Array.isArray(resolved) && resolved.type === writer.type && (!writer.name || namesMatch(resolved, writer))
      );
    });
    if (same !== undefined) return check(same, writerSchema, path, context);
    // Else some branch must read it by promotion; probe without recording, then report once.
    for (const branch of reader) {
      const probe: Context = { ...context, violations: [] };
      if (check(branch, writerSchema, path, probe)) return true;
    }
    return fail('MISSING_UNION_BRANCH', `reader union has no branch for the writer's ${describe(writer)}`);
  }
  const readerType = reader.type as string;
  const writerType = writer.type as string;
  if (readerType !== writerType) {
    if (PROMOTIONS[writerType]?.includes(readerType)) return true;
    return fail('TYPE_MISMATCH', `reader type ${readerType} cannot read writer type ${writerType}`);
  }
  switch (readerType) {
    case 'record':
    case 'error': {
      if (!namesMatch(reader, writer))
        return fail('NAME_MISMATCH', `reader record ${reader.name} is not the writer's ${writer.name}`);
      const pair = `${reader.name}|${writer.name}`;
      if (context.seen.has(pair)) return true;
      context.seen.add(pair);
      let ok = true;
      for (const field of reader.fields ?? []) {
        const written = findField(writer.fields ?? [], field);
        const fieldPath = join(path, field.name);
        if (written) {
          if (!check(field.type, written.type, fieldPath, context)) ok = false;
        } else if (!('default' in field)) {
          context.violations.push({
            path: fieldPath,
            rule: 'READER_FIELD_MISSING_DEFAULT_VALUE',
            direction: context.direction,
            message: `field ${fieldPath} is read but not written, and has no default`,
          });
          ok = false;
        }
      }
      context.seen.delete(pair);
      return ok;
    }
    case 'enum': {
      if (!namesMatch(reader, writer))
        return fail('NAME_MISMATCH', `reader enum ${reader.name} is not the writer's ${writer.name}`);
      if ('default' in reader) return true;
      const missing = (writer.symbols ?? []).filter((symbol) => !(reader.symbols ?? []).includes(symbol));
      return missing.length ? fail('MISSING_ENUM_SYMBOLS', `reader enum lacks ${missing.join(', ')}`) : true;
    }
    case 'fixed':
      if (!namesMatch(reader, writer))
        return fail('NAME_MISMATCH', `reader fixed ${reader.name} is not the writer's ${writer.name}`);
      return reader.size === writer.size
        ? true
        : fail('FIXED_SIZE_MISMATCH', `fixed size ${writer.size} read as ${reader.size}`);
    case 'array':
      return check(reader.items as AvroSchema, writer.items as AvroSchema, join(path, '[]'), context);
    case 'map':
      return check(reader.values as AvroSchema, writer.values as AvroSchema, join(path, '{}'), context);
    default:
      return true;
  }
}

function findField(fields: readonly AvroField[], reader: AvroField): AvroField | undefined {
  return fields.find((f) => f.name === reader.name) ?? fields.find((f) => (reader.aliases ?? []).includes(f.name));
}

function namedOf(schema: AvroSchema): Named {
  const named: Named = new Map();
  collect(schema, undefined, named);
  return named;
}

/** Violations of `reader` reading data written with `writer` (empty: it can). */
export function readerViolations(
  reader: AvroSchema,
  writer: AvroSchema,
  direction: 'backward' | 'forward' = 'backward',
): Violation[] {
  const context: Context = {
    readerNamed: namedOf(reader),
    writerNamed: namedOf(writer),
    violations: [],
    direction,
    seen: new Set(),
  };
  check(reader, writer, '', context);
  return context.violations;
}

/**
 * Checks a candidate schema against the existing versions (oldest first) under a compatibility level, as the
 * registry does on registration. Non-transitive levels compare with the latest version only.
 */
export function checkCompatibility(
  candidate: AvroSchema,
  previous: readonly AvroSchema[],
  level: CompatibilityLevel,
): Violation[] {
  if (level === 'NONE' || previous.length === 0) return [];
  const transitive = level.endsWith('_TRANSITIVE');
  const against = transitive
    ? previous.map((s, i) => [s, i + 1] as const)
    : [[previous.at(-1) as AvroSchema, previous.length] as const];
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  const violations: Violation[] = [];
  for (const [schema, version] of against) {
    if (backward) for (const v of readerViolations(candidate, schema, 'backward')) violations.push({ ...v, version });
    if (forward) for (const v of readerViolations(schema, candidate, 'forward')) violations.push({ ...v, version });
  }
  return violations;
}

/** One line per violation: `after.price: TYPE_MISMATCH (backward, v3): reader type int cannot read writer type long`. */
export function formatViolation(violation: Violation): string {
  const where = violation.version === undefined ? violation.direction : `${violation.direction}, v${violation.version}`;
  return `${violation.path || '(record)'}: ${violation.rule} (${where}): ${violation.message}`;
}
