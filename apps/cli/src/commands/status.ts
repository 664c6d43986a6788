import type { CliCommand } from '../command';
import { GATEWAY_HELP, oneIdCommand, iso, progressBar, table } from './submit';

const HELP = `Usage: dllm-farm status <batch_id | job_id> [options]\n\n${GATEWAY_HELP}`;

export const command: CliCommand = {
  name: 'status',
  async run(argv) {
    const args = oneIdCommand(argv, HELP);
    if (!args) return 0;
    const { values, id, client } = args;
    if (id.startsWith('batch_')) {
      const b = await client.getBatch(id);
      if (values.json) console.log(JSON.stringify(b));
      else {
        console.log(
          table([
            ['batch', b.id],
            ['status', b.status],
            ['progress', progressBar(b, b.created_at * 1000)],
            ['endpoint', b.endpoint],
            ['input file', b.input_file_id],
            ['output file', b.output_file_id],
            ['error file', b.error_file_id],
            ['created', iso(b.created_at)],
            ['expires', iso(b.expires_at)],
            ['finished', iso(b.completed_at ?? b.cancelled_at ?? b.expired_at ?? b.failed_at)],
          ]),
        );
      }
      return 0;
    }
    const j = await client.getJob(id);
    if (values.json) console.log(JSON.stringify(j));
    else {
      const r = j.result as { text?: string; finishReason?: string; stats?: { forwards: number; tpf: number } } | null;
      console.log(
        table([
          ['job', j.id],
          ['status', j.status],
          ['model', j.model],
          ['attempts', j.attempts],
          ['progress', JSON.stringify(j.progress)],
          ['finish', r?.finishReason],
          ['forwards / TPF', r?.stats ? `${r.stats.forwards} / ${r.stats.tpf.toFixed(2)}` : null],
          ['failed reason', j.failed_reason],
        ]),
      );
    }
    return 0;
  },
};
