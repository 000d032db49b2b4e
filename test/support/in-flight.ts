import type { S3Client } from '@aws-sdk/client-s3';
import { vi } from 'vitest';

/** Counts the client's requests in flight until restored; `most()` is the largest number seen at once. */
export function countInFlight(s3: S3Client): { most(): number; restore(): void } {
  const send = s3.send.bind(s3);
  let inFlight = 0;
  let most = 0;
  const spy = vi.spyOn(s3, 'send').mockImplementation((async (command: Parameters<typeof send>[0]) => {
    inFlight++;
    most = Math.max(most, inFlight);
    try {
      return await send(command);
    } finally {
      inFlight--;
    }
  }) as typeof s3.send);
  return { most: () => most, restore: () => spy.mockRestore() };
}
