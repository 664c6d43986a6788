// npm run bench:quant: what does each quantization scheme cost on our own tasks?
//
//   npm run build && node dist/bench/quant.js [--model models/tiny-dllm] [--n 40] [--policies ar,fast-dllm-v2]
//       [--schemes fp32,int8,int4-g32,int4-g128,int3-g32] [--families arith,string] [--max-new 96] [--json]
//
// For fp32 and each scheme, in one run on one model: model.onnx size, resident memory of a process
// serving it (engine loaded + the eval run), tokens/s, tokens per forward (TPF) and accuracy per task
// family for each decoding policy. Each scheme runs in its own child process so memory is its own.
// Scheme names: fp32, int8, int8-nbits (MatMulNBits 8-bit), int4-g<G>, int3-g<G>, suffix -acc0 for
// MatMulNBits accuracy_level 0 (float activations), then -gptq for GPTQ, then -qhead to quantize the
// LM head too (kept float32 by default), e.g. int4-g32-acc0-gptq-qhead.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Engine } from '@dllm/engine';
import { MANIFEST_FILE } from '@dllm/model';
import { families, problems } from '@dllm/tasks';
import { quantizeModelDir, type QuantizeOptions } from '@dllm/quant';

interface ChildArgs {
  modelDir: string;
  policies: string[];
  families: string[];
  n: number;
  maxNew: number;
  concurrency: number;
  threads: number;
}

interface PolicyFamilyResult {
  policy: string;
  family: string;
  n: number;
  correct: number;
  accuracy: number;
  tokens: number;
  forwards: number;
  tpf: number;
  wallMs: number;
  tokensPerSecond: number;
  /** generated texts, in problem order (the parent compares them with fp32's). */
  texts: string[];
  /** share of problems whose generated text is identical to fp32's (filled by the parent). */
  sameAsFp32?: number;
}

interface ChildResult {
  rssLoadedMiB: number;
  rssPeakMiB: number;
  results: PolicyFamilyResult[];
}

export function parseScheme(s: string): QuantizeOptions | null {
  if (s === 'fp32') return null;
  const m = /^(int8|int4|int3)(-nbits)?(?:-g(\d+))?(-acc0)?(-gptq)?(-qhead)?$/.exec(s);
  if (!m) throw new Error(`unknown scheme '${s}' (fp32, int8, int8-nbits-g32, int4-g32, int3-g64, ...-acc0, ...-gptq, ...-qhead)`);
  return {
    scheme: m[1] as 'int8' | 'int4' | 'int3',
    ...(m[2] ? { int8Kernel: 'matmulnbits' as const } : {}),
    ...(m[3] ? { groupSize: Number(m[3]) } : {}),
    ...(m[4] ? { accuracyLevel: 0 } : {}),
    ...(m[5] ? { method: 'gptq' as const } : {}),
    ...(m[6] ? { keepLmHead: false } : {}),
  };
}

async function child(args: ChildArgs): Promise<ChildResult> {
  let peak = 0;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));
  const timer = setInterval(sample, 50);
  const engine = await Engine.create({ modelDir: args.modelDir, intraOpThreads: args.threads, maxBatchSize: args.concurrency });
  const rssLoaded = process.memoryUsage().rss;
  const results: PolicyFamilyResult[] = [];
  try {
    for (const policy of args.policies) {
      if (engine.model.kind === 'autoregressive' && policy !== 'ar') continue;
      for (const family of args.families) {
        const list = problems(family, { split: 'test', seed: 0, n: args.n });
        let correct = 0;
        let tokens = 0;
        let forwards = 0;
        const t0 = performance.now();
        let next = 0;
        const texts: string[] = new Array(list.length).fill('');
        const workers = Array.from({ length: Math.min(args.concurrency, list.length) }, async () => {
          while (next < list.length) {
            const idx = next++;
            const p = list[idx];
            const r = await engine.generate({ prompt: p.prompt, options: { policy: policy as 'ar', maxNewTokens: args.maxNew, temperature: 0, seed: 1 } });
            texts[idx] = r.text;
            if (families[family].verify(p, r.text).correct) correct++;
            tokens += r.usage.completionTokens;
            forwards += r.stats.forwards;
          }
        });
        await Promise.all(workers);
        const wallMs = performance.now() - t0;
        results.push({
          policy,
          family,
          n: list.length,
          correct,
          accuracy: correct / list.length,
          tokens,
          forwards,
          tpf: forwards ? tokens / forwards : 0,
          wallMs,
          tokensPerSecond: tokens / (wallMs / 1000),
          texts,
        });
      }
    }
  } finally {
    sample();
    clearInterval(timer);
    await engine.close();
  }
  return { rssLoadedMiB: rssLoaded / 2 ** 20, rssPeakMiB: peak / 2 ** 20, results };
}

