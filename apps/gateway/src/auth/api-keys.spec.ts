import { ApiKeyRing, hashApiKey, presentedKey } from './api-keys';

describe('API keys', () => {
  const ring = new ApiKeyRing([
    { name: 'alice', sha256: hashApiKey('sk-alice') },
    { name: 'bob', sha256: hashApiKey('sk-bob').toUpperCase() },
  ]);

  it('maps a presented secret to its owner through the hash only', () => {
    expect(ring.owner('sk-alice')).toBe('alice');
    expect(ring.owner('sk-bob')).toBe('bob');
    expect(ring.owner('sk-eve')).toBeUndefined();
    expect(ring.owner(hashApiKey('sk-alice'))).toBeUndefined(); // the hash itself is not a key
  });

  it('refuses malformed config with a message naming the entry', () => {
    expect(() => new ApiKeyRing([{ name: 'x', sha256: 'abc' }])).toThrow(/API key 'x': expected a 64-char hex SHA-256/);
    expect(() => new ApiKeyRing([{ name: 'a b', sha256: hashApiKey('1') }])).toThrow(/API key name 'a b'/);
    expect(
      () =>
        new ApiKeyRing([
          { name: 'a', sha256: hashApiKey('1') },
          { name: 'b', sha256: hashApiKey('1') },
        ]),
    ).toThrow(/same hash as 'a'/);
  });

  it("knows each key's scopes (none listed = every scope)", () => {
    const r = new ApiKeyRing([
      { name: 'full', sha256: hashApiKey('sk-full') },
      { name: 'batcher', sha256: hashApiKey('sk-batch'), scopes: ['batch'] },
      { name: 'nothing', sha256: hashApiKey('sk-none'), scopes: [] },
    ]);
    expect([...r.identify('sk-full')!.scopes]).toEqual(['generate', 'batch', 'rollout', 'distill', 'models:write']);
    expect(r.identify('sk-batch')).toEqual({ name: 'batcher', scopes: new Set(['batch']) });
    expect(r.identify('sk-none')!.scopes.size).toBe(0);
    expect(r.identify('sk-eve')).toBeUndefined();
    expect(() => new ApiKeyRing([{ name: 'x', sha256: hashApiKey('2'), scopes: ['root' as never] }])).toThrow(/unknown scope 'root'/);
  });

  it('reads Bearer and x-api-key headers', () => {
    expect(presentedKey({ authorization: 'Bearer sk-1' })).toBe('sk-1');
    expect(presentedKey({ authorization: 'bearer  sk-2 ' })).toBe('sk-2');
    expect(presentedKey({ authorization: 'Basic abc' })).toBeUndefined();
    expect(presentedKey({ 'x-api-key': 'sk-3' })).toBe('sk-3');
    expect(presentedKey({})).toBeUndefined();
  });
});
