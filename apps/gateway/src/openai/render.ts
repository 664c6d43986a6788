// OpenAI response bodies from a generation result: one place that renders completions and chat
// completions, used by the completions controller (direct requests) and the batch service (output
// files), so a batch line's body is exactly what the endpoint would have answered.
import type { ChatCompletionResponse, CompletionResponse, DllmStats } from '@dllm/contracts';
import type { GenerationResult } from '../jobs/catalogue-bridge';

const now = () => Math.floor(Date.now() / 1000);

/** Engine finish reason -> OpenAI's ('cancelled' keeps the partial text and reads as 'stop'). */
export const openAiFinish = (r: GenerationResult): 'stop' | 'length' => (r.finishReason === 'length' ? 'length' : 'stop');

/** The non-OpenAI `dllm` field: engine statistics of one completion. */
export function dllmStats(jobId: string, r: GenerationResult): DllmStats {
  return {
    forwards: r.stats.forwards,
    tpf: r.stats.tpf,
    wall_ms: r.stats.wallMs,
    finish_reason: r.finishReason,
    job_id: jobId,
    model_version: r.model?.version,
    prefix_cache_hit_tokens: r.stats.prefixCacheHitTokens,
  };
}

/** OpenAI `usage` from the engine's token counts. */
export function usage(r: GenerationResult) {
  return {
    prompt_tokens: r.usage.promptTokens,
    completion_tokens: r.usage.completionTokens,
    total_tokens: r.usage.promptTokens + r.usage.completionTokens,
  };
}

/** A /v1/completions response body (object text_completion) for job `jobId`. */
export function completionBody(jobId: string, model: string, r: GenerationResult): CompletionResponse {
  return {
    id: `cmpl-${jobId}`,
    object: 'text_completion',
    created: now(),
    model,
    choices: [{ index: 0, text: r.text, finish_reason: openAiFinish(r), logprobs: null }],
    usage: usage(r),
    dllm: dllmStats(jobId, r),
  };
}

/** A /v1/chat/completions response body (object chat.completion) for job `jobId`. */
export function chatBody(jobId: string, model: string, r: GenerationResult): ChatCompletionResponse {
  return {
    id: `chatcmpl-${jobId}`,
    object: 'chat.completion',
    created: now(),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content: r.text, refusal: null }, finish_reason: openAiFinish(r), logprobs: null }],
    usage: usage(r),
    dllm: dllmStats(jobId, r),
  };
}
