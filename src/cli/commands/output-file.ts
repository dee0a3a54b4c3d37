/**
 * Files a command writes after a long run (`probe --json/--html`, `lab run --decisions`): checked
 * before the run, so a typo in the path costs nothing, and written whole or not at all.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileErrorWhy } from '../../config/errors.js';
import { UsageError } from '../errors.js';
import { printable } from '../terminal.js';
import { replaceFile } from '../../shared/data-file.js';

/**
 * Before the run: `flag PATH: why` (one line, exit 2) when PATH is a directory or its directory
 * does not exist. Permission is found out when writing (root may write anywhere). The path is
 * echoed through printable(): a name holding control characters or escape sequences (pasted, or
 * from a script) cannot move the cursor or recolour the terminal.
 */
export function checkOutputFile(path: string, flag: string): void {
  const fail = (why: string): never => {
    throw new UsageError(`${flag} ${printable(path)}: ${why}`, 'ERR_INPUT');
  };
  if (path.trim() === '') fail('an empty file name');
  const dir = dirname(resolve(path));
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (err) {
    return fail(
      `its directory ${printable(dir)}: ${fileErrorWhy(err).replace('no such file', 'does not exist')}`,
    );
  }
  if (!isDir) fail(`${printable(dir)} is not a directory`);
  try {
    if (statSync(path).isDirectory()) fail('is a directory, not a file');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // Not there yet: it will be created.
  }
}

/** Write the whole file or nothing (a temporary file renamed into place), readable by the user only. */
export async function writeWhole(path: string, text: string): Promise<void> {
  try {
    await replaceFile(path, text);
  } catch (err) {
    throw new UsageError(
      `${printable(path)}: ${fileErrorWhy(err).replace(/^cannot read/, 'cannot write')}`,
      'ERR_INPUT',
    );
  }
}
