import { ProtocolError } from '../errors.js';

/** The 2017-edition AEAD methods (SIP004). Stream ciphers are refused by design (D4). */
export type AeadMethodName = 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' | 'chacha20-ietf-poly1305';

export interface AeadMethod {
  readonly name: AeadMethodName;
  /** Key and salt length in bytes (equal for every SIP004 method). */
  readonly keySize: number;
  readonly saltSize: number;
  readonly tagSize: 16;
  /** The node:crypto cipher name. */
  readonly cipher: 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';
}

export const AEAD_METHODS: Readonly<Record<AeadMethodName, AeadMethod>> = Object.freeze({
  'aes-128-gcm': { name: 'aes-128-gcm', keySize: 16, saltSize: 16, tagSize: 16, cipher: 'aes-128-gcm' },
  'aes-192-gcm': { name: 'aes-192-gcm', keySize: 24, saltSize: 24, tagSize: 16, cipher: 'aes-192-gcm' },
  'aes-256-gcm': { name: 'aes-256-gcm', keySize: 32, saltSize: 32, tagSize: 16, cipher: 'aes-256-gcm' },
  'chacha20-ietf-poly1305': {
    name: 'chacha20-ietf-poly1305',
    keySize: 32,
    saltSize: 32,
    tagSize: 16,
    cipher: 'chacha20-poly1305',
  },
});

/** Methods some peers accept but we refuse: unauthenticated stream ciphers are probe-able (C7). */
const STREAM_CIPHERS = new Set([
  'rc4-md5',
  'aes-128-cfb',
  'aes-192-cfb',
  'aes-256-cfb',
  'aes-128-ctr',
  'aes-192-ctr',
  'aes-256-ctr',
  'camellia-128-cfb',
  'camellia-192-cfb',
  'camellia-256-cfb',
  'bf-cfb',
  'chacha20',
  'chacha20-ietf',
  'salsa20',
  'table',
  'none',
  'plain',
]);

export function isAeadMethodName(name: string): name is AeadMethodName {
  return Object.hasOwn(AEAD_METHODS, name);
}

/** Look up a SIP004 method, with an error that says why a name is refused. */
export function getAeadMethod(name: string): AeadMethod {
  if (isAeadMethodName(name)) return AEAD_METHODS[name];
  const lower = name.toLowerCase();
  if (STREAM_CIPHERS.has(lower)) {
    throw new ProtocolError(
      'ERR_METHOD',
      `method "${name}" is a stream cipher without authentication and is refused; use one of ${Object.keys(AEAD_METHODS).join(', ')}`,
    );
  }
  if (lower === 'xchacha20-ietf-poly1305') {
    throw new ProtocolError(
      'ERR_METHOD',
      `method "${name}" is not supported; use one of ${Object.keys(AEAD_METHODS).join(', ')}`,
    );
  }
  throw new ProtocolError(
    'ERR_METHOD',
    `unknown method "${name}"; expected one of ${Object.keys(AEAD_METHODS).join(', ')}`,
  );
}

/** Throws ERR_KEY unless `salt` has the method's salt length. */
export function checkSalt(method: AeadMethod, salt: Uint8Array): void {
  if (salt.length !== method.saltSize) {
    throw new ProtocolError('ERR_KEY', `salt must be ${method.saltSize} bytes for ${method.name}`);
  }
}
