// The environment of the ladder (and peer) processes tests spawn: this process's, without what
// would make them act on the developer's own stores, servers and secrets.

/**
 * What a developer may have exported that names a real store, server or secret: a test's ladder
 * must never write to `LADDER_STORE=postgres://…prod…` or manage keys through their `LADDER_API`.
 */
export const CALLER_TARGETS = ['LADDER_STORE', 'LADDER_API', 'LADDER_KEY', 'LADDER_AUTH', 'LADDER_PASSWORD'];

/**
 * `env` without what npm tells a script it runs (npm_lifecycle_*): a test run by `npm test` or
 * `npx` must not make ladder name its help as `npm …` or `npx ladder` (helpCommand).
 */
function withoutNpm(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  delete env.npm_lifecycle_event;
  delete env.npm_lifecycle_script;
  return env;
}

/** This process's environment without npm's and CALLER_TARGETS, then `own` (the test's, which may set them). */
export function cleanEnv(own: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = withoutNpm({ ...process.env });
  for (const name of CALLER_TARGETS) delete env[name];
  return { ...env, ...own };
}
