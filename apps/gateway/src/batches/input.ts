// The one parser of batch input files. A file is read once at creation (and again only if a
// creation interrupted by a crash is resumed, with this same function): bytes -> UTF-8 text
// (fatal on invalid sequences) -> one leading BOM dropped -> lines split on \n, \r\n or \r ->
// blank lines skipped -> each line checked alone. A bad line does not sink the file: it becomes a
// per-line error (it goes to the error file and is not run); only file-level problems (not UTF-8,
// too many lines, no request at all) refuse the whole file.
import { batchInputLineSchema, chatCompletionRequestSchema, completionRequestSchema, renderChatPrompt, type BatchEndpoint } from '@dllm/contracts';
import { ApiError } from '../http/api-error';
import type { GenerationPayload } from '../jobs/catalogue-bridge';
import { engineOptions } from '../openai/options';

/** Why one input line is not run (written to the error file; listed in the batch's `errors`). */
export interface LineError {
  code: string;
  message: string;
  /** The body field at fault (wire name, e.g. body.block_size), or null. */
  param: string | null;
}

/** One request line of the input file, in file order. */
export interface InputRequest {
  /** 0-based index among the request lines (the job id is `<batch id>-<index>`). */
  index: number;
  /** 1-based physical line number in the file (blank lines counted). */
  lineNo: number;
  /** null when the line has no readable custom_id. */
  customId: string | null;
  /** null when the line names no model. */
  model: string | null;
  /** The validated job payload (catalogue parser + request resolver), when the line is valid. */
  payload?: GenerationPayload;
  error?: LineError;
}

/** What the parser needs from the caller: builds and validates one line's payload (throws ApiError). */
export interface InputContext {
  endpoint: BatchEndpoint;
  maxLines: number;
  payload: (line: { index: number; customId: string; model: string; prompt: string; options: Record<string, unknown> }) => GenerationPayload;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** File bytes -> the request lines (BOM dropped, any line ending, blank lines skipped). Throws ApiError 422 when not UTF-8. */
export function inputLines(data: Buffer): { lineNo: number; text: string }[] {
  let text: string;
  try {
    text = decoder.decode(data);
  } catch {
    throw new ApiError(422, 'The input file is not valid UTF-8.', 'invalid_input_file', 'input_file_id');
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: { lineNo: number; text: string }[] = [];
  text.split(/\r\n|\n|\r/).forEach((raw, i) => {
    const t = raw.trim();
    if (t) out.push({ lineNo: i + 1, text: t });
  });
  return out;
}

/** Lines checked between two yields to the event loop (each tokenizes its prompt: ~0.2 ms). */
const YIELD_EVERY = 256;

/**
 * Parses and checks every line. Returns one InputRequest per request line, valid or not. Yields to
 * the event loop every YIELD_EVERY lines so a 50,000-line file does not stall health checks.
 * Throws ApiError 422 for file-level problems: not UTF-8, more than maxLines requests, no request.
 */
export async function parseBatchInput(data: Buffer, ctx: InputContext): Promise<InputRequest[]> {
  const lines = inputLines(data);
  if (lines.length > ctx.maxLines) {
    throw new ApiError(422, `The input file has ${lines.length} requests, more than ${ctx.maxLines} (BATCH_MAX_LINES).`, 'too_many_lines', 'input_file_id');
  }
  if (!lines.length) throw new ApiError(422, 'The input file has no requests.', 'empty_file', 'input_file_id');
  const seen = new Set<string>();
  const out: InputRequest[] = [];
  for (let index = 0; index < lines.length; index++) {
    if (index > 0 && index % YIELD_EVERY === 0) await new Promise((r) => setImmediate(r));
    out.push(checkLine(lines[index], index, ctx, seen));
  }
  return out;
}

/** One line -> its InputRequest (payload or error). */
function checkLine({ lineNo, text }: { lineNo: number; text: string }, index: number, ctx: InputContext, seen: Set<string>): InputRequest {
  const req: InputRequest = { index, lineNo, customId: null, model: null };
  const fail = (code: string, message: string, param: string | null = null): InputRequest => ({
    ...req,
    error: { code, message: `line ${lineNo}: ${message}`, param },
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail('invalid_json', `invalid JSON (${(e as Error).message})`);
  }
  const obj = json && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
  if (typeof obj.custom_id === 'string') req.customId = obj.custom_id;
  const body = obj.body && typeof obj.body === 'object' ? (obj.body as Record<string, unknown>) : {};
  if (typeof body.model === 'string') req.model = body.model;
  const line = batchInputLineSchema.safeParse(json);
  if (!line.success) {
    const i = line.error.issues[0];
    return fail('invalid_line', line.error.issues.map((x) => `${x.path.join('.') || 'line'}: ${x.message}`).join('; '), i.path.join('.') || null);
  }
  const { custom_id, url } = line.data;
  if (url !== ctx.endpoint) return fail('invalid_url', `url '${url}' differs from the batch endpoint '${ctx.endpoint}'`, 'url');
  if (seen.has(custom_id)) return fail('duplicate_custom_id', `duplicate custom_id '${custom_id}'`, 'custom_id');
  seen.add(custom_id);
  const parsed = (ctx.endpoint === '/v1/completions' ? completionRequestSchema : chatCompletionRequestSchema).safeParse(line.data.body);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    return fail('invalid_value', parsed.error.issues.map((x) => `body.${x.path.join('.')}: ${x.message}`).join('; '), `body.${i.path.join('.')}`);
  }
  const b = parsed.data as Record<string, unknown> & { model: string; stream?: boolean | null };
  if (b.stream) return fail('invalid_value', 'stream: true is not allowed in a batch', 'body.stream');
  const prompt =
    'messages' in parsed.data ? renderChatPrompt(parsed.data.messages) : Array.isArray(parsed.data.prompt) ? parsed.data.prompt[0] : parsed.data.prompt;
  try {
    return { ...req, payload: ctx.payload({ index, customId: custom_id, model: b.model, prompt, options: engineOptions(b) }) };
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    return fail(e.code ?? 'invalid_value', e.message, e.param ? `body.${e.param}` : null);
  }
}
