// The counting model (testing/counting-runner.ts) as a real ONNX graph, written with libs/model's
// OnnxGraph, so the ORT runner, its worker thread and the zero-copy feeds are tested on onnxruntime.
import { DRAW_IO, OnnxGraph, TensorType, drawInputSpecs, drawOutputSpecs, emitDrawStatistics, gatherDrawRows } from '@dllm/model';
import type { CountingModelSpec } from './counting-runner';

/** 1 layer, 1 kv head, head dim 2; value = [token is not MASK, token id], key = 0. */
export function countingModelOnnx(spec: CountingModelSpec): Uint8Array {
  const g = new OnnxGraph('counting');
  const F = TensorType.FLOAT;
  const I = TensorType.INT64;
  const isReal = g.op('Cast', [g.op('Not', [g.op('Equal', ['input_ids', g.ints([spec.maskId], undefined, true)])])], { to: F });
  const tokF = g.op('Cast', ['input_ids'], { to: F });
  const u13 = g.ints([1, 3]);
  const presentV = g.node('Concat', [g.op('Unsqueeze', [isReal, u13]), g.op('Unsqueeze', [tokF, u13])], ['present_value.0'], { axis: 3 })[0]; // [B,1,S,2]
  g.node('Mul', [presentV, g.floats([0], undefined, true)], ['present_key.0']);
  const allV = g.op('Concat', ['past_value.0', presentV], { axis: 2 }); // [B,1,T,2]
  const vis = g.op('Cast', [g.op('Equal', ['attention_mask', g.floats([0], undefined, true)])], { to: F }); // [B,1,S,T]
  const first = g.op('Slice', [allV, g.ints([0]), g.ints([1]), g.ints([3])]); // [B,1,T,1]
  const c = g.op('Squeeze', [g.op('MatMul', [vis, first]), u13]); // [B,S]
  const idx = g.op('Mod', [g.op('Cast', [c], { to: I }), g.ints([spec.table.length], undefined, true)]);
  const tok = g.op('Gather', [g.ints(spec.table), idx]);
  const oneHot = g.op('OneHot', [tok, g.ints([spec.vocabSize], undefined, true), g.floats([0, 1])], { axis: -1 });
  const m = g.op('Gather', [g.floats(spec.margins), g.op('Mod', ['position_ids', g.ints([spec.margins.length], undefined, true)])]);
  const all = g.op('Mul', [oneHot, g.op('Unsqueeze', [m, g.ints([2])])]); // [B,S,V]
  // Format v2 head: the rows logit_index selects, and the statistics in the graph.
  g.node('Identity', [gatherDrawRows(g, all)], [DRAW_IO.logits]);
  emitDrawStatistics(g, DRAW_IO.logits, spec.vocabSize);
  return g
    .toModel(
      [
        { name: 'input_ids', type: I, shape: ['B', 'S'] },
        { name: 'position_ids', type: I, shape: ['B', 'S'] },
        { name: 'attention_mask', type: F, shape: ['B', 1, 'S', 'T'] },
        ...drawInputSpecs(),
        { name: 'past_key.0', type: F, shape: ['B', 1, 'P', 2] },
        { name: 'past_value.0', type: F, shape: ['B', 1, 'P', 2] },
      ],
      [
        ...drawOutputSpecs(spec.vocabSize),
        { name: 'present_key.0', type: F, shape: ['B', 1, 'S', 2] },
        { name: 'present_value.0', type: F, shape: ['B', 1, 'S', 2] },
      ],
    )
    .toBytes();
}
