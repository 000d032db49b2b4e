import { type Credentials, credentialsFromEnv, signRequest } from './sigv4';

/** An AWS REST-JSON API error, with the service's error type (e.g. `NotFoundException`) and HTTP status. */
export class AwsApiError extends Error {
  override readonly name = 'AwsApiError';
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(`${type} (${status}): ${message}`);
  }
}

export interface AwsRestClientOptions {
  readonly service: string;
  readonly region: string;
  /** @default https://<service>.<region>.amazonaws.com */
  readonly endpoint?: string;
  /** @default the Lambda execution role's credentials */
  readonly credentials?: () => Credentials;
  /** @default globalThis.fetch */
  readonly fetch?: typeof fetch;
}

export type AwsRestCall = (
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  options?: { query?: Record<string, string | undefined>; body?: unknown },
) => Promise<unknown>;

/** A minimal signed client for an AWS REST-JSON API (MSK, MSK Connect). Throws AwsApiError on non-2xx. */
export function awsRestClient(options: AwsRestClientOptions): AwsRestCall {
  const endpoint = options.endpoint ?? `https://${options.service}.${options.region}.amazonaws.com`;
  const doFetch = options.fetch ?? globalThis.fetch;
  const credentials = options.credentials ?? (() => credentialsFromEnv());
  return async (method, path, { query, body } = {}) => {
    const url = new URL(path, endpoint);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = signRequest(
      {
        method,
        url,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        body: payload,
      },
      { service: options.service, region: options.region, credentials: credentials() },
    );
    // fetch sets Host itself from the URL.
    const { host: _host, ...sendHeaders } = headers;
    const response = await doFetch(url, { method, headers: sendHeaders, body: payload });
    const text = await response.text();
    const json: unknown = text === '' ? {} : JSON.parse(text);
    if (!response.ok) {
      const errorType =
        response.headers.get('x-amzn-errortype')?.split(':')[0] ??
        (typeof json === 'object' && json !== null && '__type' in json ? String(json.__type) : 'UnknownError');
      const message =
        typeof json === 'object' && json !== null && 'message' in json ? String(json.message) : response.statusText;
      throw new AwsApiError(response.status, errorType, message);
    }
    return json;
  };
}
