// The worker's tiny HTTP server for probes and scraping (no Nest HTTP stack in the worker):
//   GET /healthz  liveness: the process answers
//   GET /readyz   200 when the model is loaded, the queues are taking jobs and Redis answers; else 503
//   GET /metrics  Prometheus text
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { pingRedis } from '@dllm/queue';
import type { EngineHolder } from '../core/engine-holder';
import type { WorkerMetrics } from '../core/worker-metrics';
import type { WorkerLifecycle } from '../jobs/lifecycle';

export interface HealthDeps {
  engine: EngineHolder;
  lifecycle: WorkerLifecycle;
  redis: Redis;
  metrics: WorkerMetrics;
}

export async function readiness(d: HealthDeps): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const redisOk = await pingRedis(d.redis, 1000);
  const checks: Record<string, string> = {
    model: d.engine.ready ? 'ok' : d.engine.loadError ? `failed: ${d.engine.loadError.message}` : 'loading',
    queues: d.lifecycle.draining ? 'draining' : d.lifecycle.running ? 'ok' : 'paused',
    redis: redisOk ? 'ok' : 'unreachable',
  };
  return { ok: Object.values(checks).every((v) => v === 'ok'), checks };
}

export function startHealthServer(d: HealthDeps, host: string, port: number): Promise<http.Server & { port: number }> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    };
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(405, { error: 'method not allowed' });
    if (url === '/healthz') return send(200, { status: 'ok' });
    if (url === '/readyz') {
      void readiness(d).then((r) => send(r.ok ? 200 : 503, { status: r.ok ? 'ok' : 'unavailable', checks: r.checks }));
      return;
    }
    if (url === '/metrics') {
      void d.metrics.registry.metrics().then(
        (text) => send(200, text, d.metrics.registry.contentType),
        (e: Error) => send(500, { error: e.message }),
      );
      return;
    }
    send(404, { error: `no route ${url}` });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const s = server as http.Server & { port: number };
      s.port = (server.address() as AddressInfo).port;
      resolve(s);
    });
  });
}
