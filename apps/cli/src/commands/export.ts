// dllm-farm export [--format checkpoint|transformers.js] <model-dir> <out-dir>: the inverse of
// convert (a Hugging Face checkpoint for training), or a folder transformers.js runs offline.
import { exportCheckpoint, exportTransformersJs } from '@dllm/quant';
import { parseFlags, UsageError, type CliCommand } from '../command';

const FORMATS = ['checkpoint', 'transformers.js'] as const;

const HELP = `Usage:
  dllm-farm export <model-dir> <out-dir> [--format checkpoint|transformers.js] [--json]

Options:
  --format F  checkpoint (default): writes a float dllm-farm model directory back out as a Hugging Face
              Qwen2-style checkpoint (config.json with the manifest's tokens and block size,
              model.safetensors, tokenizer.json). tools/train/train.py takes it as --init; dllm-farm
              convert turns it back into the same graph. Quantized models are refused (their float
              weights are gone).
              transformers.js: writes a folder @huggingface/transformers loads offline with
              AutoModelForCausalLM / AutoTokenizer (config.json with model_type qwen2,
              generation_config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx). The
              graph is the served dllm-farm/v2 one, nodes and weights kept, wrapped to the
              transformers.js decoder signature (attention_mask int64 [B, P+S], position_ids,
              past_key_values.<i>.key/value -> present.<i>.key/value, logits for every position; the
              draw statistics are dropped). Autoregressive v2 models only; weights must be inline.
  --json      print the result as one JSON object`;

export const command: CliCommand = {
  name: 'export',
  async run(argv) {
    const { values: v, positionals } = parseFlags(
      {
        args: argv,
        allowPositionals: true,
        options: { format: { type: 'string', default: 'checkpoint' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      },
      HELP,
    );
    if (v.help) {
      process.stdout.write(HELP + '\n');
      return 0;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <model-dir> <out-dir>, got ${positionals.length} argument(s)\n\n${HELP}`);
    const format = v.format as (typeof FORMATS)[number];
    if (!FORMATS.includes(format)) throw new UsageError(`--format must be one of ${FORMATS.join(', ')}, got '${v.format}'\n\n${HELP}`);
    if (format === 'transformers.js') {
      const r = exportTransformersJs(positionals[0], positionals[1]);
      process.stdout.write(
        v.json ? JSON.stringify(r) + '\n' : `wrote ${r.files.join(', ')} (${r.layers} layers; ${r.prunedNodes} statistics nodes dropped) to ${r.outDir}\n`,
      );
      return 0;
    }
    const r = exportCheckpoint(positionals[0], positionals[1]);
    const params = r.parameters.toLocaleString('en-US');
    process.stdout.write(v.json ? JSON.stringify(r) + '\n' : `wrote ${r.tensors} tensors (${params} parameters) to ${r.outDir}\n`);
    return 0;
  },
};
