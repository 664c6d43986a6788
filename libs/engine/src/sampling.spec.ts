import { Sfc32 as Rng } from '@dllm/prng';
import { drawToken } from './sampling';

const logits = Float32Array.from([1, 3, 2, 0.5, -1]);
const greedy = { temperature: 0, topK: 0, topP: 1 };

describe('drawToken', () => {
  it('greedy takes the argmax with its softmax probability, entropy and log-prob', () => {
    const d = drawToken(logits, 0, 5, greedy, null);
    expect(d.token).toBe(1);
    const z = [1, 3, 2, 0.5, -1].map(Math.exp);
    const sum = z.reduce((a, b) => a + b, 0);
    expect(d.prob).toBeCloseTo(z[1] / sum, 10);
    expect(d.logprob).toBeCloseTo(Math.log(z[1] / sum), 10);
    const h = -z.map((v) => v / sum).reduce((a, p) => a + p * Math.log(p), 0);
    expect(d.entropy).toBeCloseTo(h, 10);
  });

  it('reads the row at an offset and never returns a banned token', () => {
    const two = Float32Array.from([0, 0, 9, 0, 5, 1]);
    expect(drawToken(two, 3, 3, greedy, null).token).toBe(1);
    expect(drawToken(two, 0, 3, greedy, null, [2]).token).toBe(0);
  });

  it('same seed gives the same tokens; different seeds differ', () => {
    const flat = new Float32Array(50).fill(0);
    const p = { temperature: 1, topK: 0, topP: 1 };
    const run = (seed: number) => {
      const r = new Rng(seed);
      return Array.from({ length: 40 }, () => drawToken(flat, 0, 50, p, r).token);
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('top-k keeps only the k best tokens and renormalises', () => {
    const p = { temperature: 1, topK: 2, topP: 1 };
    const r = new Rng(1);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) {
      const d = drawToken(logits, 0, 5, p, r);
      seen.add(d.token);
      const z1 = Math.exp(3),
        z2 = Math.exp(2);
      expect(d.prob).toBeCloseTo(d.token === 1 ? z1 / (z1 + z2) : z2 / (z1 + z2), 10);
    }
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it('top-p keeps the smallest set with mass >= p', () => {
    // probabilities 0.5, 0.3, 0.2
    const l = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
    const r = new Rng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(drawToken(l, 0, 3, { temperature: 1, topK: 0, topP: 0.75 }, r).token);
    expect([...seen].sort()).toEqual([0, 1]);
    const only = drawToken(l, 0, 3, { temperature: 1, topK: 0, topP: 0.4 }, r);
    expect(only.token).toBe(0);
    expect(only.prob).toBeCloseTo(1, 10);
    expect(only.entropy).toBeCloseTo(0, 10);
  });

  it('temperature sharpens or flattens the distribution it samples from', () => {
    const cold = drawToken(logits, 0, 5, { temperature: 0.1, topK: 1, topP: 1 }, new Rng(1));
    expect(cold.token).toBe(1);
    const r = new Rng(5);
    const counts = [0, 0, 0, 0, 0];
    for (let i = 0; i < 2000; i++) counts[drawToken(logits, 0, 5, { temperature: 100, topK: 0, topP: 1 }, r).token]++;
    for (const c of counts) expect(c).toBeGreaterThan(250); // near uniform at T=100
  });

  it('rejects NaN logits and sampling without an rng', () => {
    expect(() => drawToken(Float32Array.from([0, NaN]), 0, 2, greedy, null)).toThrow(/NaN/);
    expect(() => drawToken(logits, 0, 5, { temperature: 1, topK: 0, topP: 1 }, null)).toThrow(/rng/);
  });
});
