// The distill job kind, without Nest: the teacher decodes every question (safe configuration), the
// verifier judges it, and accepted rows stream into <family>-train.jsonl files in the store while
// the job runs (one chunk of `concurrency` questions at a time; progress after each chunk).
// Stopping, checked before and after every chunk (a chunk cut short writes none of its rows):
//  - a cancel fails the job for good with DISTILL_CANCELLED (the gateway shows it as `cancelled`);
//  - the worker's shutdown throws HandBackError (the job goes back to the queue). Rows already
//    streamed are not kept: a file is only stored when its stream ends (the stores write to a
//    temporary object and drop it on error), so the next attempt writes every file from the start,
//    each row once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { UnrecoverableError, type Job } from 'bullmq';
import {
  describeIssues,
  DISTILL_CANCELLED,
  distillBlobKey,
  distillEngineOptions,
  distillJob,
  resolveDistillRequest,
  type DistillPayload,
  type DistillProgress,
  type DistillRequest,
  type DistillReturn,
} from '@dllm/contracts';
import type { Engine } from '@dllm/engine';
import { verifiers, type BoundVerifier } from '@dllm/rl';
import { iterateProblems } from '@dllm/tasks';
import type { BlobStore } from '@dllm/storage';
import { engineFacts } from '../jobs/generation/generation.service';
import { HandBackError, type RegisterJob } from '../jobs/job-stop';

export interface DistillRunnerDeps {
  store: BlobStore;
  engine: () => Engine;
  /** Directory of the served model (its tokenizer.json goes with the dataset). */
  modelDir: string;
  /** Stop signals of a running job (cancel, shutdown hand-back); none: the job runs to its end. */
  registerJob?: RegisterJob;
  ttlSeconds?: number;
}

interface Question {
  id: string;
  family: string;
  prompt: string;
  answer: string | null;
  verifier: BoundVerifier | null;
}

function* questionsOf(req: DistillRequest): Generator<Question> {
  for (const t of req.tasks ?? []) {
    const v = verifiers.bind(`task:${t.family}`);
    let i = 0;
    for (const p of iterateProblems(t.family, { split: t.split, seed: t.seed })) {
      if (i++ >= t.n) break;
      yield { id: p.id, family: t.family, prompt: p.prompt, answer: p.answer, verifier: v };
    }
  }
  const v = verifiers.bind(req.verifier);
  for (const [i, q] of (req.questions ?? []).entries()) {
    yield {
      id: q.id ?? `q${i}`,
      family: q.family ?? 'custom',
      prompt: q.prompt,
      answer: q.answer ?? null,
      verifier: q.answer !== undefined || !v.needsAnswer ? v : null,
    };
  }
}

type JobLike = Pick<Job<DistillPayload>, 'id' | 'data' | 'queueName'> & Partial<Pick<Job, 'updateProgress'>>;

export class DistillRunner {
  constructor(private readonly d: DistillRunnerDeps) {}

