// The engine's worker thread: an EngineCore with its onnxruntime session in this same thread
// (InlineOrtRunner), so the scheduler loop calls session.run directly. The caller's thread
// (EngineThread) sends admissions, cancels and swaps, and gets block events, results and stats.
import { parentPort, workerData } from 'node:worker_threads';
import { EngineCore, type EngineStats } from './engine';
import type { BlockEvent } from './emission';
import { toWire, type FromHost, type HostOptions, type ModelInfo, type ToHost } from './engine-protocol';

/** How often a stats snapshot is sent while requests are in flight (results carry one too). */
const STATS_PERIOD_MS = 1000;

function modelInfo(e: EngineCore): ModelInfo {
  const m = e.model;
  return { name: m.name, version: m.version, kind: m.kind, manifest: m.manifest, decodeDefaults: m.decodeDefaults };
}

/** Entry point of the worker (engine-worker.js calls it). */
export async function runEngineHost(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('engine-host must run in a worker thread');
  const post = (m: FromHost) => port.postMessage(m);
  let engine: EngineCore;
  try {
    engine = await EngineCore.create({ ...(workerData as HostOptions), thread: 'inline' });
  } catch (e) {
    post({ t: 'init-error', error: toWire(e) });
    return;
  }
  const inflight = new Map<number, AbortController>();
  let lastStats = '';
  const stats = (): EngineStats => engine.stats();
  const timer = setInterval(() => {
    if (inflight.size === 0) return;
    const s = stats();
    const key = JSON.stringify(s);
    if (key === lastStats) return;
    lastStats = key;
    post({ t: 'stats', stats: s });
  }, STATS_PERIOD_MS);
  timer.unref();

  port.on('message', (m: ToHost) => {
    if (m.t === 'generate') {
      const ctrl = new AbortController();
      if (m.aborted) ctrl.abort();
      inflight.set(m.id, ctrl);
      const hooks = { signal: ctrl.signal, onBlock: m.blocks ? (event: BlockEvent) => post({ t: 'block', id: m.id, event }) : undefined };
      engine.generate(m.req, hooks).then(
        (result) => {
          inflight.delete(m.id);
          post({ t: 'result', id: m.id, result, stats: stats() });
        },
        (e) => {
          inflight.delete(m.id);
          post({ t: 'error', id: m.id, error: toWire(e), stats: stats() });
        },
      );
    } else if (m.t === 'cancel') {
      inflight.get(m.id)?.abort();
    } else if (m.t === 'swap') {
      void engine.swapModel(m.modelDir).then(
        () => post({ t: 'swapped', id: m.id, model: modelInfo(engine), pageBytes: engine.pageBytes(), stats: stats() }),
        (e) => post({ t: 'error', id: m.id, error: toWire(e), stats: stats() }),
      );
    } else if (m.t === 'close') {
      clearInterval(timer);
      void engine.close().finally(() => post({ t: 'closed' }));
    }
  });
  post({ t: 'ready', model: modelInfo(engine), pageBytes: engine.pageBytes(), stats: stats() });
}
