#!/usr/bin/env node
// Entry point. Runs the compiled CLI from dist/ when it has been built (npm run build),
// otherwise runs the TypeScript sources through tsx, so a fresh clone works without a build step.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const built = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
if (existsSync(built) && process.env.LADDER_FROM_SOURCE !== '1') {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('../src/cli/main.ts', import.meta.url).href);
}
