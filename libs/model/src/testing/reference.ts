// A plain TypeScript Qwen2 forward pass (no cache), written from the Hugging Face definitions, to
// check the ONNX graph against an independent implementation. Slow; tiny configs only.
import type { Architecture } from '../manifest';

function matvec(w: Float32Array, x: Float64Array, out: number, inF: number, bias?: Float32Array): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = bias ? bias[o] : 0;
    const base = o * inF;
    for (let i = 0; i < inF; i++) s += w[base + i] * x[i];
    y[o] = s;
  }
  return y;
}

function rms(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]);
}

/** logits [S][V] for one sequence; mask(q, k) true = q may attend to k. */
export function referenceForward(
  a: Architecture,
  vocab: number,
  W: Record<string, Float32Array>,
  ids: number[],
  positions: number[],
  mask: (q: number, k: number) => boolean,
): Float64Array[] {
  const H = a.hidden_size;
  const Dh = a.head_dim;
  const Hq = a.num_attention_heads;
  const Hkv = a.num_key_value_heads;
  const G = Hq / Hkv;
  const S = ids.length;
  const emb = W['model.embed_tokens.weight'];
  let h = ids.map((id) => Float64Array.from(emb.subarray(id * H, (id + 1) * H)));
  const rope = (v: Float64Array, pos: number) => {
    const out = new Float64Array(Dh);
    const half = Dh / 2;
    for (let i = 0; i < half; i++) {
      const f = pos / Math.pow(a.rope_theta, (2 * i) / Dh);
      const c = Math.cos(f);
      const s = Math.sin(f);
      out[i] = v[i] * c - v[i + half] * s;
      out[i + half] = v[i + half] * c + v[i] * s;
    }
    return out;
  };
  for (let l = 0; l < a.num_layers; l++) {
    const p = `model.layers.${l}`;
    const xs = h.map((x) => rms(x, W[`${p}.input_layernorm.weight`], a.rms_norm_eps));
    const q = xs.map((x) => matvec(W[`${p}.self_attn.q_proj.weight`], x, Hq * Dh, H, W[`${p}.self_attn.q_proj.bias`]));
    const k = xs.map((x) => matvec(W[`${p}.self_attn.k_proj.weight`], x, Hkv * Dh, H, W[`${p}.self_attn.k_proj.bias`]));
    const v = xs.map((x) => matvec(W[`${p}.self_attn.v_proj.weight`], x, Hkv * Dh, H, W[`${p}.self_attn.v_proj.bias`]));
    const attn = Array.from({ length: S }, () => new Float64Array(Hq * Dh));
    for (let hd = 0; hd < Hq; hd++) {
      const kv = Math.floor(hd / G);
      for (let s = 0; s < S; s++) {
        const qh = rope(q[s].subarray(hd * Dh, (hd + 1) * Dh), positions[s]);
        const scores: number[] = [];
        for (let t = 0; t < S; t++) {
          if (!mask(s, t)) {
            scores.push(-Infinity);
            continue;
          }
          const kh = rope(k[t].subarray(kv * Dh, (kv + 1) * Dh), positions[t]);
          let d = 0;
          for (let i = 0; i < Dh; i++) d += qh[i] * kh[i];
          scores.push(d / Math.sqrt(Dh));
        }
        const m = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - m));
        const z = e.reduce((x, y) => x + y, 0);
        for (let t = 0; t < S; t++) {
          const pr = e[t] / z;
          if (!pr) continue;
          for (let i = 0; i < Dh; i++) attn[s][hd * Dh + i] += pr * v[t][kv * Dh + i];
        }
      }
    }
    h = h.map((x, s) => {
      const o = matvec(W[`${p}.self_attn.o_proj.weight`], attn[s], H, Hq * Dh);
      return x.map((val, i) => val + o[i]);
    });
    h = h.map((x) => {
      const n = rms(x, W[`${p}.post_attention_layernorm.weight`], a.rms_norm_eps);
      const g = matvec(W[`${p}.mlp.gate_proj.weight`], n, a.intermediate_size, H);
      const u = matvec(W[`${p}.mlp.up_proj.weight`], n, a.intermediate_size, H);
      const act = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = matvec(W[`${p}.mlp.down_proj.weight`], act, H, a.intermediate_size);
      return x.map((val, i) => val + d[i]);
    });
  }
  const head = a.tie_word_embeddings ? emb : W['lm_head.weight'];
  return h.map((x) => matvec(head, rms(x, W['model.norm.weight'], a.rms_norm_eps), vocab, H));
}
