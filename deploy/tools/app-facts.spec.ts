// The route readers must see what the apps really serve, so that a renamed health endpoint fails the
// manifest tests. Fixtures in a temp dir, shaped like the real apps.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { literalRoutes, loadAppFacts, nestRoutes } from './app-facts';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-facts-'));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
};

it('nestRoutes: controller prefix + @Get paths, global prefix', () => {
  const a = write('health.controller.ts', "@Controller()\nexport class H {\n  @Get('healthz')\n  a() {}\n  @Get('readyz')\n  b() {}\n}\n");
  const b = write('jobs.controller.ts', "@Controller('v1/jobs')\nexport class J {\n  @Get(':id')\n  a() {}\n  @Get()\n  b() {}\n  @Post()\n  c() {}\n}\n");
  expect([...nestRoutes([a, b])].sort()).toEqual(['/healthz', '/readyz', '/v1/jobs', '/v1/jobs/:id']);
  const c = write('bootstrap.ts', "app.setGlobalPrefix('api');\n");
  expect(nestRoutes([a, c])).toEqual(new Set(['/api/healthz', '/api/readyz']));
});

it('literalRoutes: the path literals of the file that creates the server, not of others', () => {
  const server = write(
    'health-server.ts',
    'const server = http.createServer((req, res) => {\n  if (url === \'/healthz\') return ok();\n  if (url === "/ready") return ready();\n});\n',
  );
  const other = write('paths.ts', "const dir = '/models';\n");
  expect(literalRoutes([server, other])).toEqual(new Set(['/healthz', '/ready']));
});

it('reads the real apps: both serve /healthz, /readyz and /metrics; ports from libs/config', () => {
  const facts = loadAppFacts();
  for (const app of ['gateway', 'worker'] as const) expect([...facts.apps[app].routes]).toEqual(expect.arrayContaining(['/healthz', '/readyz', '/metrics']));
  expect(facts.apps.gateway.portVar).toBe('GATEWAY_PORT');
  expect(facts.env[facts.apps.worker.portVar]).toBeDefined();
  expect(facts.env.QUEUE_PREFIX.validate('bull')).toBeUndefined();
  expect(facts.env.QUEUE_PREFIX.validate('{bull}')).toMatch(/letters, digits/);
});
