#!/usr/bin/env node
// Builds the operator's dashboard (web/src, Preact) into web/dist: index.html, and under
// assets/ the script and style with a content hash in their names (served with a year-long
// immutable cache) plus a .br and a .gz beside each file (served precompressed). Run by
// scripts/build.mjs, so `npm install` / `npm ci` (prepare) and `npm run build` build it; the
// dashboard tests call buildWeb() into a temporary folder. Types are checked by `npm run typecheck`.
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Build into `outDir` (default web/dist), replacing it only once the new build is complete. */
export async function buildWeb(outDir = join(root, 'web', 'dist')) {
  const esbuild = createRequire(join(root, 'package.json'))('esbuild');
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: [join(root, 'web', 'src', 'main.tsx')],
      outdir: join(tmp, 'assets'),
      entryNames: '[name]-[hash]',
      chunkNames: '[name]-[hash]',
      assetNames: '[name]-[hash]',
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'browser',
      target: ['chrome109', 'firefox115', 'safari15'],
      jsx: 'automatic',
      jsxImportSource: 'preact',
      minify: true,
      sourcemap: false,
      metafile: true,
      legalComments: 'none',
      logLevel: 'warning',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    const outputs = Object.keys(result.metafile.outputs).map((p) => p.split('/').pop());
    const js = outputs.find((f) => /^main-.*\.js$/.test(f));
    const css = outputs.find((f) => /^main-.*\.css$/.test(f));
    if (!js || !css) throw new Error('the bundle has no main script or style');
    const html = readFileSync(join(root, 'web', 'index.html'), 'utf8')
      .replace('%SCRIPT%', `assets/${js}`)
      .replace('%STYLE%', `assets/${css}`);
    writeFileSync(join(tmp, 'index.html'), html);
    const compress = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) compress(p);
        else if (/\.(js|css|html|svg)$/.test(e.name)) {
          const raw = readFileSync(p);
          writeFileSync(`${p}.gz`, gzipSync(raw, { level: 9 }));
          writeFileSync(
            `${p}.br`,
            brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
          );
        }
      }
    };
    compress(tmp);
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(dirname(outDir), { recursive: true });
    renameSync(tmp, outDir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await buildWeb(process.argv[2]);
  } catch (err) {
    console.error(`build-web: ${String(err.message).split('\n')[0]}`);
    process.exit(1);
  }
}
