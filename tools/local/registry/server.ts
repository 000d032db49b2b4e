/**
 * A local Confluent-compatible schema registry (node:http on 127.0.0.1): the subset of the REST API that Kafka
 * converters and registry clients use, kept in memory for one run.
 *
 *   POST /subjects/{s}/versions              register → {id}; the same schema gets the same id (any subject)
 *   POST /subjects/{s}                       look up → {subject, version, id, schema}
 *   GET  /schemas/ids/{id}                   → {schema}
 *   GET  /subjects, /subjects/{s}/versions, /subjects/{s}/versions/{v|latest}
 *   POST /compatibility/subjects/{s}/versions/{v|latest}  → {is_compatible, messages}
 *   GET|PUT /config, /config/{s}             {compatibilityLevel} / {compatibility}
 *
 * Errors have Confluent's body `{"error_code": n, "message": "..."}`: 404 with 40401 (subject), 40402 (version),
 * 40403 (schema), 40408 (no subject config); 409 for an incompatible schema (the violations in the message); 422 with
 * 42201 (invalid schema), 42202 (invalid version), 42203 (invalid compatibility level).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import avro from 'avsc';
import type { AvroSchema } from '../../../functions/core/decode/avro/avsc-types';
import {
  COMPATIBILITY_LEVELS,
  type CompatibilityLevel,
  checkCompatibility,
  formatViolation,
} from '../../schemas/compatibility';

export interface LocalRegistry {
  url: string;
  port: number;
  /** The registry's state (its global compatibility level, the subjects), in process. */
  state: RegistryState;
  /** Registers directly (what a POST does), for runners and tests. Throws on an incompatible or invalid schema. */
  register(subject: string, schema: string): Promise<{ id: number }>;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message);
  }
}

interface Version {
  version: number;
  id: number;
  schema: string;
}

/** The registry's state and rules, apart from HTTP. */
export class RegistryState {
  private readonly schemas: string[] = [];
  private readonly idByCanonical = new Map<string, number>();
  private readonly subjects = new Map<string, Version[]>();
  private readonly config = new Map<string, CompatibilityLevel>();
  globalLevel: CompatibilityLevel = 'BACKWARD';

  private static parse(schema: unknown): { canonical: string; parsed: AvroSchema } {
    if (typeof schema !== 'string')
      throw new HttpError(422, 42201, 'Either the input schema or one of its references is invalid');
    try {
      const parsed = JSON.parse(schema) as AvroSchema;
      avro.Type.forSchema(parsed as avro.Schema, { wrapUnions: 'auto' });
      return { canonical: JSON.stringify(parsed), parsed };
    } catch (error) {
      throw new HttpError(422, 42201, `Invalid schema ${schema}: ${(error as Error).message}`);
    }
  }

  levelOf(subject: string): CompatibilityLevel {
    return this.config.get(subject) ?? this.globalLevel;
  }

  register(subject: string, schema: unknown): { id: number } {
    const { canonical, parsed } = RegistryState.parse(schema);
    const versions = this.subjects.get(subject) ?? [];
    const existing = versions.find((v) => v.schema === canonical);
    if (existing) return { id: existing.id };
    const violations = checkCompatibility(
      parsed,
      versions.map((v) => JSON.parse(v.schema) as AvroSchema),
      this.levelOf(subject),
    );
    if (violations.length) {
      throw new HttpError(
        409,
        409,
        `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: [${violations.map(formatViolation).join('; ')}]`,
      );
    }
    let id = this.idByCanonical.get(canonical);
    if (id === undefined) {
      this.schemas.push(canonical);
      id = this.schemas.length;
      this.idByCanonical.set(canonical, id);
    }
    versions.push({ version: (versions.at(-1)?.version ?? 0) + 1, id, schema: canonical });
    this.subjects.set(subject, versions);
    return { id };
  }

  schemaById(id: string): string {
    const schema = /^\d+$/.test(id) ? this.schemas[Number(id) - 1] : undefined;
    if (schema === undefined) throw new HttpError(404, 40403, `Schema ${id} not found`);
    return schema;
  }

  /** Distinct schemas registered (one id each, shared by subjects). */
  schemaCount(): number {
    return this.schemas.length;
  }

  subjectNames(): string[] {
    return [...this.subjects.keys()].sort();
  }

  versionsOf(subject: string): Version[] {
    const versions = this.subjects.get(subject);
    if (!versions?.length) throw new HttpError(404, 40401, `Subject '${subject}' not found.`);
    return versions;
  }

  version(subject: string, version: string): Version {
    const versions = this.versionsOf(subject);
    if (version === 'latest' || version === '-1') return versions.at(-1) as Version;
    if (!/^\d+$/.test(version))
      throw new HttpError(422, 42202, `The specified version '${version}' is not a valid version id.`);
    const found = versions.find((v) => v.version === Number(version));
    if (!found) throw new HttpError(404, 40402, `Version ${version} not found.`);
    return found;
  }

