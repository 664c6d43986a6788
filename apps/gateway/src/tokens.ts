/** Nest injection tokens of the gateway. */
export const REDIS = Symbol('REDIS');
export const SETTINGS = Symbol('SETTINGS');
export const BLOBS = Symbol('BLOBS');
/** The BlobStore of /v1/files bytes (batch inputs and outputs). */
export const FILE_STORE = Symbol('FILE_STORE');
/** The process's QueueRegistry (@dllm/queue): the one owner of every BullMQ Queue in the gateway. */
export const QUEUES = Symbol('QUEUES');
