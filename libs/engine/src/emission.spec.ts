import { TextEmitter, type BlockEvent } from './emission';
import { charCodec } from './testing/counting-runner';

const codec = charCodec('abcdefghij.XY');
const EOS = 12;
const ids = (s: string) => codec.encode(s);

function emitter(stop: string[], events?: BlockEvent[]) {
  return new TextEmitter(codec, new Set([EOS]), stop, events ? (e) => events.push(e) : undefined);
}

describe('TextEmitter', () => {
  it('streams each block’s added tokens and text; the texts concatenate to the final text; stop tokens never show', () => {
    const ev: BlockEvent[] = [];
    const e = emitter([], ev);
    e.emitBlock(ids('abc'), false, 2);
    e.emitBlock([...ids('abcde'), EOS], true, 3);
    expect(ev.map((x) => [x.index, x.text, x.tokenIds.length, x.completionTokens, x.forwards])).toEqual([
      [0, 'abc', 3, 3, 2],
      [1, 'de', 3, 6, 3],
    ]);
    expect(e.final([...ids('abcde'), EOS])).toEqual({ tokens: [...ids('abcde'), EOS], text: 'abcde' });
  });

  it('cuts at the earliest stop string, keeping the token that completed it, and never emits the stop string', () => {
    const ev: BlockEvent[] = [];
    const e = emitter(['ij', 'd.'], ev);
    expect(e.watching).toBe(true);
    expect(e.findStop(ids('abc'))).toBe(false);
    expect(e.findStop(ids('abcd.fghij'))).toBe(true);
    expect(e.stopCut).toEqual({ tokens: 5, text: 'abc' });
    expect(e.watching).toBe(false);
    expect(e.findStop(ids('ij'))).toBe(false); // searched once only
    e.emitBlock(ids('abcd.fghij'), true, 4);
    expect(ev.map((x) => x.text).join('')).toBe('abc');
    expect(ev[0].tokenIds).toEqual(ids('abcd.'));
    expect(e.final(ids('abcd.fghij'))).toEqual({ tokens: ids('abcd.'), text: 'abc' });
  });

  it('holds back a tail that could still grow into a stop string, and releases it when decoding ends without one', () => {
    const ev: BlockEvent[] = [];
    const e = emitter(['.X'], ev);
    e.emitBlock(ids('ab.'), false, 1);
    expect(ev.map((x) => x.text)).toEqual(['ab']);
    expect(e.findStop(ids('ab.'))).toBe(false);
    const { tokens, text } = e.final(ids('ab.'));
    e.releaseHeld(tokens, text, 2);
    expect(ev.map((x) => x.text)).toEqual(['ab', '.']);
    expect(ev[1].tokenIds).toEqual([]);
  });

  it('emits nothing without a listener, and a throwing listener does not break emission', () => {
    const quiet = emitter(['.']);
    expect(quiet.listening).toBe(false);
    quiet.emitBlock(ids('ab'), true, 1);
    let calls = 0;
    const loud = new TextEmitter(codec, new Set([EOS]), [], () => {
      calls++;
      throw new Error('listener');
    });
    loud.emitBlock(ids('a'), false, 1);
    loud.emitBlock(ids('ab'), true, 2);
    expect(calls).toBe(2);
  });
});
