import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const tsx = join('node_modules', '.bin', 'tsx');

export interface ToolOutput {
  stdout: string;
  stderr: string;
  code: number;
}

/** One of the project's commands as a user runs it (`tsx <script> <args>`): its exit code and output, never a throw. */
export async function runTool(script: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<ToolOutput> {
  try {
    const { stdout, stderr } = await run(tsx, [script, ...args], {
      maxBuffer: 64 * 1024 * 1024,
      ...(env ? { env: { ...process.env, ...env } } : {}),
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
