// Offline checks of deploy/docker/*.Dockerfile (no container engine on the development machines):
// the invariants that can be read from the text. Each returns a readable message. Parsing is
// dockerfile-ast's (the parser of the Dockerfile language server), so heredocs and `# escape=`
// read as BuildKit reads them; the rules are ours.
import { Copy, DockerfileParser, From, ModifiableInstruction, Run } from 'dockerfile-ast';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface Instruction {
  /** Upper-case keyword (RUN, COPY...). */
  op: string;
  /** Flags (`--from=build`) then the arguments, continuation lines joined; a heredoc's body is included. */
  args: string;
  /** 1-based line of the keyword. */
  line: number;
  /** Heredocs of the instruction (`RUN <<EOF ... EOF`): delimiter name and body. */
  heredocs: { name: string; content: string }[];
}

export interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/**
 * Parses a Dockerfile with dockerfile-ast (BuildKit syntax: parser directives such as `# escape=`,
 * line continuations with the file's escape character, heredocs) and splits it into stages.
 * @throws Error when a FROM names no image.
 */
export function parseDockerfile(text: string): { preamble: Instruction[]; stages: Stage[] } {
  const lines = text.split(/\r?\n/);
  const slice = (r: { start: { line: number; character: number }; end: { line: number; character: number } } | null) => {
    if (!r) return '';
    const out = lines.slice(r.start.line, r.end.line + 1);
    out[out.length - 1] = out[out.length - 1].slice(0, r.end.character);
    out[0] = out[0].slice(r.start.character);
    return out.join('\n');
  };
  const preamble: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of DockerfileParser.parse(text).getInstructions()) {
    const flags = ins instanceof ModifiableInstruction ? ins.getFlags().map((f) => f.toString()) : [];
    const heredocs =
      ins instanceof Run || ins instanceof Copy ? ins.getHeredocs().map((h) => ({ name: h.getName(), content: slice(h.getContentRange()) })) : [];
    const line = ins.getInstructionRange().start.line + 1;
    const i: Instruction = { op: ins.getKeyword().toUpperCase(), args: [...flags, ins.getArgumentsContent() ?? ''].join(' ').trim(), line, heredocs };
    if (ins instanceof From) {
      const image = ins.getImage();
      if (!image) throw new Error(`line ${line}: cannot read FROM ${i.args}`);
      stages.push({ from: image, name: ins.getBuildStage() ?? undefined, instructions: [] });
    } else if (stages.length) stages[stages.length - 1].instructions.push(i);
    else preamble.push(i);
  }
  return { preamble, stages };
}

export interface LintOptions {
  /** Repository root, to check that COPY sources and the CMD entry exist. */
  root?: string;
  /** 'cpu' images must skip onnxruntime-node's CUDA download; 'cuda' images must install it. */
  onnxruntime?: 'cpu' | 'cuda' | 'none';
}

