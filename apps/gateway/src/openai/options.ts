import { DLLM_EXTRA_TO_ENGINE } from '@dllm/contracts';

/** OpenAI fields + dLLM extras (snake_case) -> engine DecodeOptions keys; null/undefined are left out. */
export function engineOptions(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [wire, engine] of Object.entries(DLLM_EXTRA_TO_ENGINE)) {
    const v = body[wire];
    if (v === undefined || v === null) continue;
    if (wire === 'max_tokens' && body.max_completion_tokens != null) continue;
    out[engine] = wire === 'stop' && typeof v === 'string' ? [v] : v;
  }
  return out;
}
