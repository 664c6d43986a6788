// The Dockerfiles cannot be built here (no container engine); lint what the text shows, and prove
// each lint rule fires on a broken copy.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lintDockerfile, parseDockerfile, type LintOptions } from '../tools/dockerfile-lint';

const ROOT = path.resolve(__dirname, '..', '..');
const FILES: [string, LintOptions['onnxruntime']][] = [
  ['gateway.Dockerfile', 'none'],
  ['worker.Dockerfile', 'cpu'],
  ['worker-cuda.Dockerfile', 'cuda'],
];
const read = (f: string) => fs.readFileSync(path.join(__dirname, f), 'utf8');

describe('Dockerfiles', () => {
  it.each(FILES)('%s passes the lint', (file, onnxruntime) => {
    expect(lintDockerfile(read(file), { root: ROOT, onnxruntime })).toEqual([]);
  });

  it.each(FILES)('%s runs the app entry point as a numeric non-root user from a multi-stage build', (file) => {
    const { stages } = parseDockerfile(read(file));
    expect(stages.length).toBeGreaterThanOrEqual(3);
    const final = stages[stages.length - 1];
    expect(final.instructions.find((i) => i.op === 'USER')?.args).toBe('10001:10001');
    expect(final.instructions.find((i) => i.op === 'CMD')?.args).toMatch(/dist\/apps\/(gateway|worker)\/src\/main\.js/);
  });

  it('ports in EXPOSE are the config defaults the manifests probe', () => {
    expect(read('gateway.Dockerfile')).toMatch(/EXPOSE 8080\b/);
    expect(read('worker.Dockerfile')).toMatch(/EXPOSE 9090\b/);
  });

  it('.dockerignore keeps local installs, build output and git history out of the context', () => {
    const lines = fs
      .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const must of ['node_modules', 'dist', '.git', '.env']) expect(lines).toContain(must);
    // models/ must stay in the context: --build-arg MODELS_SRC=models bakes it.
    expect(lines).not.toContain('models');
  });
});

describe('the Dockerfile lint catches', () => {
  const worker = () => read('worker.Dockerfile');
  const cuda = () => read('worker-cuda.Dockerfile');
  const lint = (text: string, onnxruntime: LintOptions['onnxruntime'] = 'cpu') => lintDockerfile(text, { root: ROOT, onnxruntime }).join('\n');

  it('a :latest or untagged base image', () => {
    expect(lint(worker().replace(/FROM node:20\.20\.2-bookworm-slim AS runtime/, 'FROM node:latest AS runtime'))).toMatch(/node:latest: base image not pinned/);
    expect(lint(worker().replace(/FROM node:20\.20\.2-bookworm-slim AS runtime/, 'FROM node AS runtime'))).toMatch(/FROM node: base image not pinned/);
    expect(lint(worker().replace(/FROM node:20\.20\.2-bookworm-slim AS runtime/, 'FROM node:20 AS runtime'))).toMatch(/tag '20' moves/);
  });

  it('a root or missing USER', () => {
    expect(lint(worker().replace('USER 10001:10001', 'USER root'))).toMatch(/runs as root/);
    expect(lint(worker().replace('USER 10001:10001', ''))).toMatch(/no USER/);
    expect(lint(worker().replace('USER 10001:10001', 'USER node'))).toMatch(/numeric uid/);
  });

  it('dev dependencies in the runtime image', () => {
    expect(lint(worker().replace('COPY --from=deps /app/node_modules', 'COPY --from=build /app/node_modules'))).toMatch(
      /stage build does not install with --omit=dev/,
    );
    expect(lint(worker().replace('npm ci --omit=dev --no-audit', 'npm ci --no-audit'))).toMatch(/stage deps does not install with --omit=dev/);
  });

  it('a single-stage build', () => {
    const single =
      'FROM node:20.20.2-bookworm-slim\nWORKDIR /app\nCOPY . .\nRUN ONNXRUNTIME_NODE_INSTALL=skip npm ci && npm run build\nUSER 10001\nCMD ["node", "dist/apps/worker/src/main.js"]\n';
    expect(lint(single)).toMatch(/single-stage build/);
  });

  it('onnxruntime install mode: CPU image without skip, CUDA image without the provider or its check', () => {
    expect(lint(worker().replace(/^ENV ONNXRUNTIME_NODE_INSTALL=skip$/m, ''))).toMatch(/npm ci without ONNXRUNTIME_NODE_INSTALL=skip/);
    expect(lint(cuda().replaceAll('ONNXRUNTIME_NODE_INSTALL=cuda12', 'ONNXRUNTIME_NODE_INSTALL=skip'), 'cuda')).toMatch(
      /does not install the onnxruntime CUDA provider/,
    );
    expect(lint(cuda().replace(/test -f \S+libonnxruntime_providers_cuda\.so/, 'true'), 'cuda')).toMatch(
      /does not check that libonnxruntime_providers_cuda.so arrived/,
    );
    expect(lint(cuda().replace('nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04', 'ubuntu:24.04'), 'cuda')).toMatch(/needs the CUDA \+ cuDNN runtime/);
  });

  it('an entry point or COPY source that does not exist', () => {
    expect(lint(worker().replace('dist/apps/worker/src/main.js', 'dist/apps/worker/src/index.js'))).toMatch(/apps\/worker\/src\/index.ts does not exist/);
    expect(lint(worker().replace('COPY libs ./libs', 'COPY lib ./libs'))).toMatch(/COPY source lib does not exist/);
    expect(lint(worker().replace('ARG MODELS_SRC=deploy/docker/no-models', 'ARG MODELS_SRC=deploy/docker/models'))).toMatch(
      /COPY source \$\{MODELS_SRC\} does not exist/,
    );
  });
});