  /**
   * Runs one distill job: decodes every question, streams the accepted rows into the store, then
   * writes tokenizer.json and distill.json. Throws UnrecoverableError (bad payload or request, or
   * cancelled: DISTILL_CANCELLED) or HandBackError (stopped by the worker's shutdown).
   */
  async process(job: JobLike): Promise<DistillReturn> {
    const parsed = distillJob.safeParsePayload(job.data);
    if (!parsed.success)
      throw new UnrecoverableError(`invalid distill payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    const p = parsed.data;
    const t0 = Date.now();
    const raw = await this.d.store.get(p.requestKey);
    if (!raw) throw new UnrecoverableError(`distill ${p.distillId}: request ${p.requestKey} is missing from the store`);
    const req = JSON.parse(raw.toString('utf8')) as DistillRequest;
    const engine = this.d.engine();
    const teacher = { name: engine.model.name, version: engine.model.version };
    const eosId = engine.model.manifest.tokens.eos;
    // The gateway's verdict again, against the version served now: a request it cannot serve fails
    // without retries, with the resolver's reasons (instead of every question failing in the engine).
    const issues = resolveDistillRequest(engineFacts(engine), req);
    if (issues.length) throw new UnrecoverableError(`distill ${p.distillId}: invalid request: ${describeIssues(issues)}`);
    const options = distillEngineOptions(req);
    const putOpts = this.d.ttlSeconds ? { ttlSeconds: this.d.ttlSeconds } : {};

    // one streaming file per family, opened on first use
    const files = new Map<string, { stream: PassThrough; done: Promise<number>; key: string }>();
    const out = (family: string) => {
      let f = files.get(family);
      if (!f) {
        const key = distillBlobKey(p.distillId, `${family}-train.jsonl`);
        const stream = new PassThrough();
        if (!this.d.store.putStream) throw new UnrecoverableError(`the ${this.d.store.kind} store cannot take streams`);
        f = { stream, key, done: this.d.store.putStream(key, stream, putOpts) };
        f.done.catch(() => undefined);
        files.set(family, f);
      }
      return f;
    };
    const stop = this.d.registerJob ? await this.d.registerJob(job.queueName, String(job.id)) : null;
    const checkStop = () => {
      if (!stop?.signal.aborted) return;
      if (stop.handedBack()) throw new HandBackError(`distill ${p.distillId}`);
      throw new UnrecoverableError(DISTILL_CANCELLED);
    };
    let done = 0;
    let kept = 0;
    let tokens = 0;
    let forwards = 0;
    const dropped = { incorrect: 0, truncated: 0, failed: 0 };
    const teacherVersions = new Map<string, number>();
    try {
      const it = questionsOf(req);
      for (;;) {
        checkStop();
        const chunk: Question[] = [];
        while (chunk.length < req.concurrency) {
          const r = it.next();
          if (r.done) break;
          chunk.push(r.value);
        }
        if (!chunk.length) break;
        const results = await Promise.allSettled(chunk.map((q) => engine.generate({ prompt: q.prompt, options }, { signal: stop?.signal })));
        // stopped during the chunk: its answers are cut short, none of them is a row
        checkStop();
        results.forEach((res, i) => {
          const q = chunk[i];
          if (res.status === 'rejected') {
            dropped.failed++;
            return;
          }
          const g = res.value;
          tokens += g.usage.completionTokens;
          forwards += g.stats.forwards;
          if (g.finishReason !== 'stop') {
            dropped.truncated++; // no EOS: the student would learn not to stop
            return;
          }
          const verdict =
            q.verifier && (q.answer !== null || !q.verifier.needsAnswer) ? q.verifier.verify({ response: g.text, answer: q.answer, prompt: q.prompt }) : null;
          if (req.onlyCorrect && !verdict?.correct) {
            dropped.incorrect++;
            return;
          }
          const t = g.trajectory!;
          const row: Record<string, unknown> = {
            id: q.id,
            family: q.family,
            split: 'train',
            prompt: q.prompt,
            solution: g.text,
            answer: q.answer,
            // the version that decoded this row: a hot swap mid-job changes the teacher, never silently
            teacher: {
              name: t.model.name,
              version: t.model.version,
              extracted: verdict?.extracted ?? null,
              correct: verdict?.correct ?? null,
              tokenIds: t.tokenIds,
              endedWithEos: t.tokenIds[t.tokenIds.length - 1] === eosId,
              forwards: t.forwards,
              tpf: t.tpf,
            },
          };
          if (req.record.stepMap) row.stepMap = t.stepMap;
          if (req.record.confidence) row.confidence = t.confidence;
          if (req.record.entropy) row.entropy = t.entropy;
          out(q.family).stream.write(JSON.stringify(row) + '\n');
          kept++;
          teacherVersions.set(t.model.version, (teacherVersions.get(t.model.version) ?? 0) + 1);
        });
        done += chunk.length;
        const prog: DistillProgress = { done, total: p.total, kept };
        await job.updateProgress?.(prog).catch(() => undefined);
      }
    } catch (e) {
      // the stores drop a stream that fails: nothing of this attempt's files is left behind
      for (const f of files.values()) f.stream.destroy(e as Error);
      await Promise.allSettled([...files.values()].map((f) => f.done));
      throw e;
    } finally {
      stop?.done();
    }
    for (const f of files.values()) f.stream.end();
    const names: Record<string, string> = {};
    for (const [fam, f] of files) {
      await f.done;
      names[`${fam}-train.jsonl`] = f.key;
    }
    const tokPath = path.join(this.d.modelDir, 'tokenizer.json');
    if (fs.existsSync(tokPath)) {
      const key = distillBlobKey(p.distillId, 'tokenizer.json');
      await this.d.store.put(key, fs.readFileSync(tokPath), putOpts);
      names['tokenizer.json'] = key;
    }
    const meta = {
      format: 'dllm-farm/distill-v1',
      distillId: p.distillId,
      teacher,
      teacherVersions: Object.fromEntries(teacherVersions),
      decoding: options,
      counts: { total: p.total, kept, dropped },
      blockSize: req.trainer.blockSize ?? engine.model.manifest.block_size,
      certaintyForcing: { ...req.trainer, blockSize: req.trainer.blockSize ?? engine.model.manifest.block_size },
      files: Object.keys(names),
      createdAt: new Date().toISOString(),
    };
    const metaKey = distillBlobKey(p.distillId, 'distill.json');
    await this.d.store.put(metaKey, JSON.stringify(meta, null, 2), putOpts);
    names['distill.json'] = metaKey;
    return {
      files: names,
      total: p.total,
      kept,
      dropped,
      teacher,
      teacherVersions: Object.fromEntries(teacherVersions),
      tokens,
      meanTpf: forwards ? tokens / forwards : 0,
      wallMs: Date.now() - t0,
    };
  }
}
