import { isProtocolError } from '../protocol/errors.js';
import { checkKey, checkMethod } from '../protocol/shadowsocks/key-material.js';

/**
 * What is wrong with a key's method or password as a config file gives them (the server's
 * `keys[]`, the client's SIP008 `servers[]`): the field and the protocol's message, which never
 * contains the password (2022 methods need base64 PSKs of the exact key size); undefined when both
 * are usable. The method is checked first: a password means nothing without it.
 */
export function keyFieldIssue(
  method: string,
  password: string,
): { path: 'method' | 'password'; message: string } | undefined {
  try {
    checkMethod(method);
  } catch (err) {
    return { path: 'method', message: isProtocolError(err) ? err.message : 'unusable method' };
  }
  try {
    checkKey(method, password);
  } catch (err) {
    return { path: 'password', message: isProtocolError(err) ? err.message : 'unusable key' };
  }
  return undefined;
}
