#!/usr/bin/env python3
"""OpenSSL's instructions per connection in the addon, from bench/conn-cost.ts's kept callgrind dumps.

    node --import tsx bench/conn-cost.ts --callgrind --keep     # prints the dump directory
    python3 bench/callgrind-openssl.py DIR [N]                  # N: the measured connections (300)

For each process (client, server) of the measured dump (cg.PID.1-*, every thread): the inclusive
cost of the calls the addon (ladder_aead.node) makes into OpenSSL (EVP_*, SHA1_*, RAND_*,
OPENSSL_*, CRYPTO_*), by callee, and the addon's own parts inclusive (HKDF, codec set-up and end,
AEAD operations), per connection. Under valgrind OpenSSL sees no SHA extensions (SHA-1 runs its
AVX2 code), so the SHA-1 compressions count more instructions than they run natively.
"""
import collections
import glob
import os
import re
import sys

NAME = re.compile(r'^(fl|fi|fe|fn|cfn|cfl|cfi|ob|cob)=\((\d+)\)(?: (.*))?$')
KIND = {'fl': 'fl', 'fi': 'fl', 'fe': 'fl', 'cfl': 'fl', 'cfi': 'fl', 'fn': 'fn', 'cfn': 'fn', 'ob': 'ob', 'cob': 'ob'}
OPENSSL = re.compile(r'^(EVP_|RAND_|SHA1_|OPENSSL_|CRYPTO_)')
PARTS = {
    'HKDF-SHA1': r'^ladder::HkdfSha1\(',
    'codec set-up': r'AllocCodec',
    'codec end': r'FreeCodec|^ladder::PoolGive',
    'AEAD operations': r'SealOne|OpenOne|OpenTagged',
}


def calls_of(path):
    """(caller, caller object, callee, callee object) -> inclusive cost, from one dump (compressed names)."""
    names = {'fl': {}, 'fn': {}, 'ob': {}}
    ob = fn = cob = cfn = None
    fn_ob = {}
    pending = False
    out = collections.Counter()
    with open(path, errors='replace') as f:
        for line in f:
            m = NAME.match(line.rstrip('\n'))
            if m:
                k, i, name = m.groups()
                table = names[KIND[k]]
                if name is not None:
                    table[i] = name
                v = table.get(i, '?')
                if k == 'ob':
                    ob = v
                elif k == 'fn':
                    fn = v
                    fn_ob.setdefault(fn, ob)
                    cob = None
                elif k == 'cob':
                    cob = v
                elif k == 'cfn':
                    cfn = v
                continue
            if line.startswith('calls='):
                pending = True
            elif pending and line[:1].isdigit():
                parts = line.split()
                if len(parts) >= 2:
                    out[(fn, fn_ob.get(fn), cfn, cob or fn_ob.get(fn))] += int(parts[1])
                pending = False
                cob = None
    return out


def main():
    d = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    pids = sorted({m.group(1) for f in os.listdir(d) if (m := re.match(r'^cg\.(\d+)\.1-\d+$', f))})
    for pid in pids:
        cmd = ''
        for f in glob.glob(os.path.join(d, f'cg.{pid}-*')) + glob.glob(os.path.join(d, f'cg.{pid}.1-*')):
            with open(f, errors='replace') as h:
                cmd = next((l for l in h if l.startswith('cmd:')), '') or cmd
            if cmd:
                break
        role = 'server' if ' server ' in cmd else 'client' if ' client ' in cmd else '?'
        by_callee = collections.Counter()
        parts = collections.Counter()
        for f in glob.glob(os.path.join(d, f'cg.{pid}.1-*')):
            for (a, aob, b, bob), c in calls_of(f).items():
                if aob and 'ladder_aead' in aob and bob and 'ladder_aead' not in bob and OPENSSL.match(b or ''):
                    by_callee[b] += c
                for k, p in PARTS.items():
                    if b and re.search(p, b) and not (a and re.search(p, a)):
                        parts[k] += c
        print(f'{role} (pid {pid}): OpenSSL called by the addon {sum(by_callee.values()) / n / 1000:.1f}k a connection')
        print('  ' + ', '.join(f'{k} {v / n / 1000:.1f}k' for k, v in parts.items()))
        print('  ' + ', '.join(f'{k} {v / n / 1000:.1f}k' for k, v in by_callee.most_common(8)))


main()
