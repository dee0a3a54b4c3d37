// Preload (`node --import ./test/helpers/record-modules.mjs …`) that records every module the
// process loads: ES modules through a resolve hook (which sees each import, including those of
// CommonJS packages from ES modules), CommonJS modules from require.cache at exit. One URL or
// path a line, appended to the file named by LADDER_RECORD_MODULES. Used by
// test/cli/lazy-loading.test.ts to check what each mode loads.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.LADDER_RECORD_MODULES;
if (out) {
  const hook = `
    import { appendFileSync } from 'node:fs';
    export async function resolve(specifier, context, next) {
      const r = await next(specifier, context);
      appendFileSync(${JSON.stringify(out)}, r.url + '\\n');
      return r;
    }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  const require = createRequire(import.meta.url);
  process.on('exit', () => {
    const cjs = Object.keys(require.cache);
    if (cjs.length > 0) appendFileSync(out, `${cjs.join('\n')}\n`);
  });
}
