// dllm-farm convert <hf-dir> <out-dir>: a Hugging Face Qwen2-style checkpoint (config.json,
// model.safetensors or shards, tokenizer.json) -> a dllm-farm model directory (dllm.json,
// model.onnx [+ model.onnx.data], tokenizer.json). No Python involved.
import { convertCheckpoint, type ConvertOptions } from '@dllm/model';
import { parseFlags, UsageError, type CliCommand } from '../command';
import { startActivity } from '../progress';

const HELP = `Usage:
  dllm-farm convert <hf-dir> <out-dir> [options]

Converts a Hugging Face Qwen2-style checkpoint (config.json, model.safetensors or
model.safetensors.index.json + shards, fp32/fp16/bf16, tokenizer.json) into a dllm-farm model
directory. Special tokens come from the flags, then config.json (mask_token_id, eos_token_id,
pad_token_id, bd_size), then tokenizer.json by name (<|mask|>/[MASK], <|eos|>/<|im_end|>/<|endoftext|>, <|pad|>).

Options:
  --mask-token-id N   id of the mask token
  --eos-token-id N    id of the stop token
  --pad-token-id N    id of the pad token (default: found by name, else the stop token)
  --block-size N      decoding block size (default: config bd_size, else 32)
  --name NAME         model name (default: the checkpoint directory's name)
  --version V         model version, part of the KV cache key (default: name + hash of config and weights)
  --kind K            block-diffusion (default) or autoregressive (default from config dllm_kind)
  --attention A       matmul (default, fastest measured on CPU) or mha (com.microsoft MultiHeadAttention)
  --fuse-linears      one MatMul for q/k/v and one for gate/up (no gain measured on CPU; see bench/model-graph.ts)
  --external-data     always write weights to model.onnx.data (default: only past ~1.8 GiB)
  --json              print one JSON object instead of text`;

function intFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
  return Number(v);
}

export const command: CliCommand = {
  name: 'convert',
  async run(argv) {
    const parsed = parseFlags(
      {
        args: argv,
        allowPositionals: true,
        options: {
          'mask-token-id': { type: 'string' },
          'eos-token-id': { type: 'string' },
          'pad-token-id': { type: 'string' },
          'block-size': { type: 'string' },
          name: { type: 'string' },
          version: { type: 'string' },
          kind: { type: 'string' },
          attention: { type: 'string' },
          'external-data': { type: 'boolean' },
          'fuse-linears': { type: 'boolean' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      HELP,
    );
    const { values: v, positionals } = parsed;
    if (v.help) {
      process.stdout.write(HELP + '\n');
      return 0;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <hf-dir> <out-dir>, got ${positionals.length} argument(s)\n\n${HELP}`);
    if (v.kind !== undefined && v.kind !== 'block-diffusion' && v.kind !== 'autoregressive')
      throw new UsageError(`--kind must be block-diffusion or autoregressive, got '${v.kind}'`);
    if (v.attention !== undefined && v.attention !== 'matmul' && v.attention !== 'mha')
      throw new UsageError(`--attention must be matmul or mha, got '${v.attention}'`);
    const blockSize = intFlag('block-size', v['block-size']);
    if (blockSize === 0) throw new UsageError('--block-size must be at least 1');
    const opts: ConvertOptions = {
      maskTokenId: intFlag('mask-token-id', v['mask-token-id']),
      eosTokenId: intFlag('eos-token-id', v['eos-token-id']),
      padTokenId: intFlag('pad-token-id', v['pad-token-id']),
      blockSize,
      name: v.name,
      version: v.version,
      kind: v.kind as ConvertOptions['kind'],
      attention: v.attention as ConvertOptions['attention'],
      externalData: v['external-data'] ? true : 'auto',
      fuseLinears: v['fuse-linears'] ?? false,
      log: v.json ? undefined : (line) => activity.note(line),
    };
    const activity = startActivity('convert'); // the log above writes through it (called only once the conversion runs)
    let r: Awaited<ReturnType<typeof convertCheckpoint>>;
    try {
      r = await convertCheckpoint(positionals[0], positionals[1], opts);
    } finally {
      activity.done();
    }
    if (v.json) {
      process.stdout.write(
        JSON.stringify({
          outDir: r.outDir,
          files: r.files,
          weightBytes: r.weightBytes,
          externalData: r.externalData,
          seconds: r.seconds,
          manifest: r.manifest,
        }) + '\n',
      );
    } else {
      const m = r.manifest;
      const a = m.architecture;
      process.stdout.write(
        [
          `converted ${positionals[0]} -> ${r.outDir} in ${r.seconds.toFixed(1)} s`,
          `  model     ${m.name} (version ${m.version}, ${m.kind})`,
          `  shape     ${a.num_layers} layers, hidden ${a.hidden_size}, heads ${a.num_attention_heads}/${a.num_key_value_heads} kv, head_dim ${a.head_dim}, vocab ${m.vocab_size}`,
          `  tokens    mask ${m.tokens.mask}, eos ${m.tokens.eos}, pad ${m.tokens.pad}${m.tokens.bos !== undefined ? `, bos ${m.tokens.bos}` : ''}; block ${m.block_size}`,
          `  weights   ${(r.weightBytes / 1024 / 1024).toFixed(1)} MiB fp32${r.externalData ? ' in model.onnx.data' : ' inline'}`,
          `  files     ${r.files.map((f) => f.slice(r.outDir.length + 1)).join(', ')}`,
        ].join('\n') + '\n',
      );
    }
    return 0;
  },
};
