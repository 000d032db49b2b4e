import { Readable } from 'node:stream';

/**
 * An AWS SDK HTTP handler that answers every request at once without a network: the CPU benchmarks measure our
 * code and the SDK's serialisation, not a network. Counts requests per operation.
 */
interface StubRequest {
  method: string;
  hostname: string;
  path: string;
  headers: Record<string, string>;
  body?: unknown;
}

export class StubHttpHandler {
  readonly counts = new Map<string, number>();

  async handle(
    request: StubRequest,
  ): Promise<{ response: { statusCode: number; headers: Record<string, string>; body: Readable } }> {
    const target = request.headers['x-amz-target'];
    const operation = target ? target.slice(target.indexOf('.') + 1) : `${request.method} s3`;
    this.counts.set(operation, (this.counts.get(operation) ?? 0) + 1);
    let body = '';
    const headers: Record<string, string> = {
      'content-type': 'application/x-amz-json-1.0',
      'x-amzn-requestid': 'stub',
    };
    if (operation === 'BatchGetItem') body = '{"Responses":{},"UnprocessedKeys":{}}';
    else if (operation === 'PutItem' || operation === 'TransactWriteItems') body = '{}';
    else if (operation === 'SendMessageBatch') {
      const entries = (JSON.parse(String(request.body)) as { Entries: Array<{ Id: string }> }).Entries;
      body = JSON.stringify({
        Successful: entries.map((e) => ({ Id: e.Id, MessageId: e.Id, MD5OfMessageBody: '' })),
        Failed: [],
      });
    } else {
      headers.etag = '"stub"';
      if (request.body instanceof Readable) request.body.resume();
    }
    return { response: { statusCode: 200, headers, body: Readable.from([Buffer.from(body)]) } };
  }

  updateHttpClientConfig(): void {}
  httpHandlerConfigs(): Record<string, never> {
    return {};
  }
  destroy(): void {}

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}
