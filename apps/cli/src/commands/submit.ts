// dllm-farm submit <file.jsonl>: upload a JSONL file, create a batch, follow it with a live
// progress bar, then save the output and error files. The demo calls submitBatch() directly.
import * as fs from 'node:fs';
import { type parseArgs } from 'node:util';
import * as path from 'node:path';
import { GatewayClient, type Batch } from '@dllm/contracts';
import { parseFlags, UsageError, type CliCommand } from '../command';

export const GATEWAY_FLAGS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export const GATEWAY_HELP = `  --url URL          gateway base URL (default $DLLM_GATEWAY_URL or http://127.0.0.1:8080)
  --api-key KEY      API key (default $DLLM_API_KEY)
  --json             print one JSON object instead of readable output`;

export function clientFrom(values: { url?: string; 'api-key'?: string }): GatewayClient {
  const apiKey = values['api-key'] ?? process.env.DLLM_API_KEY;
  if (!apiKey) throw new UsageError('no API key: pass --api-key or set DLLM_API_KEY');
  const baseUrl = values.url ?? process.env.DLLM_GATEWAY_URL ?? 'http://127.0.0.1:8080';
  if (!/^https?:\/\//.test(baseUrl)) throw new UsageError(`--url must start with http:// or https:// (got '${baseUrl}')`);
  return new GatewayClient({ baseUrl, apiKey });
}

type FlagSpec = { type: 'string' | 'boolean'; short?: string; default?: string | boolean };

/**
 * The common start of the commands that act on one batch or job (status, cancel, results): the
 * gateway flags plus `extra`, --help, exactly one id, a client. Null when the help was printed.
 */
export function oneIdCommand<E extends Record<string, FlagSpec> = Record<never, FlagSpec>>(argv: string[], help: string, extra?: E) {
  type Values = ReturnType<typeof parseArgs<{ options: typeof GATEWAY_FLAGS & E; allowPositionals: true }>>['values'];
  const { values: raw, positionals } = parseFlags({ args: argv, allowPositionals: true, options: { ...GATEWAY_FLAGS, ...extra } });
  const values = raw as unknown as Values & { help: boolean; url?: string; 'api-key'?: string };
  if (values.help) {
    console.log(help);
    return null;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one batch or job id\n\n${help}`);
  return { values, id: positionals[0], client: clientFrom(values) };
}

export function progressBar(b: Batch, startedMs: number, width = 30): string {
  const { total, completed, failed } = b.request_counts;
  const done = completed + failed;
  const frac = total ? done / total : 0;
  const fill = Math.round(frac * width);
  const secs = ((Date.now() - startedMs) / 1000).toFixed(1);
  return `[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${String(done).padStart(String(total).length)}/${total}  ${(frac * 100).toFixed(0).padStart(3)}%  failed ${failed}  ${b.status}  ${secs}s`;
}

/** Renders rows as an aligned two-column table. */
export function table(rows: [string, unknown][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v === null || v === undefined ? '-' : String(v)}`).join('\n');
}

export const iso = (t: number | null | undefined) => (t ? new Date(t * 1000).toISOString() : null);

export interface SubmitOptions {
  file: string;
  endpoint: '/v1/completions' | '/v1/chat/completions';
  window: string;
  wait: boolean;
  outDir: string;
  metadata?: Record<string, string>;
  /** Called on every poll (the CLI draws its bar here). */
  onProgress?: (b: Batch) => void;
  pollMs?: number;
}

export interface SubmitOutcome {
  batch: Batch;
  outputPath: string | null;
  errorPath: string | null;
  seconds: number;
}

export async function submitBatch(client: GatewayClient, o: SubmitOptions): Promise<SubmitOutcome> {
  const started = Date.now();
  const data = fs.readFileSync(o.file);
  const file = await client.uploadFile(data, path.basename(o.file));
  let batch = await client.createBatch({
    input_file_id: file.id,
    endpoint: o.endpoint,
    completion_window: o.window,
    ...(o.metadata ? { metadata: o.metadata } : {}),
  });
  o.onProgress?.(batch);
  if (!o.wait) return { batch, outputPath: null, errorPath: null, seconds: (Date.now() - started) / 1000 };
  // Ctrl-C while following: cancel the batch (finished lines are kept), then keep following.
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\ncancelling ${batch.id} (Ctrl-C again to leave it running)\n`);
    void client.cancelBatch(batch.id).catch(() => {});
  };
  process.on('SIGINT', onSigint);
  try {
    batch = await client.waitBatch(batch.id, (b) => o.onProgress?.(b), o.pollMs ?? 300);
  } finally {
    process.off('SIGINT', onSigint);
  }
  const saved = await saveResults(client, batch, o.outDir);
  return { batch, ...saved, seconds: (Date.now() - started) / 1000 };
}

export async function saveResults(client: GatewayClient, batch: Batch, outDir: string): Promise<{ outputPath: string | null; errorPath: string | null }> {
  fs.mkdirSync(outDir, { recursive: true });
  let outputPath: string | null = null;
  let errorPath: string | null = null;
  if (batch.output_file_id) {
    outputPath = path.join(outDir, `${batch.id}_output.jsonl`);
    fs.writeFileSync(outputPath, await client.fileContent(batch.output_file_id));
  }
  if (batch.error_file_id) {
    errorPath = path.join(outDir, `${batch.id}_errors.jsonl`);
    fs.writeFileSync(errorPath, await client.fileContent(batch.error_file_id));
  }
  return { outputPath, errorPath };
}

const HELP = `Usage: dllm-farm submit <file.jsonl> [options]

Uploads a JSONL batch file (one {custom_id, method, url, body} per line), creates a batch and
follows it with a progress bar; output and error files are saved next to --out.

  --endpoint PATH    /v1/completions (default) or /v1/chat/completions
  --window W         completion window, e.g. 24h (default 24h)
  --out DIR          where to save <batch>_output.jsonl / _errors.jsonl (default .)
  --no-wait          create the batch and return its id
${GATEWAY_HELP}`;

export const command: CliCommand = {
  name: 'submit',
  async run(argv) {
    const parsed = parseFlags({
      args: argv,
      allowPositionals: true,
      options: {
        ...GATEWAY_FLAGS,
        endpoint: { type: 'string', default: '/v1/completions' },
        window: { type: 'string', default: '24h' },
        out: { type: 'string', default: '.' },
        'no-wait': { type: 'boolean', default: false },
      },
    });
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(`expected one JSONL file\n\n${HELP}`);
    const file = positionals[0];
    if (!fs.existsSync(file)) throw new UsageError(`no such file: ${file}`);
    if (values.endpoint !== '/v1/completions' && values.endpoint !== '/v1/chat/completions') {
      throw new UsageError(`--endpoint must be /v1/completions or /v1/chat/completions (got '${values.endpoint}')`);
    }
    const client = clientFrom(values);
    const tty = process.stderr.isTTY && !values.json;
    const started = Date.now();
    let lastLogged = -1;
    const outcome = await submitBatch(client, {
      file,
      endpoint: values.endpoint,
      window: values.window,
      wait: !values['no-wait'],
      outDir: values.out,
      onProgress: (b) => {
        if (values.json) return;
        if (tty) process.stderr.write(`\r${progressBar(b, started)}\x1b[K`);
        else {
          const decile = Math.floor(((b.request_counts.completed + b.request_counts.failed) / Math.max(1, b.request_counts.total)) * 10);
          if (decile !== lastLogged) {
            lastLogged = decile;
            process.stderr.write(`${progressBar(b, started)}\n`);
          }
        }
      },
    });
    if (tty) process.stderr.write('\n');
    const b = outcome.batch;
    if (values.json) {
      console.log(JSON.stringify({ batch: b, output_path: outcome.outputPath, error_path: outcome.errorPath, seconds: outcome.seconds }));
    } else {
      console.log(
        table([
          ['batch', b.id],
          ['status', b.status],
          ['requests', `${b.request_counts.total} total, ${b.request_counts.completed} completed, ${b.request_counts.failed} failed`],
          ['output', outcome.outputPath ?? b.output_file_id],
          ['errors', outcome.errorPath ?? b.error_file_id],
          ['time', `${outcome.seconds.toFixed(1)} s`],
        ]),
      );
    }
    return b.status === 'completed' || values['no-wait'] ? 0 : 1;
  },
};
