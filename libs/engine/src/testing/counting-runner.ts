// A tiny model of the graph contract written in TypeScript, for tests of the engine's loop, masks and
// cache plumbing without an ONNX file. It is a real function of its inputs (no scripted replies):
//   value(pos) = [1 if the token is not MASK else 0, token id]; key = [0, 0] (uniform attention)
//   for each query row i: c = sum of value[0] over the key columns the attention mask lets it see
//   predicted token = table[c % table.length], with logit margin margins[position % margins.length]
// So a wrong mask, a missing or stale cache page, or a padding bug changes c and the tokens.
// It follows format dllm-farm/v2: logits only for the `logit_index` rows, statistics with
// `banned_token_ids` excluded (computed with sampling.ts `logitStatistics`, the JS reference).
import type { ModelRunner, RunResult, RunnerInfo, RunnerOutputs, RunnerTensor } from '../runner/runner';
import { logitStatistics } from '../sampling';

export interface CountingModelSpec {
  vocabSize: number;
  table: number[];
  margins: number[];
  maskId: number;
}

export class CountingRunner implements ModelRunner {
  readonly info: RunnerInfo;
  calls = 0;
  /** [B, S, P] of every forward. */
  readonly shapes: Array<[number, number, number]> = [];
  /** logit_index of every forward: per row, the positions drawn (padded to the batch's R). */
  readonly drawn: number[][][] = [];
  /** The largest position id of every forward. */
  readonly maxPositions: number[] = [];
  /** The outputs each forward fetched. */
  readonly fetched: string[][] = [];
  constructor(readonly spec: CountingModelSpec) {
    this.info = {
      inputNames: ['input_ids', 'position_ids', 'attention_mask', 'logit_index', 'banned_token_ids', 'past_key.0', 'past_value.0'],
      outputNames: ['logits', 'argmax', 'max_prob', 'log_sum_exp', 'entropy', 'present_key.0', 'present_value.0'],
      layers: 1,
      kvHeads: 1,
      headDim: 2,
      vocabSize: spec.vocabSize,
    };
  }

  async run(feeds: Record<string, RunnerTensor>, fetches: string[]): Promise<RunResult> {
    this.calls++;
    this.fetched.push([...fetches]);
    const [B, S] = feeds.input_ids.dims;
    const ids = feeds.input_ids.data as BigInt64Array;
    const pos = feeds.position_ids.data as BigInt64Array;
    const mask = feeds.attention_mask.data as Float32Array;
    const pv = feeds['past_value.0'];
    const P = pv.dims[2];
    const T = P + S;
    this.shapes.push([B, S, P]);
    let maxPos = -1;
    for (const p of pos) maxPos = Math.max(maxPos, Number(p));
    this.maxPositions.push(maxPos);
    if (feeds.attention_mask.dims.join() !== [B, 1, S, T].join()) throw new Error(`bad mask dims ${feeds.attention_mask.dims}`);
    const V = this.spec.vocabSize;
    const presentV = new Float32Array(B * S * 2);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) {
        const t = Number(ids[b * S + s]);
        if (t < 0 || t >= V) throw new Error(`token ${t} out of range`);
        presentV[(b * S + s) * 2] = t === this.spec.maskId ? 0 : 1;
        presentV[(b * S + s) * 2 + 1] = t;
      }
    }
    const logits = new Float32Array(B * S * V);
    const past = pv.data as Float32Array;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < S; i++) {
        let c = 0;
        const row = (b * S + i) * T;
        for (let j = 0; j < P; j++) if (mask[row + j] === 0) c += past[(b * P + j) * 2];
        for (let k = 0; k < S; k++) if (mask[row + P + k] === 0) c += presentV[(b * S + k) * 2];
        const tok = this.spec.table[c % this.spec.table.length];
        const m = this.spec.margins[Number(pos[b * S + i]) % this.spec.margins.length];
        logits[(b * S + i) * V + tok] = m;
      }
    }
    const li = feeds.logit_index;
    if (!li || li.dims.length !== 2 || li.dims[0] !== B) throw new Error(`bad logit_index dims ${li?.dims}`);
    const R = li.dims[1];
    const idx = li.data as BigInt64Array;
    const banned = Array.from(feeds.banned_token_ids.data as BigInt64Array, Number);
    this.drawn.push(Array.from({ length: B }, (_, b) => Array.from(idx.subarray(b * R, (b + 1) * R), Number)));
    const sel = new Float32Array(B * R * V);
    const argmax = new BigInt64Array(B * R);
    const maxProb = new Float32Array(B * R);
    const lse = new Float32Array(B * R);
    const entropy = new Float32Array(B * R);
    for (let b = 0; b < B; b++) {
      for (let k = 0; k < R; k++) {
        const i = Number(idx[b * R + k]);
        if (i < 0 || i >= S) throw new Error(`logit_index ${i} outside 0..${S - 1}`);
        const j = b * R + k;
        sel.set(logits.subarray((b * S + i) * V, (b * S + i + 1) * V), j * V);
        const st = logitStatistics(sel, j * V, V, banned);
        argmax[j] = BigInt(st.argmax);
        maxProb[j] = st.maxProb;
        lse[j] = st.logSumExp;
        entropy[j] = st.entropy;
      }
    }
    const all: RunnerOutputs = {
      logits: { type: 'float32', dims: [B, R, V], data: sel },
      argmax: { type: 'int64', dims: [B, R], data: argmax },
      max_prob: { type: 'float32', dims: [B, R], data: maxProb },
      log_sum_exp: { type: 'float32', dims: [B, R], data: lse },
      entropy: { type: 'float32', dims: [B, R], data: entropy },
    };
    const out: RunnerOutputs = {};
    for (const f of fetches) if (all[f]) out[f] = all[f];
    if (fetches.includes('present_key.0')) out['present_key.0'] = { type: 'float32', dims: [B, 1, S, 2], data: new Float32Array(B * S * 2) };
    if (fetches.includes('present_value.0')) out['present_value.0'] = { type: 'float32', dims: [B, 1, S, 2], data: presentV };
    return { outputs: out };
  }

  async close(): Promise<void> {}
}

/** Character codec over a tiny alphabet: id = index in `chars`; ids >= chars.length decode to ''. */
export function charCodec(chars: string) {
  return {
    encode: (text: string) =>
      [...text].map((ch) => {
        const i = chars.indexOf(ch);
        if (i < 0) throw new Error(`character ${JSON.stringify(ch)} not in the test alphabet`);
        return i;
      }),
    decode: (ids: readonly number[]) => ids.map((i) => (i < chars.length ? chars[i] : '')).join(''),
  };
}
