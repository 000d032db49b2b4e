/**
 * The local AWS emulators (tools/local/services.ts: dynalite, fauxqs, s3rver with `dir`) in a child process of their
 * own.
 *
 * Why: the lanes, the capture, the broker and the workload already keep one event loop busy, and the emulators do as
 * much work again per request (dynalite runs LevelDB and the full request validation, S3 hashes and stores every
 * object). In a second process they use the machine's second core instead of competing for the first, which
 * roughly halves commit → sink latency under load. The lanes still talk to them over HTTP exactly as before; only the
 * process boundary moved. The returned object is a `LocalServices` like `startLocalServices` returns.
 *
 * The child is this file run with tsx; it exits when told to stop or when its parent goes away (IPC disconnect), so
 * a killed runner never leaves emulators behind.
 */
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { LANES, type Lane } from '../../../functions/core/types';
import { type LocalServices, type LocalServicesOptions, startLocalServices } from '../services';
import { firstMessage, spawnHelper, stopHelper, toParent } from './child';

const CHILD_FLAG = '--cdc-sync-services-host';

type Ready = {
  type: 'ready';
  endpoints: LocalServices['endpoints'];
  redisUrl: string | null;
  redisProblem?: string;
  queueUrls: Record<Lane, string>;
  env: Record<Lane, Record<string, string>>;
};
type ChildMessage = Ready | { type: 'error'; message: string } | { type: 'stopped' };

/** Starts the emulators in a child process; resolves when they listen. */
export async function startServicesProcess(options: LocalServicesOptions = {}): Promise<LocalServices> {
  const child = spawnHelper(
    fileURLToPath(import.meta.url),
    [CHILD_FLAG, JSON.stringify(options)],
    {
      ...process.env,
      // The parent already printed the SDK's Node version notice once.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
    // With `dir`, S3 is s3rver, which encrypts ListObjectsV2 continuation tokens with DES, in OpenSSL 3 only in its
    // legacy provider: without it every listing of more than 1,000 keys (one page) fails with InternalError.
    ['--openssl-legacy-provider'],
  );
  let ready: Ready;
  try {
    ready = await firstMessage(child, (message) => {
      const m = message as ChildMessage;
      if (m.type === 'error') throw new Error(`local services did not start: ${m.message}`);
      return m.type === 'ready' ? m : undefined;
    });
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }

  const env = ready.env;
  const base = env.warehouse;
  const common = {
    region: base.AWS_REGION as string,
    credentials: {
      accessKeyId: base.AWS_ACCESS_KEY_ID as string,
      secretAccessKey: base.AWS_SECRET_ACCESS_KEY as string,
    },
  };
  const clients = {
    dynamodb: new DynamoDBClient({ ...common, endpoint: ready.endpoints.dynamodb }),
    s3: new S3Client({ ...common, endpoint: ready.endpoints.s3, forcePathStyle: true }),
    sqs: new SQSClient({ ...common, endpoint: ready.endpoints.sqs }),
  };
  const services: LocalServices = {
    endpoints: ready.endpoints,
    redisUrl: ready.redisUrl,
    clients,
    queueUrls: ready.queueUrls,
    laneEnv: (lane) => ({ ...env[lane] }),
    stop: async () => {
      for (const client of Object.values(clients)) client.destroy();
      await stopHelper(child);
    },
  };
  if (ready.redisProblem !== undefined) services.redisProblem = ready.redisProblem;
  return services;
}

/** The child: start the services, report their addresses, stop when told (or when the parent is gone). */
async function serve(options: LocalServicesOptions): Promise<void> {
  const send = (message: ChildMessage) => toParent(message);
  let services: LocalServices;
  try {
    services = await startLocalServices(options);
  } catch (error) {
    send({ type: 'error', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= services
      .stop()
      .catch(() => undefined)
      .finally(() => process.exit(0));
    return stopping;
  };
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'stop') void stop();
  });
  // Ctrl-C reaches the whole process group: leave it to the parent, whose exit disconnects us (then we clean up).
  process.on('SIGINT', () => undefined);
  process.on('disconnect', () => void stop());
  // The parent went away while the services started (its run failed or was interrupted): nobody will use them, and a
  // 'disconnect' that came before the listener above will not come again.
  if (!process.connected) {
    await stop();
    return;
  }
  const ready: Ready = {
    type: 'ready',
    endpoints: services.endpoints,
    redisUrl: services.redisUrl,
    queueUrls: services.queueUrls,
    env: Object.fromEntries(LANES.map((lane) => [lane, services.laneEnv(lane)])) as Record<
      Lane,
      Record<string, string>
    >,
  };
  if (services.redisProblem !== undefined) ready.redisProblem = services.redisProblem;
  send(ready);
}

const flag = process.argv.indexOf(CHILD_FLAG);
if (flag >= 0 && process.send) await serve(JSON.parse(process.argv[flag + 1] ?? '{}') as LocalServicesOptions);
