import { ConfigError } from '../../functions/core/errors';
import type { AwsService, ClientConfigFor } from '../../functions/shared/lane-deps';

/** The variable naming each service's endpoint, as the AWS SDKs spell it. */
const ENDPOINT_VARIABLES: Record<AwsService, string> = {
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
  sqs: 'AWS_ENDPOINT_URL_SQS',
};

/**
 * The lanes' AWS client settings when a tool runs them on a machine (`npm start`, `npm run invoke` and `redrive`,
 * the benchmarks, the tests): `AWS_ENDPOINT_URL_<SERVICE>` in the lane's environment points that service's client at
 * dynalite, s3rver or fauxqs, with the environment's region and credentials; S3 emulators need path-style
 * addressing. Read from the given environment, not process.env, so that several lanes can share a process. A
 * service without an endpoint gets nothing (real AWS, default credentials).
 *
 * Emulators on this machine check neither signatures nor checksums, and SigV4 signing plus a JS CRC32 of every body
 * are half of the SDK's CPU per call — on a laptop running the whole pipeline, that is the lanes' budget. So requests
 * to a loopback endpoint carry a well-formed but unchecked signature, and checksums only where an operation requires
 * one.
 */
export function localClientConfig(env: Record<string, string | undefined>): ClientConfigFor {
  const endpoints = new Map<AwsService, string>();
  for (const [service, variable] of Object.entries(ENDPOINT_VARIABLES) as Array<[AwsService, string]>) {
    const endpoint = env[variable];
    if (endpoint === undefined) continue;
    if (!URL.canParse(endpoint)) throw new ConfigError(`local AWS clients: ${variable} is not a URL: ${endpoint}`);
    endpoints.set(service, endpoint);
  }
  return (service) => {
    const endpoint = endpoints.get(service);
    if (endpoint === undefined) return {};
    const accessKeyId = env.AWS_ACCESS_KEY_ID ?? 'local';
    const config: Record<string, unknown> = {
      endpoint,
      region: env.AWS_REGION ?? 'eu-west-1',
      credentials: { accessKeyId, secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? 'local' },
    };
    if (service === 's3') config.forcePathStyle = true;
    if (isLoopback(endpoint)) {
      config.signer = {
        sign: (request: SignableRequest, options?: SigningOptions) => unsignedSignature(accessKeyId, request, options),
      };
      config.requestChecksumCalculation = 'WHEN_REQUIRED';
    }
    return config;
  };
}

interface SignableRequest {
  headers: Record<string, string>;
}
interface SigningOptions {
  signingRegion?: string;
  signingService?: string;
}

/**
 * A well-formed but unchecked SigV4 Authorization header: the emulators read the region from its credential scope
 * and insist that one is there, without verifying the signature (s3rver is started with `allowMismatchedSignatures`).
 */
async function unsignedSignature(
  accessKeyId: string,
  request: SignableRequest,
  options?: SigningOptions,
): Promise<unknown> {
  const now = new Date().toISOString().replace(/[-:]|\.\d{3}/g, ''); // 20240315T103000Z: s3rver checks the skew
  const scope = `${accessKeyId}/${now.slice(0, 8)}/${options?.signingRegion ?? 'eu-west-1'}/${options?.signingService ?? 's3'}/aws4_request`;
  request.headers.authorization = `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=host, Signature=${'0'.repeat(64)}`;
  request.headers['x-amz-date'] = now;
  if (options?.signingService === 's3') request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  return request;
}

/** Only requests to this machine go unsigned. */
function isLoopback(endpoint: string): boolean {
  const host = new URL(endpoint).hostname;
  return host === '127.0.0.1' || host === 'localhost' || host === '[::1]';
}
