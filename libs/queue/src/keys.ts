// Redis keys and channels that gateway and worker share outside BullMQ's own keys. All live under
// the BullMQ prefix (QUEUE_PREFIX), so one prefix per deployment (or per test) isolates everything.

/** Set (with a TTL) when a job's cancellation is requested; checked by a worker that starts it. */
export const cancelKey = (prefix: string, queue: string, jobId: string) => `${prefix}:dllm-cancel:${queue}:${jobId}`;
/** Pub/sub channel: a message {queue, jobId} asks the worker running that job to stop it. */
export const cancelChannel = (prefix: string) => `${prefix}:dllm-cancel`;
/** Redis key prefix of the result store. */
export const resultStorePrefix = (prefix: string) => `${prefix}:dllm-result:`;
/** Blob key of a job's result inside the result store. */
export const resultBlobKey = (queue: string, jobId: string) => `${queue}:${jobId}`;
