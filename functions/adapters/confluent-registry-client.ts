import type { SchemaRegistryClient } from '../core/decode/avro/registry';
import { DecodeError, SchemaRegistryError } from '../core/errors';

export interface ConfluentRegistryClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8081` or `https://psrc-xxxx.eu-west-1.aws.confluent.cloud`. */
  url: string;
  /** Per request (ms). @default 2000 */
  timeoutMs?: number;
  /** Basic auth (`<key>:<secret>` for Confluent Cloud). */
  basicAuth?: string;
  /** Injected for tests. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/**
 * Confluent Schema Registry REST: `GET /schemas/ids/{id}` → `{"schema": "<text>"}`. Node's fetch with a timeout,
 * retried once on a network error, a timeout or a 5xx/429 (a registry restart is seconds; more retries are the event
 * source mapping's job, which retries the batch). 404 (error_code 40403) is an unknown id: dead-lettered.
 */
export class ConfluentRegistryClient implements SchemaRegistryClient {
  readonly kind = 'confluent' as const;
  private readonly base: string;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;
  private readonly fetch: typeof fetch;

  constructor(options: ConfluentRegistryClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.fetch = options.fetch ?? globalThis.fetch;
    this.headers = { accept: 'application/vnd.schemaregistry.v1+json, application/json' };
    if (options.basicAuth) this.headers.authorization = `Basic ${Buffer.from(options.basicAuth).toString('base64')}`;
  }

  async getSchema(id: string): Promise<string> {
    try {
      return await this.attempt(id);
    } catch (error) {
      if (!(error instanceof SchemaRegistryError)) throw error;
      return this.attempt(id);
    }
  }

  private async attempt(id: string): Promise<string> {
    const url = `${this.base}/schemas/ids/${encodeURIComponent(id)}`;
    let response: Response;
    try {
      response = await this.fetch(url, { headers: this.headers, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (error) {
      throw new SchemaRegistryError(`schema registry ${this.base} unreachable: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (response.status === 404) {
      throw new DecodeError('UNKNOWN_SCHEMA_ID', `schema id ${id} is not in the registry (${await response.text()})`);
    }
    if (!response.ok) {
      // 401/403 too: a credentials problem is fixed by an operator, and the records must wait for it, not be lost.
      throw new SchemaRegistryError(`schema registry answered ${response.status} for schema ${id}`);
    }
    const body = (await response.json()) as { schema?: unknown; schemaType?: string };
    if (body.schemaType !== undefined && body.schemaType !== 'AVRO') {
      throw new DecodeError('UNSUPPORTED_FORMAT', `schema ${id} is ${body.schemaType}, not Avro`);
    }
    if (typeof body.schema !== 'string') throw new SchemaRegistryError(`schema registry sent no schema for id ${id}`);
    return body.schema;
  }
}