export function lintDockerfile(text: string, opts: LintOptions = {}): string[] {
  const out: string[] = [];
  let parsed;
  try {
    parsed = parseDockerfile(text);
  } catch (e) {
    return [(e as Error).message];
  }
  const { stages } = parsed;
  if (stages.length < 2) out.push(`single-stage build: build tools and dev dependencies end up in the runtime image (use a build stage and a runtime stage)`);
  const names = new Set<string>();
  for (const s of stages) {
    if (!names.has(s.from)) {
      if (s.from === 'scratch') {
        /* fine */
      } else if (s.from.includes('$')) out.push(`FROM ${s.from}: a base image from a build arg cannot be checked for pinning`);
      else {
        const at = s.from.indexOf('@');
        const ref = at >= 0 ? s.from.slice(0, at) : s.from;
        const slash = ref.lastIndexOf('/');
        const colon = ref.lastIndexOf(':');
        const tag = colon > slash ? ref.slice(colon + 1) : undefined;
        if (at < 0 && (!tag || tag === 'latest')) out.push(`FROM ${s.from}: base image not pinned (use an exact tag or a digest, never latest)`);
        else if (at < 0 && tag && !/\d+\.\d+/.test(tag)) out.push(`FROM ${s.from}: tag '${tag}' moves; pin major.minor(.patch)`);
      }
    }
    if (s.name) names.add(s.name);
  }
  const final = stages[stages.length - 1];
  if (!final) return ['no FROM'];

  // non-root user in the final stage
  const users = final.instructions.filter((i) => i.op === 'USER');
  const user = users[users.length - 1]?.args.split(':')[0].trim();
  if (!user) out.push('runtime stage has no USER: the process runs as root');
  else if (user === 'root' || user === '0') out.push(`runtime stage runs as ${user}`);
  else if (!/^\d+$/.test(user)) out.push(`USER ${user}: use a numeric uid so Kubernetes can verify runAsNonRoot`);

  // no dev dependencies in the runtime image
  const installsAll = (s: Stage) =>
    s.instructions.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args) && !/--omit[= ]dev|--production\b|--only[= ]prod/.test(i.args));
  const installsProd = (s: Stage) =>
    s.instructions.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args) && /--omit[= ]dev|--production\b|--only[= ]prod/.test(i.args));
  if (installsAll(final)) out.push('runtime stage runs npm ci/install without --omit=dev: dev dependencies in the runtime image');
  for (const i of final.instructions.filter((x) => x.op === 'COPY')) {
    const from = /--from=(\S+)/.exec(i.args)?.[1];
    if (!from || !/node_modules/.test(i.args)) continue;
    const src = stages.find((s) => s.name === from);
    if (!src) continue;
    if (!installsProd(src))
      out.push(`COPY --from=${from} node_modules: stage ${from} does not install with --omit=dev, so dev dependencies reach the runtime image`);
  }
  const copiesNodeModules = final.instructions.some((i) => i.op === 'COPY' && /node_modules/.test(i.args)) || installsProd(final);
  if (!copiesNodeModules) out.push('runtime stage has no node_modules (neither copied from a --omit=dev stage nor installed)');

  // the entry point exists in the sources
  const cmd = [...final.instructions].reverse().find((i) => i.op === 'CMD' || i.op === 'ENTRYPOINT');
  if (!cmd) out.push('no CMD/ENTRYPOINT');
  else if (opts.root) {
    const m = /dist\/([\w/.-]+)\.js/.exec(cmd.args);
    if (m && !fs.existsSync(path.join(opts.root, `${m[1]}.ts`))) out.push(`${cmd.op} runs dist/${m[1]}.js but ${m[1]}.ts does not exist`);
  }

  // COPY sources from the build context exist
  if (opts.root) {
    const args = new Map<string, string>();
    for (const s of stages)
      for (const i of s.instructions) if (i.op === 'ARG' && i.args.includes('=')) args.set(i.args.split('=')[0], i.args.split('=').slice(1).join('='));
    for (const s of stages) {
      for (const i of s.instructions) {
        if (i.op !== 'COPY' || /--from=/.test(i.args)) continue;
        // With heredocs (COPY <<EOF /dst), the sources on the first line that are not heredocs.
        const head = i.heredocs.length ? i.args.split('\n')[0] : i.args;
        const parts = head.replace(/--\S+/g, '').trim().split(/\s+/);
        for (const src of parts.slice(0, -1).filter((x) => !x.startsWith('<<'))) {
          const resolved = src.replace(/\$\{?(\w+)\}?/g, (_, n) => args.get(n) ?? '');
          if (!fs.existsSync(path.join(opts.root, resolved))) out.push(`line ${i.line}: COPY source ${src} does not exist in the build context`);
        }
      }
    }
  }

  // onnxruntime-node install mode
  const all = stages
    .flatMap((s) => s.instructions)
    .map((i) => `${i.op} ${i.args}`)
    .join('\n');
  if (opts.onnxruntime === 'cpu' && /ONNXRUNTIME_NODE_INSTALL=cuda/.test(all)) out.push('CPU image downloads the CUDA provider');
  if (opts.onnxruntime === 'cpu' || opts.onnxruntime === 'none') {
    for (const s of stages) {
      if (!s.instructions.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args))) continue;
      const skip = s.instructions.some((i) => (i.op === 'ENV' || i.op === 'RUN') && /ONNXRUNTIME_NODE_INSTALL=skip/.test(i.args));
      if (!skip) out.push(`stage ${s.name ?? s.from}: npm ci without ONNXRUNTIME_NODE_INSTALL=skip (onnxruntime-node would try to download CUDA libraries)`);
    }
  }
  if (opts.onnxruntime === 'cuda') {
    if (!/ONNXRUNTIME_NODE_INSTALL=cuda12/.test(all)) out.push('CUDA image does not install the onnxruntime CUDA provider (ONNXRUNTIME_NODE_INSTALL=cuda12)');
    if (!/test -f \S*libonnxruntime_providers_cuda\.so/.test(all)) out.push('CUDA image does not check that libonnxruntime_providers_cuda.so arrived');
    if (!/^nvidia\/cuda:.*cudnn/.test(final.from))
      out.push(`CUDA runtime stage FROM ${final.from}: needs the CUDA + cuDNN runtime libraries (nvidia/cuda:*-cudnn-runtime-*)`);
  }
  return out;
}
