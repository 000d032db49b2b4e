import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createClients } from '../../functions/shared/lane-deps';
import { localClientConfig } from '../../tools/local/aws-clients';

const identity = <T>(client: T) => client;

describe('lane AWS clients', () => {
  let server: Server;
  let endpoint: string;
  const authorizations: string[] = [];

  beforeAll(async () => {
    // Answers every request like a service that has nothing to say: enough for the SDK to finish a call.
    server = createServer((request, response) => {
      authorizations.push(request.headers.authorization ?? '');
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
      identity,
      localClientConfig({
        AWS_REGION: 'eu-west-1',
        AWS_ENDPOINT_URL_DYNAMODB: endpoint,
        AWS_ENDPOINT_URL_S3: endpoint,
      }),
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
    const clients = createClients(identity);
    for (const client of [clients.dynamodb, clients.s3, clients.sqs]) expect(client.config.cacheMiddleware).toBe(true);
  });

  it('send an emulator on this machine a well-formed but unchecked signature', async () => {
    // Arrange
    const clients = createClients(
      identity,
      localClientConfig({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL_S3: endpoint }),
    );
    authorizations.length = 0;
    // Act
    await clients.s3.send(new PutObjectCommand({ Bucket: 'b', Key: 'k', Body: 'x' }));
    // Assert
    expect(authorizations).toEqual([
      expect.stringMatching(
        /^AWS4-HMAC-SHA256 Credential=local\/\d{8}\/eu-west-1\/s3\/aws4_request, SignedHeaders=host, Signature=0{64}$/,
      ),
    ]);
  });
});

describe('localClientConfig', () => {
  it('points a service at the endpoint its variable names, S3 path-style, and leaves the others to AWS', () => {
    // Act
    const config = localClientConfig({
      AWS_REGION: 'eu-west-2',
      AWS_ACCESS_KEY_ID: 'id',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_ENDPOINT_URL_S3: 'https://s3.example.com',
    });
    // Assert
    expect(config('s3')).toEqual({
      endpoint: 'https://s3.example.com',
      region: 'eu-west-2',
      credentials: { accessKeyId: 'id', secretAccessKey: 'secret' },
      forcePathStyle: true,
    });
    expect(config('dynamodb')).toEqual({});
    expect(config('sqs')).toEqual({});
  });

  it('skips signing and optional checksums only for endpoints on this machine', () => {
    // Act
    const config = localClientConfig({
      AWS_ENDPOINT_URL_DYNAMODB: 'http://127.0.0.1:4567',
      AWS_ENDPOINT_URL_SQS: 'http://localhost:4568',
      AWS_ENDPOINT_URL_S3: 'http://emulators.internal:4569',
    });
    // Assert
    for (const service of ['dynamodb', 'sqs'] as const) {
      expect(config(service)).toMatchObject({
        signer: expect.any(Object),
        requestChecksumCalculation: 'WHEN_REQUIRED',
      });
    }
    expect(config('s3')).not.toHaveProperty('signer');
    expect(config('s3')).not.toHaveProperty('requestChecksumCalculation');
  });

  it('fails naming a variable that is not a URL', () => {
    expect(() => localClientConfig({ AWS_ENDPOINT_URL_SQS: 'not a url' })).toThrow(/AWS_ENDPOINT_URL_SQS is not a URL/);
  });
});
