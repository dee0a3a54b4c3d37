#!/usr/bin/env node
// Entry point. In a source checkout (src/ present) it runs the TypeScript sources through tsx, so
// a fresh clone works without a build step and a stale dist/ can never shadow the sources.
// An installed package (only bin/ and dist/ are published) runs the compiled dist/.
// LADDER_DIST=1 forces dist/ in a checkout (after `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(fileURLToPath(source)) && process.env.LADDER_DIST !== '1') {
  const { register } = await import('tsx/esm/api');
  register();
  await import(source.href);
} else {
  await import(pathToFileURL(built).href);
}