  lookup(subject: string, schema: unknown): Version {
    const { canonical } = RegistryState.parse(schema);
    const found = this.versionsOf(subject).find((v) => v.schema === canonical);
    if (!found) throw new HttpError(404, 40403, 'Schema not found');
    return found;
  }

  compatible(subject: string, version: string, schema: unknown): { is_compatible: boolean; messages: string[] } {
    const { parsed } = RegistryState.parse(schema);
    const level = this.levelOf(subject);
    const versions = this.subjects.get(subject) ?? [];
    if (!versions.length) return { is_compatible: true, messages: [] };
    const against = version === 'latest' && level.endsWith('_TRANSITIVE') ? versions : [this.version(subject, version)];
    const violations = checkCompatibility(
      parsed,
      against.map((v) => JSON.parse(v.schema) as AvroSchema),
      level,
    );
    return { is_compatible: violations.length === 0, messages: violations.map(formatViolation) };
  }

  subjectLevel(subject: string): CompatibilityLevel | undefined {
    return this.config.get(subject);
  }

  setLevel(subject: string | undefined, level: unknown): CompatibilityLevel {
    if (typeof level !== 'string' || !(COMPATIBILITY_LEVELS as readonly string[]).includes(level)) {
      throw new HttpError(
        422,
        42203,
        `Invalid compatibility level. Valid values are ${COMPATIBILITY_LEVELS.join(', ')}`,
      );
    }
    if (subject === undefined) this.globalLevel = level as CompatibilityLevel;
    else this.config.set(subject, level as CompatibilityLevel);
    return level as CompatibilityLevel;
  }
}

async function bodyOf(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new HttpError(422, 42201, 'request body is not JSON');
  }
}

function route(
  state: RegistryState,
  method: string,
  path: string[],
  body: Record<string, unknown>,
  query: URLSearchParams,
): unknown {
  const [head, a, b, c, d] = path;
  if (head === 'schemas' && a === 'ids' && b && method === 'GET') return { schema: state.schemaById(b) };
  if (head === 'subjects') {
    if (!a && method === 'GET') return state.subjectNames();
    if (a && !b && method === 'POST') {
      const found = state.lookup(a, body.schema);
      return { subject: a, version: found.version, id: found.id, schema: found.schema };
    }
    if (a && b === 'versions' && !c && method === 'GET') return state.versionsOf(a).map((v) => v.version);
    if (a && b === 'versions' && !c && method === 'POST') {
      if (body.schemaType !== undefined && body.schemaType !== 'AVRO')
        throw new HttpError(422, 42201, 'only AVRO schemas are supported locally');
      return state.register(a, body.schema);
    }
    if (a && b === 'versions' && c && method === 'GET') {
      const found = state.version(a, c);
      return { subject: a, version: found.version, id: found.id, schema: found.schema };
    }
  }
  if (head === 'compatibility' && a === 'subjects' && b && c === 'versions' && d && method === 'POST') {
    const result = state.compatible(b, d, body.schema);
    return query.get('verbose') === 'true' || !result.is_compatible ? result : { is_compatible: result.is_compatible };
  }
  if (head === 'config') {
    if (!a && method === 'GET') return { compatibilityLevel: state.globalLevel };
    if (!a && method === 'PUT') return { compatibility: state.setLevel(undefined, body.compatibility) };
    if (a && method === 'PUT') return { compatibility: state.setLevel(a, body.compatibility) };
    if (a && method === 'GET') {
      const level = state.subjectLevel(a) ?? (query.get('defaultToGlobal') === 'true' ? state.globalLevel : undefined);
      if (!level)
        throw new HttpError(404, 40408, `Subject '${a}' does not have subject-level compatibility configured`);
      return { compatibilityLevel: level };
    }
  }
  throw new HttpError(404, 404, `HTTP 404 Not Found: ${method} /${path.join('/')}`);
}

/** Starts the registry on 127.0.0.1 (`port` 0: any free port). */
export async function startLocalRegistry(
  options: { port?: number; state?: RegistryState } = {},
): Promise<LocalRegistry> {
  const state = options.state ?? new RegistryState();
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const path = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let status = 200;
    let result: unknown;
    try {
      result = route(state, request.method ?? 'GET', path, await bodyOf(request), url.searchParams);
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
        result = { error_code: error.errorCode, message: error.message };
      } else {
        status = 500;
        result = { error_code: 50001, message: (error as Error).message };
      }
    }
    response.writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' });
    response.end(JSON.stringify(result));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    state,
    register: async (subject, schema) => state.register(subject, schema),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