function runChild(args: ChildArgs): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = fork(__filename, ['--child', JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let got: ChildResult | null = null;
    p.on('message', (m) => (got = m as ChildResult));
    p.on('error', reject);
    p.on('exit', (code) => (got ? resolve(got) : reject(new Error(`benchmark child for ${args.modelDir} exited with ${code}`))));
  });
}

function dirSize(dir: string): number {
  return ['model.onnx', 'model.onnx.data'].reduce((s, f) => s + (fs.existsSync(path.join(dir, f)) ? fs.statSync(path.join(dir, f)).size : 0), 0);
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const r = await child(JSON.parse(process.argv[3]) as ChildArgs);
    process.send!(r);
    return;
  }
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'models/tiny-dllm' },
      n: { type: 'string', default: '40' },
      policies: { type: 'string', default: 'ar,fast-dllm-v2' },
      schemes: { type: 'string', default: 'fp32,int8,int4-g32,int4-g128,int4-g32-acc0,int4-g32-gptq,int3-g32,int3-g32-gptq' },
      families: { type: 'string', default: 'arith,string' },
      'max-new': { type: 'string', default: '96' },
      concurrency: { type: 'string', default: '8' },
      threads: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
  });
  const modelDir = path.resolve(values.model);
  if (!fs.existsSync(path.join(modelDir, MANIFEST_FILE))) throw new Error(`no model at ${modelDir} (pass --model <dir>)`);
  const schemes = values.schemes.split(',');
  const quant = schemes.map(parseScheme); // validate all before the long run
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dllm-bench-quant-'));
  const rows: Record<string, unknown>[] = [];
  const log = (s: string) => (values.json ? process.stderr.write(`${s}\n`) : console.log(s));
  try {
    log(
      `model ${modelDir}; ${values.n} test problems per family; greedy; max ${values['max-new']} new tokens; ${values.concurrency} concurrent; ${values.threads} ORT thread(s)`,
    );
    log('');
    log('| scheme | model.onnx | RSS loaded / peak | policy | family | accuracy | same text as fp32 | TPF | tokens/s |');
    log('| --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |');
    const reference = new Map<string, string[]>();
    for (const [i, scheme] of schemes.entries()) {
      let dir = modelDir;
      const q = quant[i];
      if (q) {
        dir = path.join(tmp, scheme);
        await quantizeModelDir(modelDir, dir, q);
      }
      const size = dirSize(dir);
      const r = await runChild({
        modelDir: dir,
        policies: values.policies.split(','),
        families: values.families.split(','),
        n: Number(values.n),
        maxNew: Number(values['max-new']),
        concurrency: Number(values.concurrency),
        threads: Number(values.threads),
      });
      for (const x of r.results) {
        const key = `${x.policy}/${x.family}`;
        if (scheme === 'fp32') reference.set(key, x.texts);
        const ref = reference.get(key);
        if (ref) x.sameAsFp32 = x.texts.filter((t, i) => t === ref[i]).length / x.texts.length;
        const { texts: _texts, ...rest } = x;
        const row = { scheme, sizeBytes: size, rssLoadedMiB: +r.rssLoadedMiB.toFixed(1), rssPeakMiB: +r.rssPeakMiB.toFixed(1), ...rest };
        rows.push(row);
        log(
          `| ${scheme} | ${(size / 2 ** 20).toFixed(2)} MiB | ${r.rssLoadedMiB.toFixed(0)} / ${r.rssPeakMiB.toFixed(0)} MiB | ${x.policy} | ${x.family} | ${(100 * x.accuracy).toFixed(1)}% (${x.correct}/${x.n}) | ${x.sameAsFp32 === undefined ? '-' : `${(100 * x.sameAsFp32).toFixed(0)}%`} | ${x.tpf.toFixed(2)} | ${x.tokensPerSecond.toFixed(0)} |`,
        );
      }
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (values.json) console.log(JSON.stringify({ model: modelDir, n: Number(values.n), rows }));
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
