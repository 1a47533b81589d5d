/**
 * behalf's CLI as separate processes, the way it is deployed: `behalf serve` on a port the OS
 * picks (BEHALF_PORT=0, the address read from the "behalf is listening" log line), and one-shot
 * commands such as `behalf sweep`. Every process started here is killed when the test process
 * exits, whatever happened to the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const CLI = ['--import', 'tsx', join(import.meta.dirname, '../../src/cli/main.ts')];
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export interface ServeProcess {
  /** e.g. http://127.0.0.1:43123 */
  url: string;
  pid: number;
  /** The last lines the process wrote (stdout and stderr), for failure messages. */
  output(): string;
  /** Everything the process wrote to each stream so far; empty unless started with `record: true`. */
  written(): { stdout: string; stderr: string };
  /** SIGTERM (a clean close), then SIGKILL if it has not exited within a few seconds. */
  stop(): Promise<void>;
}

function spawnCli(
  args: string[],
  env: Record<string, string>,
  record = false,
): { child: ChildProcess; output: () => string; written: () => { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [...CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(
      ...chunk
        .toString()
        .split('\n')
        .filter((line) => line !== ''),
    );
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  if (record) {
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
  }
  return {
    child,
    output: () => lines.join('\n'),
    written: () => ({ stdout: Buffer.concat(stdout).toString(), stderr: Buffer.concat(stderr).toString() }),
  };
}

async function exited(child: ChildProcess, withinMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), withinMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/**
 * Start `behalf serve` with `env` (BEHALF_* settings; the port and host are set here) and wait
 * until it listens. Fails with the process's output if it exits or does not listen in time.
 * `logLevel` is BEHALF_LOG_LEVEL (default info: the "listening" line is read from the log);
 * `record` keeps everything it writes, for written().
 */
export async function startServeProcess(
  env: Record<string, string>,
  options: { startTimeoutMs?: number; logLevel?: 'info' | 'debug' | 'trace'; record?: boolean } = {},
): Promise<ServeProcess> {
  const { child, output, written } = spawnCli(
    ['serve'],
    { ...env, BEHALF_PORT: '0', BEHALF_HOST: '127.0.0.1', BEHALF_LOG_LEVEL: options.logLevel ?? 'info' },
    options.record,
  );
  const stop = async () => {
    child.kill('SIGTERM');
    if (!(await exited(child, 5_000))) {
      child.kill('SIGKILL');
      await exited(child, 5_000);
    }
  };
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(
      () => done(new Error('did not start listening in time')),
      options.startTimeoutMs ?? 60_000,
    );
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        try {
          const record = JSON.parse(line) as { msg?: string; url?: string };
          if (record.msg === 'behalf is listening' && typeof record.url === 'string')
            done(undefined, record.url);
        } catch {
          // not a log line
        }
      }
    };
    const onExit = () => done(new Error('exited before listening'));
    function done(error: Error | undefined, found?: string) {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      if (error === undefined) resolve(found!);
      else reject(error);
    }
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  }).catch(async (error: Error) => {
    await stop();
    throw new Error(`behalf serve ${error.message}:\n${output()}`);
  });
  return { url, pid: child.pid!, output, written, stop };
}

/** Run one behalf command to its end; its exit code and output. */
export async function runCliProcess(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 60_000,
): Promise<{ code: number | null; output: string }> {
  const { child, output } = spawnCli(args, env);
  if (!(await exited(child, timeoutMs))) {
    child.kill('SIGKILL');
    await exited(child, 5_000);
    throw new Error(`behalf ${args.join(' ')} did not finish within ${timeoutMs} ms:\n${output()}`);
  }
  return { code: child.exitCode, output: output() };
}
