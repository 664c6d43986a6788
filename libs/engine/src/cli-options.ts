// Decoding options as command-line flags (shared by `dllm-farm generate`, `eval` and the benchmark).
import type { DecodeOptions } from './options';
import { decodeOptionsSchema, POLICIES } from './options';

/** parseArgs option specs for every decoding knob. */
export const decodeFlagSpec = {
  policy: { type: 'string' },
  'block-size': { type: 'string' },
  'sub-block-size': { type: 'string' },
  threshold: { type: 'string' },
  'entropy-threshold': { type: 'string' },
  'delimiter-threshold': { type: 'string' },
  'sub-block-cache': { type: 'boolean' },
  'no-sub-block-cache': { type: 'boolean' },
  'max-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  'stop-token-id': { type: 'string', multiple: true },
} as const;

export const decodeFlagHelp = `Decoding options (each validated; defaults in parentheses):
  --policy ${POLICIES.join('|')}   (fast-dllm-v2 for block-diffusion models, ar for autoregressive)
  --block-size N            block length, 1..256 (the model's block_size)
  --sub-block-size N        sub-block length, 1..block size (8)
  --threshold X             commit slots with probability > X, (0, 1] (0.9)
  --entropy-threshold X     entropy policy: commit slots with entropy <= X nats, [0, 20] (0.5)
  --delimiter-threshold X   adablock: delimiter confidence that ends a block, [0, 1] (0.3)
  --sub-block-cache         keep the window K/V and run only the active sub-block (on)
  --no-sub-block-cache      every step recomputes the whole block window
  --max-new-tokens N        1..8192 (256)
  --temperature X           0 = greedy, [0, 10] (0)
  --top-k N                 0 = off (0)
  --top-p X                 (0, 1] (1)
  --seed N                  sampling seed, 0..2^32-1 (random; recorded in the trajectory)
  --stop TEXT               stop string (repeatable)
  --stop-token-id N         extra stop token id (repeatable; EOS always stops)`;

type Values = Record<string, string | boolean | string[] | undefined>;

function num(name: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new RangeError(`--${name} must be a number, got '${v}'`);
  return n;
}

/** Flags -> a validated Partial<DecodeOptions> (throws RangeError with the flag's name). */
export function decodeOptionsFromFlags(values: Values): Partial<DecodeOptions> {
  const o: Record<string, unknown> = {};
  const map: Array<[string, keyof DecodeOptions]> = [
    ['block-size', 'blockSize'],
    ['sub-block-size', 'subBlockSize'],
    ['threshold', 'threshold'],
    ['entropy-threshold', 'entropyThreshold'],
    ['delimiter-threshold', 'delimiterThreshold'],
    ['max-new-tokens', 'maxNewTokens'],
    ['temperature', 'temperature'],
    ['top-k', 'topK'],
    ['top-p', 'topP'],
    ['seed', 'seed'],
  ];
  if (values.policy !== undefined) o.policy = values.policy;
  for (const [flag, key] of map) {
    const v = values[flag];
    if (typeof v === 'string') o[key] = num(flag, v);
  }
  if (values['sub-block-cache'] && values['no-sub-block-cache']) throw new RangeError('--sub-block-cache and --no-sub-block-cache contradict each other');
  if (values['sub-block-cache']) o.subBlockCache = true;
  if (values['no-sub-block-cache']) o.subBlockCache = false;
  if (Array.isArray(values.stop)) o.stop = values.stop;
  if (Array.isArray(values['stop-token-id'])) o.stopTokenIds = values['stop-token-id'].map((v) => num('stop-token-id', v));
  const parsed = decodeOptionsSchema.partial().safeParse(o);
  if (!parsed.success) {
    const flagOf = (k: string) => map.find(([, key]) => key === k)?.[0] ?? k;
    throw new RangeError(parsed.error.issues.map((i) => `--${flagOf(String(i.path[0]))}: ${i.message}`).join('; '));
  }
  return o as Partial<DecodeOptions>;
}
