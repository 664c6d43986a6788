// The gateway's one seam to the job catalogue (@dllm/contracts) and the shared queue plumbing
// (@dllm/queue: result store, cancel channel). Everything job-shaped is imported from those libs.
import { generationJob, parseProgress, queueName, validateGenerationPayload } from '@dllm/contracts';
export type { GenerationPayload, GenerationResult, ProgressEvent } from '@dllm/contracts';

export { generationJob, parseProgress, validateGenerationPayload };
export { cancelJob, createResultStore, readGenerationResult, requestCancel, jobOptions, settledSnapshot, ResultUnavailableError } from '@dllm/queue';

export const generationQueueName = (model: string) => queueName('generation', model);
