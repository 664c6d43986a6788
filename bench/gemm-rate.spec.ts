import {
  combineGemmRates,
  forwardFlops,
  gflopsPerSecond,
  median,
  modelGemmShapes,
  parseGemmShapes,
  referenceRate,
  SQUARE_GEMM,
  type FlopArch,
} from './gemm-rate';

// tiny-dllm's shape (models/tiny-dllm/dllm.json)
const tiny: FlopArch = { hidden_size: 192, intermediate_size: 512, num_layers: 4, num_attention_heads: 6, num_key_value_heads: 2, head_dim: 32 };

describe('forwardFlops', () => {
  it('counts one AR step of tiny-dllm by hand: linears, LM head, attention over P+1 keys', () => {
    // per layer: Q 192x192, K and V 2 x 192x64, O 192x192, MLP 3 x 192x512 = 393,216 MACs; 4 layers
    const linears = 4 * (192 * 192 + 2 * 192 * 64 + 192 * 192 + 3 * 192 * 512);
    expect(linears).toBe(1_572_864);
    const head = 192 * 90;
    const attention = 4 * 11 * 192 * 2; // 10 cached + 1 new key, scores and values, q = 192
    expect(forwardFlops(tiny, 90, { positions: 1, logitRows: 1, keys: 11 })).toBe(2 * (linears + head + attention));
  });

  it('is linear in the work, and a forward that draws nothing skips the LM head', () => {
    const a = { positions: 8, logitRows: 8, keys: 8 * 40 };
    const b = { positions: 32, logitRows: 0, keys: 32 * 64 };
    const sum = { positions: 40, logitRows: 8, keys: 8 * 40 + 32 * 64 };
    expect(forwardFlops(tiny, 90, sum)).toBe(forwardFlops(tiny, 90, a) + forwardFlops(tiny, 90, b));
    expect(forwardFlops(tiny, 90, { positions: 1, logitRows: 1, keys: 1 }) - forwardFlops(tiny, 90, { positions: 1, logitRows: 0, keys: 1 })).toBe(
      2 * 192 * 90,
    );
  });
});

describe('GEMM-rate helpers', () => {
  it('median of odd and even lists, and refuses an empty one', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(() => median([])).toThrow(/empty/);
  });

  it('gflopsPerSecond: 2 x 1024^3 FLOPs in 10 ms is 214.7 GFLOP/s', () => {
    expect(gflopsPerSecond(2 * 1024 ** 3, 10)).toBeCloseTo(214.748, 3);
  });

  it('parseGemmShapes reads MxKxN lists and rejects malformed ones', () => {
    expect(parseGemmShapes('1x192x512, 1024x1024x1024')).toEqual([
      { M: 1, K: 192, N: 512 },
      { M: 1024, K: 1024, N: 1024 },
    ]);
    for (const bad of ['1x192', '0x1x1', '1x2x3x4', 'ax1x1', '1.5x2x3']) expect(() => parseGemmShapes(bad)).toThrow(/MxKxN/);
  });

  it('modelGemmShapes: the widest linear at S = 1, 8, 32, 256, then 1024^3; referenceRate is the fastest of them', () => {
    expect(modelGemmShapes(tiny)).toEqual([
      { M: 1, K: 192, N: 512 },
      { M: 8, K: 192, N: 512 },
      { M: 32, K: 192, N: 512 },
      { M: 256, K: 192, N: 512 },
      SQUARE_GEMM,
    ]);
    const rates = modelGemmShapes(tiny).map((s, i) => ({ ...s, ms: 1, gflops: [5, 15, 40, 90, 70][i] }));
    expect(referenceRate(rates)).toBe(90);
    expect(() => referenceRate([])).toThrow(/no GEMM/);
  });

  it('combineGemmRates takes the median ms per shape and recomputes GFLOP/s; refuses mismatched shapes', () => {
    const at = (ms: number) => [{ M: 1000, K: 1000, N: 1000, ms, gflops: 0 }];
    expect(combineGemmRates([at(100), at(20), at(40)])).toEqual([{ M: 1000, K: 1000, N: 1000, ms: 40, gflops: 50 }]);
    expect(() => combineGemmRates([at(1), [{ M: 1, K: 1, N: 1, ms: 1, gflops: 0 }]])).toThrow(/different shapes/);
    expect(() => combineGemmRates([])).toThrow(/no GEMM/);
  });
});
