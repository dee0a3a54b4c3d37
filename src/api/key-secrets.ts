import { isProtocolError } from '../protocol/errors.js';
import { checkKey, generateSecret } from '../protocol/shadowsocks/key-material.js';
import {
  getAead2022Method,
  isAead2022MethodName,
  parsePsk2022,
} from '../protocol/shadowsocks/methods2022.js';
import type { KeyWriteCheck, Store } from '../store/index.js';

/**
 * How a new key's secret is chosen, for every edition:
 * - SIP004 methods: a generated password, or the caller's (any non-empty text);
 * - 2022 methods, multi-user (SIP023, the default for the AES methods): "iPSK:uPSK", where iPSK
 *   is the server's identity PSK for the method (made once, kept in the store) and uPSK the key's
 *   own PSK. Every such key of one method shares the one port as one identity group, found by its
 *   identity header in O(1). A caller's password is the uPSK alone, or a whole "iPSK:uPSK";
 * - 2022 methods, single-user (`multiUser: false`, and always for 2022-blake3-chacha20-poly1305,
 *   which has no identity headers): one PSK, tried directly by the server.
 * Every PSK is base64 of exactly the method's key size. Messages never contain a secret.
 */
export interface SecretRequest {
  method: string;
  /** Caller-chosen password (one key). */
  password?: string | undefined;
  /** 2022 methods only: SIP023 identity (default true where the method supports it). */
  multiUser?: boolean | undefined;
}

export class KeySecretError extends Error {
  override readonly name = 'KeySecretError';
  constructor(
    readonly field: 'password' | 'multiUser',
    message: string,
    /** The secret is usable but another key has it (the API's 409 rather than 400). */
    readonly conflict = false,
  ) {
    super(message);
  }
}

/**
 * The check (run by the store in the write's own transaction, so two writes cannot both pass)
 * that throws KeySecretError (a conflict) when another key than `exceptId` has this method and
 * secret: two such keys cannot be told apart on the wire (trial decryption takes the first; the
 * data plane skips a second 2022 key with the same PSKs), so the second would be billed as, or
 * never work beside, the first. Made only for a caller-chosen secret (a generated one is new).
 */
export function secretFree(method: string, secret: string, exceptId?: string): KeyWriteCheck {
  const wire = wireSecret(method, secret);
  return {
    method,
    check(keys) {
      const owner = keys.find((k) => k.id !== exceptId && wireSecret(method, k.secret) === wire);
      if (owner)
        throw new KeySecretError(
          'password',
          `access key ${JSON.stringify(owner.id)} already uses this password with ${method}; two keys with one secret cannot be told apart`,
          true,
        );
    },
  };
}

/**
 * A secret as the wire sees it: a 2022 secret's PSKs decoded (base64 or base64url, padding and
 * spaces optional: one PSK has many spellings), a SIP004 password as it is. Two keys whose
 * wireSecret is equal cannot be told apart by the data plane.
 */
export function wireSecret(method: string, secret: string): string {
  if (!isAead2022MethodName(method)) return secret;
  try {
    const p = parsePsk2022(getAead2022Method(method), secret);
    return [...p.identityKeys, p.userKey].map((k) => k.toString('hex')).join(':');
  } catch {
    return secret; // not a valid 2022 secret (refused elsewhere): compared as written
  }
}

export interface SecretPlan {
  /** The caller's secret in its stored form, when one was given. */
  secret: string | undefined;
  /** Makes a fresh secret per key otherwise. */
  makeSecret: () => string;
}

/** True when a stored 2022 secret is a SIP023 multi-user one ("iPSK:uPSK"). */
export function isMultiUserSecret(method: string, secret: string): boolean {
  return isAead2022MethodName(method) && secret.includes(':');
}

/** Decide how the secrets of new keys are made; throws KeySecretError for an unusable request. */
export async function planSecrets(store: Store, req: SecretRequest): Promise<SecretPlan> {
  const { method, password } = req;
  if (!isAead2022MethodName(method)) {
    if (req.multiUser !== undefined)
      throw new KeySecretError('multiUser', `multiUser is for 2022-blake3-* methods, not ${method}`);
    if (password !== undefined) checkSecret(method, password);
    return { secret: password, makeSecret: () => generateSecret(method) };
  }
  const m = getAead2022Method(method);
  if (req.multiUser === true && !m.supportsIdentity)
    throw new KeySecretError(
      'multiUser',
      `${method} has no identity headers (SIP023), so its keys are single-user; use an AES 2022 method for multi-user keys`,
    );
  const multiUser = req.multiUser ?? m.supportsIdentity;
  if (!multiUser) {
    if (password?.includes(':'))
      throw new KeySecretError('password', 'a single-user 2022 key is one base64 PSK, without "iPSK:"');
    if (password !== undefined) checkSecret(method, password);
    return { secret: password, makeSecret: () => generateSecret(method) };
  }
  const parts = password?.split(':') ?? [];
  if (parts.length > 2)
    throw new KeySecretError('password', 'a server key has at most one identity PSK ("iPSK:uPSK")');
  const identity =
    parts.length === 2 ? parts[0]! : await store.identityKey(method, () => generateSecret(method));
  const secret = password === undefined ? undefined : `${identity}:${parts[parts.length - 1]!}`;
  if (secret !== undefined) checkSecret(method, secret);
  return { secret, makeSecret: () => `${identity}:${generateSecret(method)}` };
}

/** Throws KeySecretError (field "password") when `secret` cannot be used with `method`. */
export function checkSecret(method: string, secret: string): void {
  try {
    checkKey(method, secret);
  } catch (err) {
    // checkKey's messages never contain the secret.
    throw new KeySecretError('password', isProtocolError(err) ? err.message : 'unusable key');
  }
}

/**
 * A key's next secret for rotation (POST /access-keys/{id}/rotate, `ladder keys rotate`): the
 * caller's `password`, else a fresh one, of the key's kind: a 2022 key stays single-user, or
 * multi-user with the identity PSK it has (the server's, or one its creator chose; a `password`
 * that is a uPSK alone gets it too, a whole "iPSK:uPSK" is taken as given). Throws
 * KeySecretError when it is unusable or unchanged; `check`, for the store's updateKey, when it
 * is another key's.
 */
export async function rotatedSecret(
  store: Store,
  key: { id: string; method: string; secret: string },
  password?: string,
): Promise<{ secret: string; check: KeyWriteCheck | undefined }> {
  const multiUser = isAead2022MethodName(key.method) ? isMultiUserSecret(key.method, key.secret) : undefined;
  let chosen = password;
  if (multiUser && !password?.includes(':')) {
    const identity = key.secret.slice(0, key.secret.indexOf(':'));
    chosen = `${identity}:${password ?? generateSecret(key.method)}`;
  }
  const plan = await planSecrets(store, { method: key.method, password: chosen, multiUser });
  const secret = plan.secret ?? plan.makeSecret();
  if (wireSecret(key.method, secret) === wireSecret(key.method, key.secret))
    throw new KeySecretError('password', "it is the key's current secret");
  return { secret, check: password !== undefined ? secretFree(key.method, secret, key.id) : undefined };
}
