import { randomBytes } from 'node:crypto';
import { ProtocolError, isProtocolError } from '../errors.js';
import { didYouMean } from '../near-miss.js';
import { AEAD_METHODS, getAeadMethod } from './methods.js';
import { AEAD_2022_METHODS, getAead2022Method, isAead2022MethodName, parsePsk2022 } from './methods2022.js';

/**
 * One place that says whether a (method, secret) pair is a usable key, for every edition:
 * SIP004 AEAD methods take any non-empty password; 2022 methods take base64 PSKs of exactly the
 * key size ("uPSK", or "iPSK:uPSK" with SIP023 identity). Errors never contain the secret.
 */

export const ALL_METHODS: readonly string[] = [
  ...Object.keys(AEAD_METHODS),
  ...Object.keys(AEAD_2022_METHODS),
];

/** Throws ERR_METHOD for stream ciphers and unknown names, listing every supported method. */
export function checkMethod(name: string): void {
  if (isAead2022MethodName(name)) return;
  try {
    if (name.startsWith('2022-'))
      getAead2022Method(name); // its own message (e.g. chacha8 not supported)
    else getAeadMethod(name);
  } catch (err) {
    // A misspelt name of either edition: every method, and the one it is closest to.
    if (isProtocolError(err) && /^unknown (2022 )?method/.test(err.message)) {
      throw new ProtocolError(
        'ERR_METHOD',
        `unknown method "${name}"${didYouMean(name, ALL_METHODS)}; expected one of ${ALL_METHODS.join(', ')}`,
      );
    }
    throw err;
  }
}

/** Throws ERR_METHOD or ERR_KEY when `secret` cannot be used with `method`. */
export function checkKey(method: string, secret: string): void {
  checkMethod(method);
  if (isAead2022MethodName(method)) {
    parsePsk2022(getAead2022Method(method), secret);
  } else if (secret.length === 0) {
    throw new ProtocolError('ERR_KEY', 'password must not be empty');
  }
}

/** A fresh strong secret in the form the method needs. */
export function generateSecret(method: string): string {
  checkMethod(method);
  if (isAead2022MethodName(method)) return randomBytes(getAead2022Method(method).keySize).toString('base64');
  return randomBytes(24).toString('base64url');
}
