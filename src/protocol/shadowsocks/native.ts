/**
 * Loader of the optional native addon (native/*.cc, module.cc first; built by scripts/build-native.mjs
 * into build/Release/ladder_aead.node), and the switch that turns it off. cipher-native.ts wraps
 * its AEAD functions as a CipherBackend (cipher.ts); src/transport/native-sockets.ts reads its
 * socket functions from nativeAddon(), so nothing here does I/O.
 *
 * When the addon is missing, fails to load or fails its check (a stale build reports another
 * ABI number), nativeAvailable() is false and the codecs use node:crypto; nothing else changes.
 * The CLI turns it off with setNativeEnabled(false) (LADDER_NATIVE=0); this module reads no
 * environment.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { AeadMethod } from './methods.js';

/** The addon's AEAD functions (see the comments at the top of native/stream_codec.cc and oneshot.cc). */
export interface NativeAddon {
  abiVersion: number;
  available(method: number): boolean;
  create(
    method: number,
    key: Uint8Array,
    encrypt: boolean,
    maxPayload?: number,
    minPayload?: number,
    nonceStart?: number,
  ): object;
  /** create() keyed with hkdfSha1(masterKey, salt), derived in C++ (not in every build: optional). */
  createSalted?(
    method: number,
    masterKey: Uint8Array,
    salt: Uint8Array,
    encrypt: boolean,
    maxPayload?: number,
    minPayload?: number,
    nonceStart?: number,
  ): object;
  encode(codec: object, data: Uint8Array, prefix?: Uint8Array): Buffer;
  decode(codec: object, data: Uint8Array, info: Int32Array): Buffer | number;
  decodeInPlace(codec: object, data: Uint8Array, info: Int32Array): number | [Buffer, number];
  createSession(method: number, key: Uint8Array): object;
  seal(codec: object, plain: Uint8Array): Buffer;
  sealInto(codec: object, plain: Uint8Array, out: Uint8Array, offset: number): number;
  open(codec: object, sealed: Uint8Array): Buffer | number;
  hkdfSha1(key: Uint8Array, salt: Uint8Array): Buffer;
  /** The SIP004 key trial and its decoder in one (native/stream_codec.cc); absent in older builds. */
  sip004Open?(method: number, masterKey: Uint8Array, head: Uint8Array, info: Int32Array): object | number;
  sealParts(
    method: number,
    key: Uint8Array,
    nonce: Uint8Array,
    prefix: Uint8Array | undefined,
    a: Uint8Array,
    b?: Uint8Array,
  ): Buffer;
  openAt(
    method: number,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    offset: number,
  ): Buffer | number;
  udpSeal(
    method: number,
    masterKey: Uint8Array,
    head: Uint8Array,
    payload: Uint8Array,
    out?: Uint8Array,
  ): Buffer | number;
  udpOpen(method: number, masterKey: Uint8Array, packet: Uint8Array, out?: Uint8Array): Buffer | number;
  /** glibc mallopt thresholds (native/common.cc); absent in builds before it was added. */
  tuneHeap?(trimBytes: number, mmapBytes: number): boolean;
  /** Every thread SCHED_BATCH (native/sched.cc); absent in builds before it was added. */
  schedBatch?(): number;
  /** libuv's idle-time measure on this thread (native/thread_poll.cc); absent in older builds. */
  loopIdleTime?(keep?: boolean): boolean;
  /** A last-resort GC of this thread's heap and malloc_trim (native/idle_memory.cc); absent in older builds. */
  releaseIdleMemory?(): boolean;
  /** Set-up cipher contexts of a method the calling thread keeps for reuse (native/oneshot.cc; tests). */
  ctxPoolSize?(method: number): number;
}

/** The addon ABI this module speaks (native/module.cc exports it as abiVersion). */
const ABI_VERSION = 8;

/** The addon's method number for each cipher (every addon function that takes a method). */
export const NATIVE_METHOD: Readonly<Record<AeadMethod['cipher'], number>> = {
  'aes-128-gcm': 0,
  'aes-256-gcm': 1,
  'chacha20-poly1305': 2,
  'aes-192-gcm': 3,
};

const ADDON_FILE = 'build/Release/ladder_aead.node';

/**
 * Where the addon may be: build/Release/ under the package root, which is some levels above this
 * module (src/protocol/shadowsocks/, a tsc-style dist/protocol/shadowsocks/, or the bundle's
 * dist/chunks/: every directory up to the filesystem root is a candidate); a copy compiled
 * somewhere under <root>/node_modules/ (the bench's cache) finds <root> before the node_modules
 * segment.
 */
function candidateUrls(): URL[] {
  const here = import.meta.url;
  const urls: URL[] = [];
  const nm = here.indexOf('/node_modules/');
  if (nm > 0) urls.push(new URL(`${here.slice(0, nm)}/${ADDON_FILE}`));
  for (let up = '../'; urls.length < 12; up += '../') {
    const url = new URL(`${up}${ADDON_FILE}`, here);
    if (urls.some((u) => u.href === url.href)) break; // reached the filesystem root
    urls.push(url);
  }
  return urls;
}

