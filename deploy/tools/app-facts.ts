// What the manifests must agree with, read from the real sources of the apps and libs (not copied
// into the tests), so a test fails when an app and its manifests drift apart:
//   - HTTP routes each app serves (NestJS @Controller/@Get, or path literals of a plain node:http server)
//   - environment variables, their defaults and validators (libs/config ENV table)
//   - Prometheus metric names the apps and libs register
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENV } from '@dllm/config';

export type AppName = 'gateway' | 'worker';

export interface AppFacts {
  /** Repo root the facts were read from. */
  root: string;
  apps: Record<AppName, { routes: Set<string>; portVar: string; routesFrom: string }>;
  /** libs/config table: name -> { default, validate(value) -> error message | undefined }. */
  env: Record<string, { default?: string; validate(value: string): string | undefined }>;
  /** Metric names registered anywhere in apps/ and libs/. */
  metrics: Set<string>;
  /** Env vars (from the config table) that bound how long one job may run, in seconds per unit. */
  jobTimeoutVars: { name: string; secondsPerUnit: number }[];
}

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name === 'node_modules' || e.name === 'dist') continue;
      out.push(...sourceFiles(p));
    } else if (/\.ts$/.test(e.name) && !/\.(spec|int-spec|e2e-spec)\.ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const joinRoute = (...parts: string[]) =>
  '/' +
  parts
    .flatMap((p) => p.split('/'))
    .filter(Boolean)
    .join('/');

/** Routes a NestJS app serves: @Controller('prefix') + @Get('path') per file, under setGlobalPrefix. */
export function nestRoutes(files: string[]): Set<string> {
  const routes = new Set<string>();
  let globalPrefix = '';
  for (const f of files) {
    const src = fs.readFileSync(f, 'utf8');
    const gp = /setGlobalPrefix\(\s*['"`]([^'"`]*)['"`]/.exec(src);
    if (gp) globalPrefix = gp[1];
  }
  for (const f of files) {
    const src = fs.readFileSync(f, 'utf8');
    const ctrl = /@Controller\(\s*(?:['"`]([^'"`]*)['"`])?\s*\)/.exec(src);
    if (!ctrl) continue;
    const prefix = ctrl[1] ?? '';
    for (const m of src.matchAll(/@(Get|Head)\(\s*(?:['"`]([^'"`]*)['"`])?\s*\)/g)) routes.add(joinRoute(globalPrefix, prefix, m[2] ?? ''));
  }
  return routes;
}

/** Paths a plain node:http server compares the URL with: '/healthz' literals in its sources. */
export function literalRoutes(files: string[]): Set<string> {
  const routes = new Set<string>();
  // Only the files that create the server (the route table is there), not every path-like string.
  const servers = files.filter((f) => /\bcreateServer\(/.test(fs.readFileSync(f, 'utf8')));
  for (const f of servers) {
    const src = fs.readFileSync(f, 'utf8');
    for (const m of src.matchAll(/['"`](\/[a-z][a-z0-9_-]*)['"`]/g)) routes.add(m[1]);
  }
  return routes;
}

export function loadAppFacts(root = REPO_ROOT): AppFacts {
  const env: AppFacts['env'] = {};
  for (const [name, spec] of Object.entries(
    ENV as Record<string, { default?: string; schema: { safeParse(v: unknown): { success: boolean; error?: { issues: { message: string }[] } } } }>,
  )) {
    env[name] = {
      default: spec.default,
      validate(value: string) {
        // Empty means "use the default" in libs/config.
        const v = value === '' ? (spec.default ?? '') : value;
        if (v === '' && spec.default === '') return undefined;
        const r = spec.schema.safeParse(v);
        return r.success ? undefined : r.error!.issues.map((i) => i.message).join('; ');
      },
    };
  }

  const apps = {} as AppFacts['apps'];
  for (const app of ['gateway', 'worker'] as AppName[]) {
    const files = sourceFiles(path.join(root, 'apps', app, 'src'));
    const routes = new Set([...nestRoutes(files), ...(app === 'worker' ? literalRoutes(files) : [])]);
    const portVar = app === 'gateway' ? 'GATEWAY_PORT' : (['WORKER_PORT', 'WORKER_HEALTH_PORT'].find((n) => n in env) ?? 'WORKER_PORT');
    apps[app] = { routes, portVar, routesFrom: `apps/${app}/src` };
  }

  const metrics = new Set<string>();
  for (const f of [...sourceFiles(path.join(root, 'apps')), ...sourceFiles(path.join(root, 'libs'))]) {
    const src = fs.readFileSync(f, 'utf8');
    for (const m of src.matchAll(/name:\s*['"`](dllm_[a-z0-9_]+)['"`]/g)) metrics.add(m[1]);
  }

  const jobTimeoutVars: AppFacts['jobTimeoutVars'] = [];
  for (const name of Object.keys(env)) {
    if (!/^(JOB|WORKER_JOB)_TIMEOUT_(SECONDS|MS)$/.test(name)) continue;
    jobTimeoutVars.push({ name, secondsPerUnit: name.endsWith('_MS') ? 0.001 : 1 });
  }
  return { root, apps, env, metrics, jobTimeoutVars };
}
