// Builders for the ONNX messages dllm-farm writes (tensors, attributes, nodes, value infos, models),
// on the types generated from onnx.proto (src/gen/onnx_pb.ts, @bufbuild/protobuf v2).
import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type StringStringEntryProto,
  type TensorProto,
  type ValueInfoProto,
} from './gen/onnx_pb';

/** The element types dllm-farm uses, as TensorProto.DataType numbers (onnx.proto). */
export const TensorType = {
  FLOAT: TensorProto_DataType.FLOAT,
  UINT8: TensorProto_DataType.UINT8,
  INT8: TensorProto_DataType.INT8,
  INT32: TensorProto_DataType.INT32,
  INT64: TensorProto_DataType.INT64,
  BOOL: TensorProto_DataType.BOOL,
  FLOAT16: TensorProto_DataType.FLOAT16,
} as const;
export type TensorTypeId = (typeof TensorType)[keyof typeof TensorType];

/**
 * An attribute value: an integer (number or bigint) -> INT, a string -> STRING (UTF-8 bytes), a
 * number[] -> INTS, `{ float }` -> FLOAT, `{ floats }` -> FLOATS, a TensorProto -> TENSOR.
 */
export type AttrValue = number | bigint | string | number[] | { floats: number[] } | { float: number } | TensorProto;

/** A dimension: a number for fixed sizes, a string for a symbolic one. */
export type Dim = number | string;

/** Where an initializer's bytes live in an external data file (offset and length in bytes). */
export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

/** A graph input/output: name, element type (TensorProto.DataType) and shape. */
export interface IoSpec {
  name: string;
  type: number;
  shape: Dim[];
}

const entry = (key: string, value: string): StringStringEntryProto => create(StringStringEntryProtoSchema, { key, value });

/**
 * TensorProto with `data` as raw_data (little-endian bytes, referenced, not copied: do not mutate
 * it afterwards); pass `external` instead (and data null) to point at an external data file.
 */
export function tensorProto(name: string, dataType: number, dims: readonly number[], data: Uint8Array | null, external?: ExternalRef): TensorProto {
  const t = create(TensorProtoSchema, { dims: dims.map((d) => BigInt(d)), dataType, name });
  if (external) {
    t.externalData = [entry('location', external.location), entry('offset', String(external.offset)), entry('length', String(external.length))];
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
  } else if (data) {
    t.rawData = data;
  }
  return t;
}

function isTensor(v: AttrValue): v is TensorProto {
  return typeof v === 'object' && v !== null && '$typeName' in v && v.$typeName === 'onnx.TensorProto';
}

/** AttributeProto from a JS value (see AttrValue). Throws for a non-integer plain number (use `{ float }`). */
export function attributeProto(name: string, v: AttrValue): AttributeProto {
  const T = AttributeProto_AttributeType;
  if (isTensor(v)) return create(AttributeProtoSchema, { name, t: v, type: T.TENSOR });
  if (typeof v === 'string') return create(AttributeProtoSchema, { name, s: Buffer.from(v, 'utf8'), type: T.STRING });
  if (typeof v === 'bigint') return create(AttributeProtoSchema, { name, i: v, type: T.INT });
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for non-integer values`);
    return create(AttributeProtoSchema, { name, i: BigInt(v), type: T.INT });
  }
  if (Array.isArray(v)) return create(AttributeProtoSchema, { name, ints: v.map((x) => BigInt(x)), type: T.INTS });
  if ('float' in v) return create(AttributeProtoSchema, { name, f: v.float, type: T.FLOAT });
  return create(AttributeProtoSchema, { name, floats: v.floats, type: T.FLOATS });
}

/** NodeProto; `domain` '' is the default ONNX domain (not written). */
export function nodeProto(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  name: string,
  attrs: Record<string, AttrValue> = {},
  domain = '',
): NodeProto {
  const n = create(NodeProtoSchema, { input: [...inputs], output: [...outputs], name, opType });
  n.attribute = Object.entries(attrs).map(([k, v]) => attributeProto(k, v));
  if (domain) n.domain = domain;
  return n;
}

/** ValueInfoProto of a tensor; `shape` undefined leaves the rank unknown. */
export function valueInfoProto(name: string, elemType: number, shape?: readonly Dim[]): ValueInfoProto {
  const tensor = create(TypeProto_TensorSchema, { elemType });
  if (shape) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: shape.map((d) =>
        create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensor } }) });
}

/** ModelProto around a graph (IR version 8), with opset imports and metadata_props; producerVersion '' is left out. */
export function modelProto(
  graph: GraphProto,
  opsets: Iterable<[domain: string, version: number]>,
  meta: Record<string, string> = {},
  producer = 'dllm-farm',
  producerVersion = '0.1.0',
): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: producer,
    ...(producerVersion ? { producerVersion } : {}),
    opsetImport: [...opsets].map(([domain, version]) => create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) })),
    graph,
    metadataProps: Object.entries(meta).map(([k, v]) => entry(k, v)),
  });
}
