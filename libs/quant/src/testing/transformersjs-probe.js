// Runs transformers.js on an exported folder in a plain Node process and prints JSON on stdout:
// per prompt, the token ids, the prompt forward's logits and greedy generate()'s ids and text.
// Tests call it as a child process: inside Jest's module sandbox onnxruntime-node's output
// Float32Arrays come from another realm and fail onnxruntime-common's instanceof checks.
//   node transformersjs-probe.js <exported-dir> <max-new> <prompts.json>
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const tjs = require('@huggingface/transformers');

async function main() {
  const [dir, maxNewArg, promptsFile] = process.argv.slice(2);
  const maxNew = Number(maxNewArg);
  const prompts = JSON.parse(fs.readFileSync(promptsFile, 'utf8'));
  tjs.env.allowRemoteModels = false;
  tjs.env.localModelPath = path.dirname(path.resolve(dir)) + path.sep;
  const name = path.basename(dir);
  const tokenizer = await tjs.AutoTokenizer.from_pretrained(name, { local_files_only: true });
  const model = await tjs.AutoModelForCausalLM.from_pretrained(name, { local_files_only: true, dtype: 'fp32', session_options: { intraOpNumThreads: 1 } });
  const session = model.sessions.model;
  const out = { inputNames: session.inputNames, outputNames: session.outputNames, results: [] };
  for (const p of prompts) {
    const ids = tokenizer.encode(p, { add_special_tokens: false });
    const input = new tjs.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, ids.length]);
    const fwd = await model({ input_ids: input, attention_mask: tjs.ones_like(input) });
    const gen = await model.generate({ input_ids: input, attention_mask: tjs.ones_like(input), max_new_tokens: maxNew, do_sample: false });
    const generated = gen.tolist()[0].map(Number).slice(ids.length);
    const text = tokenizer.decode(generated, { skip_special_tokens: true });
    out.results.push({ ids, logitsDims: fwd.logits.dims, logits: Array.from(fwd.logits.data), generated, text });
  }
  await model.dispose();
  process.stdout.write(JSON.stringify(out));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
