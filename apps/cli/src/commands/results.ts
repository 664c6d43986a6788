import * as fs from 'node:fs';
import type { CliCommand } from '../command';
import { GATEWAY_HELP, oneIdCommand, saveResults, table } from './submit';

const HELP = `Usage: dllm-farm results <batch_id | job_id> [options]

For a batch: saves <batch>_output.jsonl and <batch>_errors.jsonl in --out (default .), or prints
the output lines with --print. For a job: prints the result.

  --out DIR          directory for the files (default .)
  --print            write the output file's lines to stdout instead
${GATEWAY_HELP}`;

export const command: CliCommand = {
  name: 'results',
  async run(argv) {
    const args = oneIdCommand(argv, HELP, { out: { type: 'string', default: '.' }, print: { type: 'boolean', default: false } });
    if (!args) return 0;
    const { values, id, client } = args;
    if (!id.startsWith('batch_')) {
      const r = await client.request<Record<string, unknown>>('GET', `/v1/jobs/${encodeURIComponent(id)}/result`);
      console.log(values.json ? JSON.stringify(r) : String(r.text ?? ''));
      return 0;
    }
    const b = await client.getBatch(id);
    if (!b.output_file_id && !b.error_file_id) {
      throw new Error(
        `batch ${id} is ${b.status} and has no output yet (${b.request_counts.completed + b.request_counts.failed}/${b.request_counts.total} done)`,
      );
    }
    if (values.print) {
      if (b.output_file_id) process.stdout.write(await client.fileContent(b.output_file_id));
      return 0;
    }
    const saved = await saveResults(client, b, values.out);
    const lines = (p: string | null) => (p ? fs.readFileSync(p, 'utf8').split('\n').filter(Boolean).length : 0);
    if (values.json) console.log(JSON.stringify({ batch: b.id, status: b.status, output_path: saved.outputPath, error_path: saved.errorPath }));
    else {
      console.log(
        table([
          ['batch', b.id],
          ['status', b.status],
          ['output', saved.outputPath ? `${saved.outputPath} (${lines(saved.outputPath)} lines)` : null],
          ['errors', saved.errorPath ? `${saved.errorPath} (${lines(saved.errorPath)} lines)` : null],
        ]),
      );
    }
    return 0;
  },
};
