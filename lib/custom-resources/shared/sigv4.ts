import { createHash, createHmac } from 'node:crypto';

/**
 * AWS Signature Version 4 presigning, for the MSK IAM auth token of the MSK Serverless topics custom resource (a
 * presigned `kafka-cluster:Connect` URL, no API call) and the backfill command's token and parameter read. AWS API
 * calls of the custom resources go through the AWS SDK clients instead (standard retry mode, SDK signing): do not
 * build API clients on this. Reference: "Create a signed AWS API request" (IAM user guide); the tests check it
 * against AWS's published example.
 */

export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface SignableRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface SigningScope {
  readonly service: string;
  readonly region: string;
  readonly credentials: Credentials;
  /** Signing time. @default now */
  readonly date?: Date;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const sha256Hex = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding as SigV4 requires (encodeURIComponent leaves !'()* alone). */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function amzDate(date: Date): { long: string; short: string } {
  const long = date
    .toISOString()
    .replace(/[:-]/g, '')
    .replace(/\.\d{3}/, '');
  return { long, short: long.slice(0, 8) };
}

/** Non-S3 services sign the path with every segment encoded twice: once as sent, once more for the signature. */
function canonicalUri(url: URL): string {
  const path = url.pathname === '' ? '/' : url.pathname;
  return path
    .split('/')
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .map((segment) => uriEncode(segment))
    .join('/');
}

function canonicalQuery(params: Iterable<[string, string]>): string {
  return [...params]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

function signingKey(secret: string, shortDate: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secret}`, shortDate);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

function signature(
  scope: SigningScope,
  dates: { long: string; short: string },
  canonicalRequest: string,
): { signature: string; credentialScope: string } {
  const credentialScope = `${dates.short}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = [ALGORITHM, dates.long, credentialScope, sha256Hex(canonicalRequest)].join('\n');
  const key = signingKey(scope.credentials.secretAccessKey, dates.short, scope.region, scope.service);
  return { signature: createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex'), credentialScope };
}

/** Returns the headers to send: the request's own plus host, x-amz-date, the session token and Authorization. */
export function signRequest(request: SignableRequest, scope: SigningScope): Record<string, string> {
  const dates = amzDate(scope.date ?? new Date());
  const headers: Record<string, string> = { ...request.headers, host: request.url.host, 'x-amz-date': dates.long };
  if (scope.credentials.sessionToken !== undefined) headers['x-amz-security-token'] = scope.credentials.sessionToken;

  const lower = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, ' ')] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const signedHeaders = lower.map(([k]) => k).join(';');
  const canonicalRequest = [
    request.method.toUpperCase(),
    canonicalUri(request.url),
    canonicalQuery(request.url.searchParams.entries()),
    lower.map(([k, v]) => `${k}:${v}\n`).join(''),
    signedHeaders,
    sha256Hex(request.body ?? ''),
  ].join('\n');
  const { signature: sig, credentialScope } = signature(scope, dates, canonicalRequest);
  return {
    ...headers,
    authorization: `${ALGORITHM} Credential=${scope.credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${sig}`,
  };
}

/** A presigned GET URL (query-string authentication), signing only the host header, with an empty payload. */
export function presignUrl(url: URL, scope: SigningScope & { expiresSeconds: number }): URL {
  const dates = amzDate(scope.date ?? new Date());
  const signed = new URL(url.toString());
  const credentialScope = `${dates.short}/${scope.region}/${scope.service}/aws4_request`;
  signed.searchParams.set('X-Amz-Algorithm', ALGORITHM);
  signed.searchParams.set('X-Amz-Credential', `${scope.credentials.accessKeyId}/${credentialScope}`);
  signed.searchParams.set('X-Amz-Date', dates.long);
  signed.searchParams.set('X-Amz-Expires', String(scope.expiresSeconds));
  signed.searchParams.set('X-Amz-SignedHeaders', 'host');
  if (scope.credentials.sessionToken !== undefined) {
    signed.searchParams.set('X-Amz-Security-Token', scope.credentials.sessionToken);
  }
  const canonicalRequest = [
    'GET',
    canonicalUri(signed),
    canonicalQuery(signed.searchParams.entries()),
    `host:${signed.host}\n`,
    'host',
    sha256Hex(''),
  ].join('\n');
  signed.searchParams.set('X-Amz-Signature', signature(scope, dates, canonicalRequest).signature);
  return signed;
}

/** The Lambda execution role's credentials, from the environment Lambda sets. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): Credentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (accessKeyId === undefined || secretAccessKey === undefined) {
    throw new Error('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (they are, inside Lambda)');
  }
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN };
}
