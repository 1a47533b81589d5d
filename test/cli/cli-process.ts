/**
 * The CLI as a child process, for the tests in this folder: run a command to its end, or start a
 * long-running one and wait until its output says it is ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// tsx by its path, not its name: a command run in a temporary folder must still find it.
const TSX = pathToFileURL(join(import.meta.dirname, '../../node_modules/tsx/dist/loader.mjs')).href;
const CLI = ['--import', TSX, join(import.meta.dirname, '../../src/cli/main.ts')];

export interface CliOptions {
  env?: Record<string, string>;
  /** The working folder (local mode's data lives in ./.behalf under it). */
  cwd?: string;
}

function spawnCli(args: string[], options: CliOptions): ChildProcess {
  return spawn(process.execPath, [...CLI, ...args], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
}

/** Run a command to its end. */
export function run(
  args: string[],
  env: Record<string, string> = {},
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawnCli(args, { env, ...(cwd === undefined ? {} : { cwd }) });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Start a long-running command and wait until its output matches `ready` (60 s: these machines are busy). */
export function start(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
  cwd?: string,
): Promise<{ child: ChildProcess; output: () => string; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    const child = spawnCli(args, { env, ...(cwd === undefined ? {} : { cwd }) });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`not ready: ${output}`));
    }, 60_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const match = ready.exec(output);
      if (match !== null) {
        clearTimeout(timer);
        resolve({ child, output: () => output, match });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited ${code}: ${output}`));
    });
  });
}

/** SIGTERM, and the exit code. */
export function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGTERM');
  });
}
