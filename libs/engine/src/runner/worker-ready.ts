// Waiting for a worker thread's first answer (its "ready" or its load error), shared by the ORT
// runner's worker and the engine thread.
import type { Worker } from 'node:worker_threads';

/**
 * Resolves with the first message `pick` accepts (`{ ok }`), rejects with the error it returns
 * (`{ err }`), or with `exitMessage(code)` / the worker's error if it dies first. Messages `pick`
 * returns undefined for are ignored. On rejection the worker is terminated.
 */
export async function workerReady<M, T>(
  worker: Worker,
  pick: (m: M) => { ok: T } | { err: Error } | undefined,
  exitMessage: (code: number) => string,
): Promise<T> {
  try {
    return await new Promise<T>((resolve, reject) => {
      const done = (f: () => void) => {
        worker.off('message', onMsg);
        worker.off('error', onErr);
        worker.off('exit', onExit);
        f();
      };
      const onMsg = (m: M) => {
        const r = pick(m);
        if (r && 'ok' in r) done(() => resolve(r.ok));
        else if (r) done(() => reject(r.err));
      };
      const onErr = (e: Error) => done(() => reject(e));
      const onExit = (code: number) => done(() => reject(new Error(exitMessage(code))));
      worker.on('message', onMsg);
      worker.on('error', onErr);
      worker.on('exit', onExit);
    });
  } catch (e) {
    await worker.terminate();
    throw e;
  }
}
