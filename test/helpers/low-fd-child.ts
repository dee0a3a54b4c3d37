/**
 * A child process run under a low descriptor limit (`ulimit -n`), spoken to by lines: it prints
 * its port first, then answers each line written to it with one JSON line (the EMFILE tests:
 * test/server/native-accept.test.ts, test/client/native-socks-emfile.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface LowFdChild {
  readonly child: ChildProcess;
  /** The port the child printed first. */
  readonly port: number;
  /** Writes `line`, resolves with the child's JSON answer. */
  ask<T>(line: string): Promise<T>;
  /** Ends the child's stdin (it closes and exits) and waits for its exit. */
  stop(): Promise<void>;
}

export async function startLowFdChild(script: string, limit: number): Promise<LowFdChild> {
  const child = spawn('bash', ['-c', `ulimit -n ${limit} && exec node --import tsx ${script}`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done) throw new Error(`${script} ended`);
    return r.value as string;
  };
  const stop = async (): Promise<void> => {
    child.stdin!.end();
    await new Promise((res) => (child.exitCode !== null ? res(undefined) : child.on('exit', res)));
  };
  try {
    const port = Number(await next());
    return {
      child,
      port,
      async ask<T>(line: string): Promise<T> {
        child.stdin!.write(`${line}\n`);
        return JSON.parse(await next()) as T;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
