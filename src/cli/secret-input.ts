/**
 * A secret given as `-` on the command line is read here from standard input, one line, so it is
 * in neither the process list (`ps`, /proc/PID/cmdline) nor the shell's history:
 *   printf '%s\n' "$SECRET" | ladder keys rotate 3 --password -
 * or typed at a prompt (not echoed) when standard input is a terminal.
 */
import { StringDecoder } from 'node:string_decoder';
import { UsageError } from './errors.js';

/** The longest line read (a 2022 "iPSK:uPSK" is under 100 characters; the API takes 512). */
const MAX_LINE = 4096;

type Input = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

/**
 * One line of `input` (its line end removed). `what` names the option in errors
 * ("--password -: …"). A terminal gets a prompt on `prompt` and its typing is not echoed.
 */
export async function readSecretLine(
  what: string,
  input: Input = process.stdin,
  prompt: NodeJS.WritableStream = process.stderr,
): Promise<string> {
  const line =
    input.isTTY && input.setRawMode ? await fromTerminal(what, input, prompt) : await fromPipe(what, input);
  if (line === '') throw new UsageError(`${what}: the line read from standard input is empty`);
  return line;
}

async function fromPipe(what: string, input: Input): Promise<string> {
  let text = '';
  const utf8 = new StringDecoder('utf8'); // a character split between two chunks stays whole
  for await (const chunk of input) {
    text += typeof chunk === 'string' ? chunk : utf8.write(chunk as Buffer);
    const end = text.indexOf('\n');
    if (end >= 0) return trimLine(what, text.slice(0, end));
    if (text.length > MAX_LINE) break;
  }
  if (text === '')
    throw new UsageError(
      `${what}: nothing on standard input (pipe one line, e.g. printf '%s\\n' "$SECRET" | ladder … ${what})`,
    );
  return trimLine(what, text); // the last line without a line end
}

function trimLine(what: string, line: string): string {
  if (line.length > MAX_LINE) throw new UsageError(`${what}: the line is longer than ${MAX_LINE} characters`);
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Read keystrokes with echo off until Enter; Ctrl-C or Ctrl-D on an empty line cancels. */
function fromTerminal(what: string, input: Input, prompt: NodeJS.WritableStream): Promise<string> {
  prompt.write(`${what}: type the secret and press Enter (it is not shown): `);
  input.setRawMode!(true);
  return new Promise<string>((resolve, reject) => {
    let line = '';
    const utf8 = new StringDecoder('utf8');
    const done = (err: Error | undefined): void => {
      input.removeListener('data', onData);
      input.setRawMode!(false);
      input.pause();
      prompt.write('\n');
      if (err) reject(err);
      else resolve(line);
    };
    const onData = (chunk: Buffer | string): void => {
      for (const ch of typeof chunk === 'string' ? chunk : utf8.write(chunk)) {
        if (ch === '\r' || ch === '\n') return done(undefined);
        if (ch === '\u0003' || (ch === '\u0004' && line === ''))
          return done(new UsageError(`${what}: cancelled`));
        if (ch === '\u007f' || ch === '\b') line = line.slice(0, -1);
        else if (ch >= ' ') line += ch;
        if (line.length > MAX_LINE)
          return done(new UsageError(`${what}: the line is longer than ${MAX_LINE} characters`));
      }
    };
    input.on('data', onData);
    input.resume();
  });
}
