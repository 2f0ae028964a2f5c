// Lint rules: strict type-checked TypeScript, and a pure protocol core. Files under */core/** may
// not import IO modules or read the clock or randomness: those arrive as inputs (see STYLE.md).
import tseslint from 'typescript-eslint';

const ioModules = ['node:*', 'better-sqlite3', '@nats-io/*', 'fs', 'net', 'child_process', 'ulid'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.scratch/**', 'eslint.config.js'] },
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    files: ['**/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ioModules }],
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='Date'][property.name='now']",
          message: 'Time is an input.',
        },
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'Time is an input.',
        },
        {
          selector: "MemberExpression[object.name='Math'][property.name='random']",
          message: 'Randomness is an input.',
        },
      ],
    },
  },
);