let addon: NativeAddon | null | undefined; // undefined: not tried yet; null: unavailable
let loadError: string | undefined;
let enabled = true;

function load(): NativeAddon | null {
  if (addon !== undefined) return addon;
  addon = null;
  const req = createRequire(import.meta.url);
  const errors: string[] = [];
  for (const url of candidateUrls()) {
    let mod: NativeAddon;
    try {
      mod = req(fileURLToPath(url)) as NativeAddon;
    } catch (err) {
      const code = (err as { code?: string }).code;
      errors.push(
        code === 'MODULE_NOT_FOUND' ? 'not built' : `load failed: ${(err as Error).message.split('\n')[0]}`,
      );
      continue;
    }
    if (mod.abiVersion !== ABI_VERSION || ![0, 1, 2, 3].every((m) => mod.available(m))) {
      errors.push('wrong addon version or a cipher is missing');
      continue;
    }
    addon = mod;
    loadError = undefined;
    return addon;
  }
  loadError = [...new Set(errors)].join('; ');
  return null;
}

/** True when the native addon is loaded and enabled: new codecs will use it. */
export function nativeAvailable(): boolean {
  return nativeAddon() !== null;
}

/**
 * The addon when it is loaded and enabled, else null: for cipher.ts, and for
 * src/transport/native-sockets.ts, which reads the socket functions it also exports.
 */
export function nativeAddon(): NativeAddon | null {
  return enabled ? load() : null;
}

let onToggle: (() => void) | undefined;

/** For cipher.ts: `f` runs after every setNativeEnabled(), to choose the backend again. */
export function whenNativeToggled(f: () => void): void {
  onToggle = f;
}

/** Turn the native addon on or off for codecs (and batched sockets) created from now on. */
export function setNativeEnabled(on: boolean): void {
  enabled = on;
  onToggle?.();
}

/**
 * The malloc thresholds a relay process runs with (tuneHeap in native/common.cc): keep up to
 * 128 MiB of free heap top instead of glibc's 128 KiB, and serve allocations below 1 MiB from the
 * heap. Every socket read and encoded write is a fresh 64 KiB buffer; with the defaults, frees at
 * the heap top went back to the kernel and came back as page faults, which cost a relay process
 * about half its CPU per GiB (docs/benchmarks.md, "After the restructure"). 128 MiB: V8 collects
 * dead ArrayBuffers in batches of up to its 64 MiB external-memory step, and a batch freed at once
 * must not be handed back. The price: memory freed after a burst stays with the process.
 */
export const RELAY_HEAP = { trimBytes: 128 * 1024 * 1024, mmapBytes: 1024 * 1024 } as const;

/**
 * Apply RELAY_HEAP to this process (process-wide; the CLI calls it once at start). False when
 * the addon is not in use, predates tuneHeap, or the C library is not glibc: nothing changes.
 */
export function tuneHeapForRelay(): boolean {
  const a = nativeAddon();
  return a?.tuneHeap ? a.tuneHeap(RELAY_HEAP.trimBytes, RELAY_HEAP.mmapBytes) : false;
}

/**
 * Give back what start-up left behind (releaseIdleMemory in native/idle_memory.cc): one
 * last-resort GC of this thread's V8 heap, then malloc_trim. The CLI calls it once start-up is
 * over, so an idle process is at once where V8's memory reducer would bring it some 8 s later
 * (2.7 MiB less RSS for a client or unmanaged server, ~6 MiB for a managed one). False when the
 * addon is not in use or predates it: nothing changes.
 */
export function releaseStartupMemory(): boolean {
  const a = nativeAddon();
  return a?.releaseIdleMemory ? a.releaseIdleMemory() : false;
}

/**
 * Every thread of this process SCHED_BATCH (schedBatch in native/sched.cc): a woken relay thread
 * then does not preempt the task that woke it (fewer context switches per short connection on a
 * shared CPU; a woken relay may wait for the running task's slice). Threads made later inherit
 * it. The number of threads set; 0 when the addon is not in use or predates schedBatch, -errno on
 * failure.
 */
export function schedBatchForRelay(): number {
  const a = nativeAddon();
  return a?.schedBatch ? a.schedBatch() : 0;
}

/**
 * This thread's event loop keeps measuring its idle time (what performance.eventLoopUtilization()
 * reads), also once the addon's epoll set is made on it: the set otherwise turns the measure off,
 * which saves libuv's zero-timeout poll before each sleep (loopIdleTime in native/thread_poll.cc).
 * Call it before the first eventLoopUtilization() whose figures matter. Nothing when the addon is
 * not in use.
 */
export function keepLoopIdleTime(): void {
  nativeAddon()?.loopIdleTime?.(true);
}

/** Why the addon is not in use (undefined when it is loaded, or not tried yet). */
export function nativeLoadError(): string | undefined {
  return loadError;
}