describe('the Dockerfile parser (dockerfile-ast) reads BuildKit syntax', () => {
  const worker = () => read('worker.Dockerfile');
  const lint = (text: string) => lintDockerfile(text, { root: ROOT, onnxruntime: 'cpu' });
  const DEPS_RUN = 'RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force';

  it('a heredoc RUN is one instruction whose body the rules see; heredoc lines are not instructions', () => {
    expect(worker()).toContain(DEPS_RUN);
    const body = 'set -e\nnpm ci --omit=dev --no-audit --no-fund\nnpm cache clean --force';
    const text = worker()
      .replace(DEPS_RUN, `RUN <<EOF\n${body}\nEOF`)
      // a config file written by a heredoc COPY: its 'USER 0' line is file content, not an instruction
      .replace('USER 10001:10001', 'COPY <<CONF /etc/dllm.conf\nUSER 0\nCONF\nUSER 10001:10001');
    expect(lint(text)).toEqual([]);
    const { stages } = parseDockerfile(text);
    const deps = stages.find((s) => s.name === 'deps')!;
    const run = deps.instructions.filter((i) => i.op === 'RUN');
    expect(run).toHaveLength(1);
    expect(run[0].heredocs).toEqual([{ name: 'EOF', content: body }]);
    expect(run[0].args).toContain('npm ci --omit=dev');
    const runtime = stages[stages.length - 1];
    expect(runtime.instructions.filter((i) => i.op === 'USER').map((i) => i.args)).toEqual(['10001:10001']);
    expect(runtime.instructions.find((i) => i.op === 'COPY' && i.heredocs.length)!.heredocs[0]).toEqual({ name: 'CONF', content: 'USER 0' });
    // and a heredoc that installs dev dependencies in the runtime stage is caught
    const bad = worker().replace('USER 10001:10001', 'RUN <<EOF\nnpm ci --no-audit\nEOF\nUSER 10001:10001');
    expect(lint(bad).join('\n')).toMatch(/runtime stage runs npm ci\/install without --omit=dev/);
  });

  it('a `# escape=` file continues lines with its own escape character', () => {
    const runtimeRun = /RUN groupadd (.*) \\\n/;
    expect(worker()).toMatch(runtimeRun);
    const text =
      '# escape=`\n' +
      worker()
        .replace(runtimeRun, 'RUN groupadd $1 `\n')
        .replace(DEPS_RUN, 'RUN npm ci `\n    --omit=dev --no-audit --no-fund `\n    && npm cache clean --force');
    expect(lint(text)).toEqual([]);
    const { stages } = parseDockerfile(text);
    const deps = stages.find((s) => s.name === 'deps')!;
    expect(deps.instructions.map((i) => i.op)).toEqual(['WORKDIR', 'ENV', 'COPY', 'RUN']);
    expect(deps.instructions[3].args).toMatch(/^npm ci\s+--omit=dev --no-audit --no-fund\s+&& npm cache clean --force$/);
    expect(stages[stages.length - 1].instructions.map((i) => i.op)).toEqual([
      'ARG',
      'ENV',
      'WORKDIR',
      'COPY',
      'COPY',
      'COPY',
      'COPY',
      'RUN',
      'USER',
      'ENV',
      'EXPOSE',
      'CMD',
    ]);
  });
});
