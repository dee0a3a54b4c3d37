/**
 * A throwaway lab certificate authority, made with the `openssl` CLI in a temporary directory at
 * runtime (works on any Debian machine with openssl installed). One leaf certificate covers every
 * lab site name.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CodedError } from '../shared/errors.js';

const run = promisify(execFile);

export interface LabCertificates {
  /** PEM of the lab CA certificate (clients trust this). */
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export type LabCaErrorCode =
  | 'ERR_LAB_CA_NAMES' // asked for a certificate with no names
  | 'ERR_OPENSSL_MISSING' // the openssl command is not installed
  | 'ERR_OPENSSL'; // openssl ran and failed

export class LabCaError extends CodedError<LabCaErrorCode> {
  override readonly name = 'LabCaError';
}

export async function makeLabCertificates(names: readonly string[]): Promise<LabCertificates> {
  if (names.length === 0)
    throw new LabCaError('ERR_LAB_CA_NAMES', 'makeLabCertificates needs at least one name');
  const dir = await mkdtemp(join(tmpdir(), 'ladder-lab-ca-'));
  const p = (f: string): string => join(dir, f);
  const openssl = async (args: string[]): Promise<void> => {
    try {
      await run('openssl', args, { timeout: 20_000 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string };
      if (e.code === 'ENOENT')
        throw new LabCaError(
          'ERR_OPENSSL_MISSING',
          'the lab needs the `openssl` command (apt-get install openssl)',
          { cause: err },
        );
      throw new LabCaError('ERR_OPENSSL', `openssl ${args[0]} failed: ${e.stderr ?? e.message}`, {
        cause: err,
      });
    }
  };
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    await openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      p('ca.key'),
      '-out',
      p('ca.crt'),
      '-days',
      '3',
      '-subj',
      '/CN=Ladder Lab CA',
    ]);
    await openssl([
      'req',
      ...ec,
      '-keyout',
      p('leaf.key'),
      '-out',
      p('leaf.csr'),
      '-subj',
      `/CN=${names[0]}`,
    ]);
    await writeFile(
      p('ext.cnf'),
      `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
    );
    await openssl([
      'x509',
      '-req',
      '-in',
      p('leaf.csr'),
      '-CA',
      p('ca.crt'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-out',
      p('leaf.crt'),
      '-days',
      '3',
      '-extfile',
      p('ext.cnf'),
    ]);
    const [ca, cert, key] = await Promise.all([
      readFile(p('ca.crt')),
      readFile(p('leaf.crt')),
      readFile(p('leaf.key')),
    ]);
    return { ca, cert, key };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
