// Lint: typescript-eslint (type-aware promise rules) plus import-x zones that enforce the
// dependency direction in DESIGN.md: protocol <- transport <- server/client; store <- api;
// lab and probe talk to servers over sockets only; cli composes everything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';

const zone = (target, from, message) => ({ target: `./src/${target}`, from: from.map((f) => `./src/${f}`), message });
const ALL = ['protocol', 'transport', 'server', 'client', 'store', 'api', 'metrics', 'config', 'lab', 'probe', 'cli', 'shared'];
const except = (...allowed) => ALL.filter((d) => !allowed.includes(d));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'web/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            zone('protocol', except('protocol'), 'protocol/ is pure: it imports nothing from the rest of src'),
            zone('shared', except('shared'), 'shared/ is the bottom layer'),
            zone('transport', except('protocol', 'shared', 'transport'), 'transport/ may use protocol/ and shared/ only'),
            zone('server', except('protocol', 'shared', 'transport', 'config', 'metrics', 'server'), 'server/ sits on transport/'),
            zone('client', except('protocol', 'shared', 'transport', 'config', 'metrics', 'client'), 'client/ sits on transport/'),
            zone('store', except('shared', 'store'), 'store/ depends on shared/ only'),
            zone('metrics', except('shared', 'metrics'), 'metrics/ depends on shared/ only'),
            zone('config', except('protocol', 'shared', 'config'), 'config/ may use protocol/ to validate'),
            zone('api', except('store', 'config', 'metrics', 'shared', 'protocol', 'api'), 'api/ talks to the server through an interface, never server/ internals'),
            zone('lab', except('protocol', 'transport', 'shared', 'lab'), 'lab/ reaches servers through sockets only'),
            zone('probe', except('protocol', 'transport', 'shared', 'probe'), 'probe/ reaches servers through sockets only'),
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "MemberExpression[object.name='process'][property.name='exit']", message: 'Only src/cli may call process.exit' },
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
  prettier,
);
