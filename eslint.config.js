// Lint: typescript-eslint (type-aware promise rules) plus import-x zones that enforce the
// dependency direction in DESIGN.md: protocol <- transport <- server/client; store <- api;
// lab and probe talk to servers over sockets only; cli composes everything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

const ALL = [
  'protocol',
  'transport',
  'server',
  'client',
  'store',
  'api',
  'metrics',
  'config',
  'lab',
  'probe',
  'fleet',
  'cli',
  'shared',
];

/**
 * The dependency direction, as "folder -> folders it may import from". Checked on the import
 * specifier itself (relative paths only), so it needs no module resolver and cannot silently
 * stop matching. See test/lint/zones.test.ts, which proves each rule fires.
 */
export const ALLOWED = {
  protocol: [],
  shared: [],
  transport: ['protocol', 'shared'],
  server: ['protocol', 'shared', 'transport', 'config', 'metrics'],
  client: ['protocol', 'shared', 'transport', 'config', 'metrics'],
  store: ['shared'],
  metrics: ['shared'],
  config: ['protocol', 'shared'],
  api: ['store', 'config', 'metrics', 'shared', 'protocol'],
  lab: ['protocol', 'transport', 'shared'],
  fleet: ['store', 'shared', 'config', 'metrics'],
  probe: ['protocol', 'transport', 'shared'],
};

const zoneBlocks = Object.entries(ALLOWED).map(([dir, allowed]) => {
  const banned = ALL.filter((d) => d !== dir && !allowed.includes(d));
  const patterns = [
    {
      regex: `^\\.{1,2}/(?:\\.\\./)*(?:${banned.join('|')})/`,
      message: `src/${dir} may import only from ${allowed.length ? allowed.map((a) => `src/${a}`).join(', ') : 'itself'} (DESIGN.md dependency direction)`,
    },
  ];
  const paths = [];
  if (dir === 'protocol') {
    // Pure codecs: no I/O, timers or logging.
    for (const name of [
      'node:fs',
      'node:fs/promises',
      'node:dgram',
      'node:tls',
      'node:http',
      'node:https',
      'node:child_process',
      'node:timers',
      'pino',
    ])
      paths.push({ name, message: 'src/protocol is pure: no I/O, timers or logging' });
    paths.push({
      name: 'node:net',
      importNames: ['Socket', 'Server', 'createServer', 'connect', 'createConnection'],
      message: 'src/protocol is pure: no sockets',
    });
  }
  return {
    files: [`src/${dir}/**/*.ts`],
    ignores: ['**/*.test.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns, paths }] },
  };
});

/**
 * The dashboard's browser code (web/src, bundled by scripts/build-web.mjs) runs in the operator's
 * browser: it talks to the server over HTTP only, so it may import nothing from src/ (not even
 * types: web/src/api.ts mirrors docs/api.md) and no Node built-in.
 */
export const WEB_ZONE = {
  files: ['web/src/**/*.ts', 'web/src/**/*.tsx'],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            regex: '(^|/)src/|^\\.\\./\\.\\./',
            message: 'web/ (browser code) may not import server code: use the HTTP API',
          },
          { regex: '^node:', message: 'web/ runs in a browser: no Node built-ins' },
        ],
      },
    ],
  },
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'web/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='exit']",
          message: 'Only src/cli may call process.exit',
        },
      ],
    },
  },
  {
    files: ['src/cli/**/*.ts', 'bench/**/*.ts', 'scripts/**', 'test/**/*.ts', '**/*.test.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  ...zoneBlocks,
  WEB_ZONE,
  prettier,
);
