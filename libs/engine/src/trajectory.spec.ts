import { TrajectoryRecorder, type TrajectoryMeta } from './trajectory';
import { resolveOptions } from './options';
import { greedyDraw } from './sampling';

const meta = (): TrajectoryMeta => ({
  forwards: 3,
  prefillForwards: 1,
  tpf: 5 / 3,
  options: resolveOptions({}, { kind: 'block-diffusion', blockSize: 32 }, () => 7),
  seed: 7,
  model: { name: 'm', version: '1' },
  promptTokens: 4,
  prefixCacheHitTokens: 0,
});

describe('TrajectoryRecorder', () => {
  it('records per-token draws by generated index (out of order, as block decoding commits them) and cuts to the completion', () => {
    const t = new TrajectoryRecorder();
    t.record(1, 0, greedyDraw(11, 0.5, 0.7));
    t.record(0, 1, greedyDraw(10, 0.25, 1.2));
    t.record(2, 1, greedyDraw(12, 1, 0));
    t.record(3, 2, greedyDraw(13, 0.9, 0.1)); // decoded past the stop: not part of the completion
    expect(t.addBlock(0, 4)).toBe(true);
    const tr = t.build([10, 11, 12], meta());
    expect(tr.tokenIds).toEqual([10, 11, 12]);
    expect(tr.stepMap).toEqual([1, 0, 1]);
    expect(tr.confidence).toEqual([0.25, 0.5, 1]);
    expect(tr.entropy).toEqual([1.2, 0.7, 0]);
    expect(tr.logprobs).toEqual([Math.log(0.25), Math.log(0.5), 0]);
    expect(tr.blocks).toEqual([[0, 3]]);
    expect(tr).toMatchObject({ forwards: 3, prefillForwards: 1, seed: 7, promptTokens: 4 });
  });

  it('keeps block spans in order: one starting before the last ends is refused', () => {
    const t = new TrajectoryRecorder();
    expect(t.lastBlockEnd).toBe(0);
    expect(t.addBlock(0, 4)).toBe(true);
    expect(t.addBlock(2, 6)).toBe(false);
    expect(t.addBlock(4, 6)).toBe(true);
    expect(t.lastBlockEnd).toBe(6);
    expect(t.build([1, 2, 3, 4, 5], meta()).blocks).toEqual([
      [0, 4],
      [4, 5],
    ]);
  });
});
