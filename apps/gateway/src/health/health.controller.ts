import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Redis } from 'ioredis';
import { Public } from '../auth/auth.guard';
import { MetricsService } from '../metrics/metrics.service';
import { REDIS } from '../tokens';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

@ApiTags('health')
@Public()
@Controller()
export class HealthController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly metrics: MetricsService,
  ) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  @ApiOkResponse({ description: 'The process is alive' })
  healthz() {
    return { status: 'ok' };
  }

  /** Readiness: Redis is connected and answers PING within a second (503 otherwise, at once while it is away). */
  @Get('readyz')
  @ApiOkResponse({ description: 'Redis answers; 503 otherwise' })
  async readyz(@Res() reply: FastifyReply) {
    if (this.redis.status !== 'ready') return reply.status(503).send({ status: 'unavailable', checks: { redis: `not connected (${this.redis.status})` } });
    try {
      await withTimeout(this.redis.ping(), 1000, 'Redis');
      return reply.send({ status: 'ok', checks: { redis: 'ok' } });
    } catch (e) {
      return reply.status(503).send({ status: 'unavailable', checks: { redis: (e as Error).message } });
    }
  }

  @Get('metrics')
  @ApiExcludeEndpoint()
  @Header('content-type', 'text/plain; version=0.0.4; charset=utf-8')
  async metricsText() {
    return this.metrics.registry.metrics();
  }
}
