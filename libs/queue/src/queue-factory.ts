// Queues and queue names for a deployment: one place that knows the prefix.
import { Queue, type ConnectionOptions } from 'bullmq';
import { queueName, type QueueKind } from '@dllm/contracts';

export function createQueue(kind: QueueKind, model: string | undefined, o: { connection: ConnectionOptions; prefix: string }): Queue {
  return new Queue(queueName(kind, model), { connection: o.connection, prefix: o.prefix });
}

/** Removes a queue and everything in it (tests, demos): waits, drains, obliterates, closes. */
export async function destroyQueue(q: Queue): Promise<void> {
  try {
    await q.obliterate({ force: true });
  } finally {
    await q.close();
  }
}
