// Version registration on a real Redis: the Lua script (lua/register-version.lua) assigns the
// sequence, writes the entry, moves `latest` and announces in one step, so concurrent registrations
// from several connections (gateway replicas) never leave `latest` below the highest sequence and
// announcements arrive in sequence order.
import { Redis } from 'ioredis';
import { parseAnnouncement, PolicyRegistry, PolicyVersionConflict, type SwapAnnouncement } from './policy-registry';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `test-rl-reg-${process.pid}-${Date.now()}`;
let a: Redis;
let b: Redis;
let sub: Redis;

beforeAll(() => {
  a = new Redis(url, { maxRetriesPerRequest: 3 });
  b = new Redis(url, { maxRetriesPerRequest: 3 });
  sub = new Redis(url, { maxRetriesPerRequest: 3 });
});
afterAll(async () => {
  await new PolicyRegistry(a, prefix).drop('m');
  await Promise.all([a.quit(), b.quit(), sub.quit()]);
});

it('registers concurrently through two connections: unique sequences, latest = highest, announcements in order', async () => {
  const ra = new PolicyRegistry(a, prefix);
  const rb = new PolicyRegistry(b, prefix);
  const heard: SwapAnnouncement[] = [];
  sub.on('message', (_c: string, m: string) => heard.push(parseAnnouncement(m)!));
  await sub.subscribe(ra.channel);
  for (let round = 0; round < 10; round++) {
    const res = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? rb : ra).register('m', `r${round}-${i}`, `/models/m/r${round}-${i}`)));
    const all = await ra.list('m');
    const top = all[all.length - 1];
    expect((await ra.latest('m'))!.version).toBe(top.version);
    expect(new Set(all.map((v) => v.seq)).size).toBe(all.length);
    expect(res.map((r) => r.seq).sort((x, y) => x - y)).toEqual(all.slice(-6).map((v) => v.seq));
  }
  await new Promise((r) => setTimeout(r, 100));
  expect(heard).toHaveLength(60);
  expect(heard.map((h) => h.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  // the entry and the announcement are the JSON the rest of the code reads
  expect(await ra.get('m', 'r0-0')).toMatchObject({ name: 'm', version: 'r0-0', dir: '/models/m/r0-0' });
  expect(heard[0]).toEqual({ name: 'm', version: heard[0].version, dir: `/models/m/${heard[0].version}`, seq: 1 });
  // versions are immutable
  await expect(rb.register('m', 'r0-0', '/elsewhere')).rejects.toBeInstanceOf(PolicyVersionConflict);
  expect((await ra.get('m', 'r0-0'))!.dir).toBe('/models/m/r0-0');
  expect(await ra.seqOf('m', 'never')).toBe(0);
});

it('parseAnnouncement: an announcement, or null for anything else on the channel', () => {
  expect(parseAnnouncement('{"name":"m","version":"v2","dir":"/d","seq":3}')).toEqual({ name: 'm', version: 'v2', dir: '/d', seq: 3 });
  for (const bad of ['not json', 'null', '{"name":"m","version":"v2","dir":"/d","seq":1.5}', '{"name":"m","version":"v2","seq":3}', '[]'])
    expect(parseAnnouncement(bad)).toBeNull();
});
