// ESLint flat config: typescript-eslint with type information for the rules that need it.
// `npm run lint` checks; `npm run lint:fix` applies the fixable ones (consistent-type-imports).
import tseslint from 'typescript-eslint';

/** The libraries under libs/, each imported by others only as `@dllm/<lib>` (its barrel). */
const LIBS = ['config', 'contracts', 'engine', 'model', 'quant', 'queue', 'rl', 'storage', 'tasks'];

const viaBarrel = 'Import another lib through its barrel `@dllm/<lib>` (tsconfig paths), not by a relative path into its src/.';

export default tseslint.config(
  {
    // Build output, dependencies, model weights, generated and runtime files.
    ignores: [
      '**/node_modules/**',
      'dist/**',
      'coverage/**',
      'models/**',
      'var/**',
      '.data/**',
      'train-out/**',
      'tools/train/**',
      'bench/results/**',
      '**/*.gen.ts',
      '**/*_pb.ts',
      '**/generated/**',
    ],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'off' },
  },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      // A promise nobody awaits loses its error (an unhandled rejection kills the worker). `void p` marks an intended one.
      '@typescript-eslint/no-floating-promises': 'error',
      // Type-only imports are erased, so the gateway does not load the engine just for a type.
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            // ../../engine/src/..., ../../libs/engine/src/..., libs/engine/src from anywhere
            { regex: `^(\\.\\./)+(libs/)?(${LIBS.join('|')})/src(/.*)?$`, message: viaBarrel },
            // deep paths behind the barrel: @dllm/engine/runner/ort-runner
            { regex: `^@dllm/(${LIBS.join('|')})/.+$`, message: 'Import `@dllm/<lib>` itself; what other code needs is exported from its index.ts.' },
          ],
        },
      ],
    },
  },
);
