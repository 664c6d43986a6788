import type { CliCommand } from '../command';
import { GATEWAY_HELP, oneIdCommand, table } from './submit';

const HELP = `Usage: dllm-farm cancel <batch_id | job_id> [options]

A batch moves to cancelling, then cancelled; finished lines are kept. A waiting job is removed; a
running one stops at its next block boundary and keeps its partial output.
${GATEWAY_HELP}`;

export const command: CliCommand = {
  name: 'cancel',
  async run(argv) {
    const args = oneIdCommand(argv, HELP);
    if (!args) return 0;
    const { values, id, client } = args;
    if (id.startsWith('batch_')) {
      const b = await client.cancelBatch(id);
      if (values.json) console.log(JSON.stringify(b));
      else
        console.log(
          table([
            ['batch', b.id],
            ['status', b.status],
            ['completed', b.request_counts.completed],
            ['total', b.request_counts.total],
          ]),
        );
      return 0;
    }
    const r = await client.cancelJob(id);
    if (values.json) console.log(JSON.stringify(r));
    else
      console.log(
        table([
          ['job', r.id],
          ['outcome', r.outcome],
        ]),
      );
    return 0;
  },
};
