/**
 * The one seam between the Shadowsocks codecs and the AEAD implementation under them. Two
 * backends implement CipherBackend with the same bytes and the same errors: node:crypto
 * (cipher-node.ts) and the native addon (cipher-native.ts, one reusable OpenSSL context per
 * direction and the chunking loops in C++). The choice is made once, when this module loads, and
 * again only when setNativeEnabled() (native.ts; LADDER_NATIVE=0 in the CLI) changes it; codecs
 * call cipher() once per codec object (per datagram for the stateless UDP codecs) and never look
 * at which backend they got.
 */
import type { CipherBackend } from './cipher-types.js';
import { nativeAddon, whenNativeToggled } from './native.js';
import { nodeCipher } from './cipher-node.js';
import { createNativeCipher } from './cipher-native.js';

export type * from './cipher-types.js';
export { MAX_PAYLOAD, SIP004_BAD_LENGTH, SIP004_WRONG_KEY, TAG } from './cipher-types.js';

let nativeCipher: CipherBackend | undefined; // built once: native.ts loads the addon only once

function pick(): CipherBackend {
  const addon = nativeAddon();
  return addon ? (nativeCipher ??= createNativeCipher(addon)) : nodeCipher;
}

let active = pick();
whenNativeToggled(() => {
  active = pick();
});

/** The backend in use: the native addon when it is loaded and enabled, else node:crypto. */
export function cipher(): CipherBackend {
  return active;
}
