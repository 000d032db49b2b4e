import { afterAll, beforeAll } from 'vitest';
import { type LocalServices, startLocalServices } from '../../tools/local/services';

/** Starts throw-away local AWS emulators (and finds Redis) for one test file. */
export function useLocalServices(): () => LocalServices {
  let services: LocalServices | undefined;
  beforeAll(async () => {
    services = await startLocalServices({ redis: 'auto' });
  });
  afterAll(async () => {
    await services?.stop();
  });
  return () => {
    if (!services) throw new Error('local services not started');
    return services;
  };
}
