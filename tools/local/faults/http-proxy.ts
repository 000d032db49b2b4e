/**
 * A fault-injecting HTTP proxy in front of one local AWS emulator (dynalite for DynamoDB, fauxqs for S3 and SQS).
 * A lane's SDK clients talk to it instead of the emulator (`npm run chaos` points the lane's endpoint variables
 * here), so faults reach the real SDK — its retries, its error parsing — and the real lane code, the way an outage
 * looks from Lambda.
 *
 * Every request is classified by what it does to the pipeline ({@link RequestClass}) and then passed, or failed the
 * way the service fails:
 * - `failBefore`: an error answer, nothing forwarded (the write did not happen);
 * - `failAfter`: forwarded, the emulator's answer replaced by a 500 (the write happened, the caller cannot know);
 * - `throttle`: DynamoDB's ThrottlingException, S3's SlowDown;
 * - `conditionFailed` / `transactionConflict`: a checkpoint write refused as if another writer got there first, or
 *   a transaction cancelled by a conflicting one (nothing forwarded);
 * - `hold`: never answered; the request is dropped when its caller goes away (a lane that crashed or timed out).
 *
 * The SDK retries 500s and throttling itself (three attempts in standard mode), so one fault is usually absorbed;
 * the schedule sends bursts to get past it.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type AwsService = 'dynamodb' | 's3' | 'sqs';

/** What a request does to the pipeline. */
export type RequestClass =
  /** A sink's object written (warehouse Parquet, audit chain object). */
  | 'sinkWrite'
  /** A lane's checkpoint written (PutItem / TransactWriteItems of `cp#…` items). */
  | 'checkpointCommit'
  /** A lane's checkpoints read. */
  | 'checkpointRead'
  /** A dead letter stored (SQS send, or its claim-checked payload in S3). */
  | 'deadLetterSend'
  | 'other';

export type HttpFault = 'failBefore' | 'failAfter' | 'throttle' | 'conditionFailed' | 'transactionConflict' | 'hold';

export interface ProxiedRequest {
  service: AwsService;
  /** DynamoDB / SQS operation (`PutItem`, `SendMessageBatch`), or the S3 method (`PUT`, `GET`…). */
  operation: string;
  /** S3: the bucket (path-style). */
  bucket?: string;
  class: RequestClass;
}

export interface FaultProxyOptions {
  upstream: string;
  service: AwsService;
  /** The dead-letter payload bucket: a PUT there is a dead-letter send, not a sink write. */
  deadLetterBucket: string;
  /** What to do with a request: a fault, or undefined to pass it. Called once per request, in arrival order. */
  decide(request: ProxiedRequest): HttpFault | undefined;
}

export interface FaultProxy {
  url: string;
  close(): Promise<void>;
}

function classify(service: AwsService, method: string, target: string | undefined, body: Buffer) {
  if (service === 'dynamodb') {
    const operation = target ? target.slice(target.lastIndexOf('.') + 1) : method;
    const checkpoint = body.includes('"cp#');
    const cls: RequestClass =
      checkpoint && (operation === 'PutItem' || operation === 'TransactWriteItems')
        ? 'checkpointCommit'
        : checkpoint && operation === 'BatchGetItem'
          ? 'checkpointRead'
          : 'other';
    return { operation, cls };
  }
  if (target) {
    // SQS's JSON protocol names the operation in X-Amz-Target (AmazonSQS.SendMessageBatch).
    const operation = target.slice(target.lastIndexOf('.') + 1);
    return { operation, cls: (operation.startsWith('SendMessage') ? 'deadLetterSend' : 'other') as RequestClass };
  }
  return { operation: method, cls: 'other' as RequestClass };
}

function bucketOf(path: string): string {
  const segment = path.split('?')[0]?.split('/')[1] ?? '';
  return decodeURIComponent(segment);
}

/** The error answer of a fault, per service protocol. */
function errorAnswer(service: AwsService, fault: HttpFault, body: Buffer) {
  if (service === 's3') {
    const [status, code] = fault === 'throttle' ? [503, 'SlowDown'] : [500, 'InternalError'];
    return {
      status,
      type: 'application/xml',
      text: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected fault</Message></Error>`,
    };
  }
  const prefix = service === 'dynamodb' ? 'com.amazonaws.dynamodb.v20120810#' : 'com.amazonaws.sqs#';
  const json = (status: number, type: string, extra: Record<string, unknown> = {}) => ({
    status,
    type: 'application/x-amz-json-1.0',
    text: JSON.stringify({ __type: `${prefix}${type}`, message: 'injected fault', ...extra }),
  });
  if (fault === 'throttle') return json(400, 'ThrottlingException');
  if (fault === 'conditionFailed' || fault === 'transactionConflict') {
    let items = 0;
    try {
      items = (JSON.parse(body.toString('utf8')) as { TransactItems?: unknown[] }).TransactItems?.length ?? 0;
    } catch {
      items = 0;
    }
    const code = fault === 'conditionFailed' ? 'ConditionalCheckFailed' : 'TransactionConflict';
    if (items > 0) {
      return json(400, 'TransactionCanceledException', {
        CancellationReasons: Array.from({ length: items }, () => ({ Code: code, Message: 'injected fault' })),
      });
    }
    return json(400, fault === 'conditionFailed' ? 'ConditionalCheckFailedException' : 'TransactionConflictException');
  }
  return json(500, 'InternalServerError');
}

export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const target = new URL(options.upstream);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url ?? '/';
      const method = req.method ?? 'GET';
      const { operation, cls } = classify(
        options.service,
        method,
        req.headers['x-amz-target'] as string | undefined,
        body,
      );
      const bucket = options.service === 's3' ? bucketOf(path) : undefined;
      let kind = cls;
      if (options.service === 's3' && method === 'PUT' && bucket !== undefined) {
        kind = bucket === options.deadLetterBucket ? 'deadLetterSend' : 'sinkWrite';
      }
      const fault = options.decide({
        service: options.service,
        operation,
        ...(bucket !== undefined ? { bucket } : {}),
        class: kind,
      });
      const answer = (
        status: number,
        headers: Record<string, string | string[] | number | undefined>,
        data: Buffer,
      ) => {
        if (res.destroyed) return;
        res.writeHead(status, headers);
        res.end(data);
      };
      if (fault === 'hold') return; // answered never; the socket goes when the caller does
      if (fault !== undefined && fault !== 'failAfter') {
        const error = errorAnswer(options.service, fault, body);
        answer(error.status, { 'content-type': error.type }, Buffer.from(error.text));
        return;
      }
      const forward = request(
        { host: target.hostname, port: target.port, method, path, headers: req.headers },
        (upstream) => {
          const parts: Buffer[] = [];
          upstream.on('data', (chunk: Buffer) => parts.push(chunk));
          upstream.on('error', () => res.destroy());
          upstream.on('end', () => {
            if (fault === 'failAfter') {
              const error = errorAnswer(options.service, 'failAfter', body);
              answer(error.status, { 'content-type': error.type }, Buffer.from(error.text));
            } else {
              answer(upstream.statusCode ?? 502, upstream.headers, Buffer.concat(parts));
            }
          });
        },
      );
      forward.on('error', () => res.destroy());
      forward.end(body);
    });
  });
  // Keep-alive sockets of a crashed lane must not keep close() waiting.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
