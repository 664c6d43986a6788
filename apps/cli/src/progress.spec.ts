import { startProgress } from './progress';

function fake(tty: boolean) {
  const out: string[] = [];
  let t = 0;
  return { stream: { write: (s: string) => out.push(s), isTTY: tty }, out, clock: { now: () => t, advance: (ms: number) => (t += ms) } };
}

describe('progress on stderr', () => {
  it('prints nothing for work that ends within the delay', () => {
    const f = fake(false);
    const p = startProgress({ total: 10, unit: 'problems', label: 'eval', stream: f.stream, now: f.clock.now });
    for (let i = 0; i < 10; i++) p.tick();
    p.done();
    expect(f.out).toEqual([]);
  });

  it('plain mode: one line per 10% after the delay, and a final line', () => {
    const f = fake(false);
    const p = startProgress({ total: 100, unit: 'problems', label: 'eval arith', stream: f.stream, now: f.clock.now, detail: () => 'acc 50%' });
    f.clock.advance(2000);
    for (let i = 0; i < 100; i++) {
      f.clock.advance(10);
      p.tick();
    }
    p.done();
    expect(f.out.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(f.out[0]).toMatch(/^eval arith: +1\/100 problems +1% +2\.0s +eta 3m19s +acc 50%\n$/);
    expect(f.out.filter((l) => / 100\/100 problems/.test(l))).toHaveLength(1); // done() does not repeat the 100% line
    expect(f.out.length).toBe(11); // first line, then deciles 1..10
  });

  it('TTY mode: a bar redrawn in place, at most 10 times a second, then a newline', () => {
    const f = fake(true);
    const p = startProgress({ total: 4, unit: 'problems', label: 'eval', stream: f.stream, now: f.clock.now });
    f.clock.advance(1600);
    p.tick();
    p.tick(); // same instant: not redrawn
    f.clock.advance(200);
    p.note('a log line');
    p.tick(2);
    p.done();
    expect(f.out[0]).toMatch(/^\reval: \[#{6}-{18}\] +1\/4 problems +25% +1\.6s +eta 4\.8s\x1b\[K$/);
    expect(f.out[1]).toBe('\r\x1b[Ka log line\n');
    expect(f.out[f.out.length - 2]).toMatch(/^\reval: \[#{24}\] +4\/4 problems +100% +1\.8s\x1b\[K$/);
    expect(f.out[f.out.length - 1]).toBe('\n');
  });

  it('enabled: false prints nothing', () => {
    const f = fake(true);
    const p = startProgress({ total: 4, unit: 'x', label: 'l', stream: f.stream, now: f.clock.now, enabled: false });
    f.clock.advance(5000);
    p.tick(4);
    p.done();
    expect(f.out).toEqual([]);
  });
});
