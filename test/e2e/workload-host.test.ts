/**
 * The workload's own process (tools/local/runner/workload-host.ts) outliving the run that started it: it must notice
 * and end, quietly, rather than go on writing to the database or die with a stack trace trying to report.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const HOST = fileURLToPath(new URL('../../tools/local/runner/workload-host.ts', import.meta.url));
const STACK = /\n\s+at |ERR_IPC_CHANNEL_CLOSED/;

/** Exit code and stderr once every holder of the child's pipes (an orphaned helper too) has exited. */
function finished(child: ChildProcess): Promise<{ code: number | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

describe('the workload process', () => {
  // A "database" that accepts connections and never answers: the workload keeps waiting, as on a real one it keeps
  // writing, until something ends it.
  let silent: Server;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  });

  it('ends quietly when the run that started it is gone before it got going', async () => {
    // Arrange: a run that starts the workload and dies at once (its run failed or was interrupted)
    const port = (silent.address() as { port: number }).port;
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const run = `import { startWorkloadProcess } from '${pathToFileURL(HOST).href}';
      const workload = startWorkloadProcess({
        connectionString: 'postgres://nobody@127.0.0.1:${port}/none', rate: 100, durationMs: 600000,
      });
      workload.done.catch(() => undefined);
      setTimeout(() => process.exit(2), 100);`;

    // Act: 'close' comes once the orphaned workload process has exited too
    const { code, stderr } = await finished(
      spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', run], {
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );

    // Assert
    expect(code).toBe(2);
    expect(stderr).not.toMatch(STACK);
    expect(sockets.size).toBe(0);
  }, 30_000);
});
