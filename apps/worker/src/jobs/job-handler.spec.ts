import { JOB_KINDS } from '@dllm/contracts';
import { checkHandlers, HandlerSetupError } from './job-handler';

describe('checkHandlers', () => {
  it('accepts exactly one handler per catalogue kind', () => {
    expect(() =>
      checkHandlers(
        JOB_KINDS,
        JOB_KINDS.map((k) => ({ kind: k, name: `${k}P` })),
      ),
    ).not.toThrow();
  });
  it('refuses a missing, doubled or unknown handler, naming each problem', () => {
    expect(() => checkHandlers(['generation', 'rollout'], [{ kind: 'generation', name: 'G' }])).toThrow(/'rollout' has no handler/);
    expect(() =>
      checkHandlers(
        ['generation'],
        [
          { kind: 'generation', name: 'A' },
          { kind: 'generation', name: 'B' },
        ],
      ),
    ).toThrow(/2 handlers \(A, B\)/);
    expect(() =>
      checkHandlers(
        ['generation'],
        [
          { kind: 'generation', name: 'A' },
          { kind: 'nope', name: 'N' },
        ],
      ),
    ).toThrow(HandlerSetupError);
  });
});
