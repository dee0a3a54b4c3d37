import { Writable } from 'node:stream';

/**
 * The log destination of a starting server: JSON lines below warn (the data plane's "listening",
 * the start's one "keys updated") are held until the banner is on the screen, so the banner
 * comes first; warnings and errors pass at once. `release()` writes what was held, in order, and
 * lets everything through from then on.
 */
export class StartupLog extends Writable {
  #held: string[] | undefined = [];

  constructor(private readonly out: NodeJS.WritableStream = process.stderr) {
    super();
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    const text = chunk.toString();
    if (this.#held && !isWarnOrWorse(text)) this.#held.push(text);
    else this.out.write(text);
    done();
  }

  /** Write the held lines and stop holding (idempotent). */
  release(): void {
    const held = this.#held;
    this.#held = undefined;
    if (held?.length) this.out.write(held.join(''));
  }
}

/** pino's numeric levels: 40 warn, 50 error, 60 fatal. */
function isWarnOrWorse(line: string): boolean {
  const m = /"level":(\d+)/.exec(line);
  return m !== null && Number(m[1]) >= 40;
}
