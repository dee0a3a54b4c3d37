import { randomBytes } from 'node:crypto';

/**
 * A fresh secret for a new key: for SIP022 (`2022-*`) a base64 PSK of the cipher's key size, else a
 * 22-character password like Outline's (16 random bytes, base64url without padding).
 */
export function generateSecret(method: string): string {
  if (method.startsWith('2022-')) {
    const size = method.includes('aes-128') ? 16 : 32;
    return randomBytes(size).toString('base64');
  }
  return randomBytes(16).toString('base64url');
}
