/**
 * The yaml package, loaded on first use rather than with the process: the unmanaged server and a
 * client with a static key never carry it (idle memory; test/cli/lazy-loading.test.ts). The
 * subscription formats (src/api/subscriptions/formats.ts) write YAML, the dynamic-key reader
 * (src/client/dynamic-key.ts) reads it.
 *
 * Through require, not `import()`: yaml is CommonJS, and in the esbuild bundle a dynamic import of
 * it has only `default` (named exports were undefined there, while tsx gave them: every YAML
 * format answered 500 from dist/ only; test/integration/dist-bundle.test.ts).
 */
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';

let yamlModule: typeof Yaml | undefined;

/** The yaml package's exports, required the first time this is called. */
export function yamlPackage(): typeof Yaml {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}
