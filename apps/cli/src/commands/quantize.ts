// dllm-farm quantize: write a weight-only quantized copy of a model directory (docs/QUANTIZATION.md).
import { GROUP_SIZES, METHODS, SCHEMES, quantizeModelDir, resolveQuantizeOptions, type QuantizeOptions } from '@dllm/quant';
import { parseFlags, UsageError, type CliCommand } from '../command';
import { startActivity } from '../progress';

const HELP = `Usage:
  dllm-farm quantize <model-dir> <out-dir> --weights ${SCHEMES.join('|')} [options]

Writes <out-dir>: the same model format with every linear layer (MatMul on a constant weight)
quantized, weights only; activations stay float32. The manifest records the quantization and the
version gets a suffix (e.g. 1.0.0+int4-g32-rtn) so servers keep quantized and float models apart.

Options:
  --weights         int8: per output channel, DequantizeLinear -> MatMul
                    int4: block-wise, com.microsoft MatMulNBits
                    int3: block-wise, 3-bit codes stored in MatMulNBits 4-bit containers
  --group-size      weights per scale for int4/int3: ${GROUP_SIZES.join(', ')} (default 32)
  --method          ${METHODS.join(', ')} (default rtn: round to nearest; gptq: error feedback
                    against calibration activations, int4/int3 only)
  --calib-families  gptq calibration task families, train split (default arith,string)
  --calib-n         gptq calibration texts per family (default 32)
  --accuracy-level  MatMulNBits accuracy_level 0-4 (default 4: int8 activation math on CPU, fastest
                    here; 0 keeps float activations, exact weight-only)
  --int8-kernel     dequantize (default) or matmulnbits (block-wise 8-bit MatMulNBits)
  --quantize-lm-head  quantize the output projection (logits) too; by default it stays float32
  --keep <substr>   leave weights whose name contains <substr> in float32 (repeatable)
  --force           overwrite a non-empty <out-dir>
  --json            print one JSON object`;

function toInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} must be a non-negative integer, got '${v}'`);
  return Number(v);
}

export const command: CliCommand = {
  name: 'quantize',
  async run(argv) {
    const parsed = parseFlags(
      {
        args: argv,
        allowPositionals: true,
        options: {
          weights: { type: 'string' },
          'group-size': { type: 'string' },
          method: { type: 'string' },
          'accuracy-level': { type: 'string' },
          'int8-kernel': { type: 'string' },
          'quantize-lm-head': { type: 'boolean' },
          keep: { type: 'string', multiple: true },
          force: { type: 'boolean' },
          'calib-families': { type: 'string' },
          'calib-n': { type: 'string' },
          json: { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      },
      HELP,
    );
    const { values, positionals } = parsed;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <model-dir> <out-dir>, got ${positionals.length} argument(s)\n\n${HELP}`);
    if (!values.weights) throw new UsageError(`--weights is required (${SCHEMES.join(', ')})\n\n${HELP}`);
    const kernel = values['int8-kernel'];
    if (kernel !== undefined && kernel !== 'dequantize' && kernel !== 'matmulnbits')
      throw new UsageError(`--int8-kernel must be dequantize or matmulnbits, got '${kernel}'`);
    const opts = {
      scheme: values.weights,
      groupSize: toInt('group-size', values['group-size']),
      method: values.method,
      accuracyLevel: toInt('accuracy-level', values['accuracy-level']),
      int8Kernel: kernel,
      keepLmHead: !values['quantize-lm-head'],
      keep: values.keep ?? [],
    } as QuantizeOptions;
    try {
      resolveQuantizeOptions(opts);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const [src, out] = positionals;
    const activity = startActivity('quantize');
    const log = values.json ? undefined : (line: string) => activity.note(line);
    let r: Awaited<ReturnType<typeof quantizeModelDir>>;
    try {
      r = await quantizeModelDir(src, out, opts, {
        force: values.force ?? false,
        calibration: { families: values['calib-families']?.split(',').map((f) => f.trim()), perFamily: toInt('calib-n', values['calib-n']) },
        log,
      });
    } finally {
      activity.done();
    }
    if (values.json) {
      console.log(JSON.stringify({ out: r.outDir, version: r.version, quantization: r.record, size_in: r.sizeIn, size_out: r.sizeOut, layers: r.layers }));
      return 0;
    }
    const q = r.layers.filter((l) => l.quantized).length;
    console.log(`wrote ${r.outDir}`);
    console.log(`  version       ${r.version}`);
    console.log(
      `  scheme        ${r.record.scheme} (${r.record.bits}-bit${r.record.group_size ? `, group ${r.record.group_size}` : ', per channel'}, ${r.record.method}, ${r.record.kernel})`,
    );
    console.log(`  linear layers ${q} quantized, ${r.layers.length - q} kept float32${r.record.kept_fp32.length ? ` (${r.record.kept_fp32.join(', ')})` : ''}`);
    console.log(`  model.onnx    ${mb(r.sizeIn)} -> ${mb(r.sizeOut)} (${((100 * r.sizeOut) / r.sizeIn).toFixed(1)}%)`);
    if (r.record.container_bits)
      console.log(
        `  note          onnxruntime has no 3-bit kernel: 3-bit codes are stored in ${r.record.container_bits}-bit containers (int3 accuracy, int4 size)`,
      );
    return 0;
  },
};

function mb(n: number): string {
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
