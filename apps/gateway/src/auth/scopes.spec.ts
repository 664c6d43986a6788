// Every route declares who may call it: @Public() or @Scopes(...) (none = any valid key). A route
// without either would be open to every key, so this test lists them all and fails on a new one.
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { RequestMethod } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { GatewayModule } from '../gateway.module';
import type { GatewaySettings } from '../settings';
import { declaredAccess } from './auth.guard';

function routes(): Record<string, string> {
  const mod = GatewayModule.forRoot({ apiKeys: [] } as unknown as GatewaySettings);
  const reflector = new Reflector();
  const out: Record<string, string> = {};
  for (const cls of mod.controllers ?? []) {
    const base = String(Reflect.getMetadata(PATH_METADATA, cls) ?? '');
    for (const prop of Object.getOwnPropertyNames(cls.prototype)) {
      const handler = cls.prototype[prop];
      if (typeof handler !== 'function' || prop === 'constructor' || Reflect.getMetadata(METHOD_METADATA, handler) === undefined) continue;
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const p = String(Reflect.getMetadata(PATH_METADATA, handler) ?? '');
      const url = `/${[base, p].filter((x) => x && x !== '/').join('/')}`;
      const a = declaredAccess(reflector, handler, cls);
      out[`${method} ${url}`] = a.public ? 'public' : a.scopes === undefined ? 'UNDECLARED' : a.scopes.length ? a.scopes.join('+') : 'any key';
    }
  }
  return out;
}

describe('route scopes', () => {
  it('every route is public or declares its scopes, as documented in docs/API.md', () => {
    expect(routes()).toEqual({
      'GET /healthz': 'public',
      'GET /readyz': 'public',
      'GET /metrics': 'public',
      'GET /v1/models': 'any key',
      'GET /v1/models/:name/versions': 'any key',
      'POST /v1/models/:name/versions': 'models:write',
      'POST /v1/completions': 'generate',
      'POST /v1/chat/completions': 'generate',
      'POST /v1/jobs': 'generate',
      'GET /v1/jobs/:id': 'generate',
      'GET /v1/jobs/:id/result': 'generate',
      'POST /v1/jobs/:id/cancel': 'generate',
      'GET /v1/jobs/:id/events': 'generate',
      'POST /v1/files': 'batch',
      'GET /v1/files': 'batch',
      'GET /v1/files/:id': 'batch',
      'GET /v1/files/:id/content': 'batch',
      'DELETE /v1/files/:id': 'batch',
      'POST /v1/batches': 'batch',
      'GET /v1/batches': 'batch',
      'GET /v1/batches/:id': 'batch',
      'POST /v1/batches/:id/cancel': 'batch',
      'POST /v1/rollouts': 'rollout',
      'POST /v1/rollouts/:id/cancel': 'rollout',
      'GET /v1/rollouts/:id': 'rollout',
      'GET /v1/rollouts/:id/trajectories': 'rollout',
      'GET /v1/rollouts/:id/stream': 'rollout',
      'POST /v1/distill': 'distill',
      'GET /v1/distill/:id': 'distill',
      'GET /v1/distill/:id/files/:name': 'distill',
      'POST /v1/distill/:id/cancel': 'distill',
    });
  });
});
