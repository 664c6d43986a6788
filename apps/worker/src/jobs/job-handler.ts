// Every job kind of the catalogue needs exactly one handler (a WorkerHost marked @JobHandler(kind))
// in the worker; a missing or doubled handler is a deploy bug, so the worker refuses to boot.
import { SetMetadata } from '@nestjs/common';
import type { JobKind } from '@dllm/contracts';

export const JOB_HANDLER = 'dllm:job-handler';

export const JobHandler = (kind: JobKind): ClassDecorator => SetMetadata(JOB_HANDLER, kind);

export class HandlerSetupError extends Error {}

/** Throws HandlerSetupError naming every kind without a handler and every kind with several. */
export function checkHandlers(kinds: readonly string[], handlers: { kind: string; name: string }[]): void {
  const problems: string[] = [];
  for (const k of kinds) {
    const hs = handlers.filter((h) => h.kind === k);
    if (hs.length === 0) problems.push(`job kind '${k}' has no handler (add a module with a @JobHandler('${k}') processor)`);
    if (hs.length > 1) problems.push(`job kind '${k}' has ${hs.length} handlers (${hs.map((h) => h.name).join(', ')}); exactly one is allowed`);
  }
  for (const h of handlers) if (!kinds.includes(h.kind)) problems.push(`handler ${h.name} is for '${h.kind}', which is not in the job catalogue`);
  if (problems.length) throw new HandlerSetupError(`worker setup: ${problems.join('; ')}`);
}
