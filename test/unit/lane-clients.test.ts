import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClients } from '../../functions/shared/lane-deps';

const identity = <T>(client: T) => client;

describe('lane AWS clients', () => {
  let server: Server;
  let endpoint: string;

  beforeAll(async () => {
    // Answers every request like a service that has nothing to say: enough for the SDK to finish a call.
    server = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        response.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', etag: '"0"' });
        response.end(request.headers['x-amz-target'] ? '{}' : '');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('resolve each command’s middleware stack once, not on every request', async () => {
    const clients = createClients(
      { AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_DYNAMODB: endpoint, AWS_ENDPOINT_URL_S3: endpoint },
      identity,
    );
    const getItem = vi.spyOn(GetItemCommand.prototype, 'resolveMiddleware');
    const putObject = vi.spyOn(PutObjectCommand.prototype, 'resolveMiddleware');
    for (let i = 0; i < 3; i++) {
      await clients.dynamodb.send(new GetItemCommand({ TableName: 't', Key: { pk: { S: `k${i}` } } }));
      await clients.s3.send(new PutObjectCommand({ Bucket: 'b', Key: `k${i}`, Body: 'x' }));
    }
    expect(getItem).toHaveBeenCalledTimes(1);
    expect(putObject).toHaveBeenCalledTimes(1);
    vi.restoreAllMocks();
  });

  it('do so in AWS too', () => {
    const clients = createClients({ AWS_REGION: 'eu-west-1' }, identity);
    for (const client of [clients.dynamodb, clients.s3, clients.sqs]) expect(client.config.cacheMiddleware).toBe(true);
  });
});
