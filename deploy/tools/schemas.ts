// Schema validation of one Kubernetes object, offline:
//  1. the JSON-schema validator that ships with kubernetes-models (Kubernetes API, KEDA and
//     Prometheus Operator CRDs): types, required fields, formats (quantities, ...);
//  2. unknown fields, which those validators accept but the API server drops or rejects
//     (`livenesProbe:` typed by hand = no liveness probe at all). The field names come from the same
//     packages' type declarations, walked with the TypeScript compiler.
import * as ts from 'typescript';
import type { K8sObject } from './kustomize';

interface ModelModule {
  /** require() id of the model class module. */
  id: string;
  /** Absolute path of its .d.ts. */
  dts: string;
}

/** apiVersion -> package folder of its models. */
function moduleFor(apiVersion: string, kind: string): ModelModule | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  let base: string;
  if (group === 'keda.sh') base = `@kubernetes-models/keda/keda.sh/${version}`;
  else if (group === 'monitoring.coreos.com') base = `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}`;
  else if (group === '') base = `kubernetes-models/${version}`;
  else base = `kubernetes-models/${group}/${version}`;
  const id = `${base}/${kind}`;
  try {
    const js = require.resolve(id);
    return { id, dts: js.replace(/\.js$/, '.d.ts') };
  } catch {
    return undefined;
  }
}

/** Build the type-checker program once for every kind in `objects` (one program, not one per kind). */
export function preloadSchemas(objects: K8sObject[]): void {
  const files = objects.map((o) => moduleFor(o.apiVersion, o.kind)?.dts).filter((f): f is string => !!f && !programFiles.has(f));
  if (!files.length) return;
  for (const f of files) programFiles.add(f);
  program = ts.createProgram([...programFiles], COMPILER_OPTIONS);
}

export function schemaProblems(o: K8sObject): string[] {
  const m = moduleFor(o.apiVersion, o.kind);
  if (!m) return [`no schema for ${o.apiVersion} ${o.kind} (unknown apiVersion/kind; is it a typo or a CRD without a model package?)`];
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const mod = require(m.id);
  const Cls = mod[o.kind];
  const out: string[] = [];
  try {
    new Cls(o).validate();
  } catch (e) {
    // "data/spec/... must be integer, data/... must match format ..." -> one problem each
    for (const part of String((e as Error).message).split(/,\s(?=data\/)/)) out.push(part.replace(/^data/, ''));
  }
  out.push(...unknownFields(o, m.dts));
  return out;
}

const COMPILER_OPTIONS: ts.CompilerOptions = {
  noEmit: true,
  skipLibCheck: true,
  noLib: true,
  types: [],
  target: ts.ScriptTarget.ES2022,
  moduleResolution: ts.ModuleResolutionKind.Node10,
};
let program: ts.Program | undefined;
const programFiles = new Set<string>();

function checkerFor(dts: string): ts.TypeChecker {
  if (!program || !programFiles.has(dts)) {
    programFiles.add(dts);
    program = ts.createProgram([...programFiles], COMPILER_OPTIONS);
  }
  return program.getTypeChecker();
}

function rootType(dts: string, kind: string): { checker: ts.TypeChecker; type: ts.Type } | undefined {
  const checker = checkerFor(dts);
  const sf = program!.getSourceFile(dts);
  if (!sf) return undefined;
  const sym = checker.getSymbolAtLocation(sf);
  const iface = sym && checker.getExportsOfModule(sym).find((s) => s.name === `I${kind}`);
  if (!iface) return undefined;
  return { checker, type: checker.getDeclaredTypeOfSymbol(iface) };
}

function unknownFields(o: K8sObject, dts: string): string[] {
  const root = rootType(dts, o.kind);
  if (!root) return [];
  const { checker } = root;
  const out: string[] = [];

  const objectMembers = (t: ts.Type): ts.Type[] => {
    const parts = t.isUnion() ? t.types : [t];
    return parts.filter((p) => (p.flags & ts.TypeFlags.Object) !== 0);
  };
  // The program has no lib (fast), so Array<T> is not a resolved type: read the element type from
  // the declaration's type node instead.
  const elementNode = (node: ts.TypeNode | undefined): ts.TypeNode | undefined => {
    if (!node) return undefined;
    if (ts.isArrayTypeNode(node)) return node.elementType;
    if (ts.isTypeReferenceNode(node) && node.typeName.getText() === 'Array' && node.typeArguments?.length === 1) return node.typeArguments[0];
    if (ts.isUnionTypeNode(node)) return node.types.map(elementNode).find(Boolean);
    return undefined;
  };

  const walk = (value: unknown, type: ts.Type | undefined, node: ts.TypeNode | undefined, at: string) => {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      const el = elementNode(node);
      if (el) value.forEach((v, i) => walk(v, checker.getTypeFromTypeNode(el), el, `${at}/${i}`));
      return;
    }
    if (!type) return;
    const members = objectMembers(type);
    if (members.length !== 1) return; // any, unknown, or an ambiguous union: nothing to check against
    const t = members[0];
    if (checker.getIndexInfosOfType(t).length) return; // a map (labels, data, ...): free keys
    const props = checker.getPropertiesOfType(t);
    if (!props.length) return;
    for (const [key, v] of Object.entries(value)) {
      const p = props.find((s) => s.name === key);
      if (!p) {
        out.push(
          `${at}/${key}: unknown field (known: ${props
            .map((s) => s.name)
            .slice(0, 40)
            .join(', ')})`,
        );
        continue;
      }
      const decl = p.valueDeclaration ?? p.declarations?.[0];
      if (!decl) continue;
      const typeNode = ts.isPropertySignature(decl) || ts.isPropertyDeclaration(decl) ? decl.type : undefined;
      walk(v, checker.getTypeOfSymbolAtLocation(p, decl), typeNode, `${at}/${key}`);
    }
  };
  walk(o, root.type, undefined, '');
  return out;
}

export const _test = { moduleFor };
