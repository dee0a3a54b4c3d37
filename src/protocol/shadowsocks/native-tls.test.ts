// The addon's thread-local storage stays small. The addon is loaded with dlopen, so glibc gives
// each thread that first touches any of its thread_locals (a relay's loop, a key trial's one-shot
// context, the salt block) the whole TLS block at once, allocated and zeroed: every byte of it is
// resident in every such thread (the main thread and each data-plane worker), whether or not the
// thread ever runs the code whose buffer it is. Large scratch buffers belong on the heap, made on
// first use (udp_fastpath.cc ThreadBuffer). Read from the ELF file's PT_TLS program header; skips
// loudly without a built addon (fails under CI=true).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nativeAvailable, nativeLoadError } from './native.js';
import { requireOrSkip } from '../../../test/helpers/prereq.js';

const ADDON = fileURLToPath(new URL('../../../build/Release/ladder_aead.node', import.meta.url));
const PT_TLS = 7;
/** What the addon's own per-thread state needs (pools, the salt block, pointers) with room to spare. */
const LIMIT = 16 * 1024;

/** The memory size of the PT_TLS segment of a little-endian ELF64 file (0 when it has none). */
function tlsSize(elf: Buffer): number {
  assert.equal(elf.toString('latin1', 0, 4), '\x7fELF', 'an ELF file');
  assert.deepEqual([elf[4], elf[5]], [2, 1], 'ELF64, little-endian');
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (elf.readUInt32LE(o) === PT_TLS) return Number(elf.readBigUInt64LE(o + 0x28)); // p_memsz
  }
  return 0;
}

test('the addon’s TLS block, allocated and zeroed whole in every thread that uses the addon, stays small', (t) => {
  if (!requireOrSkip(t, nativeAvailable(), `native addon unavailable (${nativeLoadError() ?? 'unknown'})`))
    return;
  if (!requireOrSkip(t, process.platform === 'linux', 'an ELF addon (Linux)')) return;
  const size = tlsSize(readFileSync(ADDON));
  assert.ok(size > 0, 'the addon has thread_locals');
  assert.ok(size <= LIMIT, `PT_TLS is ${size} bytes (limit ${LIMIT}): a large thread_local array?`);
});
