// The learner's cursor stream on a real Redis: exactly once per consumer group, re-delivery of an
// unacknowledged page, independent groups, JSONL download.
import { Redis } from 'ioredis';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FsBlobStore } from '@dllm/storage';
import { failedRecord, type TrajectoryRecord } from './trajectory';
import { TrajectoryStore } from './trajectory-store';

const prefix = `test-rl-${process.pid}-${Date.now()}`;
let redis: Redis;
let dir: string;
let store: TrajectoryStore;

const rec = (g: number, s: number): TrajectoryRecord =>
  failedRecord(
    { rolloutId: 'r1', groupIndex: g, sampleIndex: s, promptId: `p${g}`, prompt: 'Q', answer: '1', verifier: 'exact', promptTokenIds: [1, 2] },
    'failed',
    `g${g}s${s}`,
    s,
    { name: 'm', version: '1', seq: 0 },
    {},
  );

beforeAll(() => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 3 });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rl-store-'));
  store = new TrajectoryStore(redis, new FsBlobStore({ dir }), prefix);
});
afterAll(async () => {
  await store.dropStream('r1');
  await redis.quit();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('pages through the stream exactly once per consumer group, re-delivering an unacknowledged page', async () => {
  const groups = [
    [rec(0, 0), rec(0, 1), rec(0, 2)],
    [rec(1, 0), rec(1, 1)],
  ];
  const before = await store.read('r1', 'learnerA', null, 2);
  expect(before).toMatchObject({ records: [], done: false, total: null });

  const pub = await store.publish('r1', groups);
  expect(pub.records).toBe(5);
  expect(
    (await store.jsonl('r1'))!
      .toString()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).error),
  ).toEqual(['g0s0', 'g0s1', 'g0s2', 'g1s0', 'g1s1']);
  // a retried parent does not publish twice
  await store.publish('r1', groups);

  const p1 = await store.read('r1', 'learnerA', null, 2);
  expect(p1.records.map((r) => r.error)).toEqual(['g0s0', 'g0s1']);
  // crash: the same request again gets the same page
  const again = await store.read('r1', 'learnerA', null, 2);
  expect(again.records.map((r) => r.error)).toEqual(['g0s0', 'g0s1']);
  expect(again.cursor).toBe(p1.cursor);

  const p2 = await store.read('r1', 'learnerA', p1.cursor, 2);
  expect(p2.records.map((r) => r.error)).toEqual(['g0s2', 'g1s0']);
  const p3 = await store.read('r1', 'learnerA', p2.cursor, 2);
  expect(p3.records.map((r) => r.error)).toEqual(['g1s1']);
  expect(p3.done).toBe(false); // not acknowledged yet
  const end = await store.read('r1', 'learnerA', p3.cursor, 2);
  expect(end).toMatchObject({ records: [], done: true, total: 5, published: 5 });
  // acknowledged entries are never delivered to this group again
  expect((await store.read('r1', 'learnerA', null, 10)).records).toEqual([]);

  // another consumer group reads everything independently
  const b = await store.read('r1', 'learnerB', null, 10);
  expect(b.records).toHaveLength(5);
});

it('rejects bad group names, cursors and counts', async () => {
  await expect(store.read('r1', 'bad group', null)).rejects.toThrow(/group must be/);
  await expect(store.read('r1', 'g', 'abc')).rejects.toThrow(/cursor must be a stream id/);
  await expect(store.read('r1', 'g', null, 0)).rejects.toThrow(/count must be/);
});

// issue 14, fault 4: reader pod-a of group L2 takes 50 of 192 records and dies; pod-b of the same
// group must get the other 142 and then, once pod-a's records were idle for claimIdleMs, those 50
// too (XAUTOCLAIM semantics); `done` only when every record was acknowledged.
it('hands a dead reader’s unacknowledged records to another reader of the group after an idle time', async () => {
  const id = 'r-takeover';
  const groups = Array.from({ length: 24 }, (_, g) => Array.from({ length: 8 }, (_, s) => rec(g, s)).map((r) => ({ ...r, rolloutId: id })));
  try {
    await store.publish(id, groups);
    const a = await store.read(id, 'L2', null, 50, { consumer: 'pod-a' });
    expect(a.records).toHaveLength(50);
    // pod-a dies here: never acknowledges
    const seen: string[] = [];
    let cursor: string | null = null;
    let page: Awaited<ReturnType<TrajectoryStore['read']>> | null = null;
    const idle = 300;
    const t0 = Date.now();
    for (let i = 0; i < 200; i++) {
      page = await store.read(id, 'L2', cursor, 40, { consumer: 'pod-b', claimIdleMs: idle });
      for (const r of page.records) seen.push(`${r.groupIndex}.${r.sampleIndex}`);
      if (page.claimed) expect(Date.now() - t0).toBeGreaterThanOrEqual(idle - 50); // not before the idle time
      if (page.done) break;
      cursor = page.cursor;
      if (!page.records.length) await new Promise((r) => setTimeout(r, 50));
    }
    expect(page!.done).toBe(true);
    expect(seen).toHaveLength(192);
    expect(new Set(seen).size).toBe(192);
    // pod-a coming back late acknowledges nothing it no longer owns, and gets nothing new
    const late = await store.read(id, 'L2', a.cursor, 50, { consumer: 'pod-a' });
    expect(late.records).toEqual([]);
    expect(late.done).toBe(true);
  } finally {
    await store.dropStream(id);
  }
});

it('a repeated older cursor gets a takeover page again instead of acknowledging it unread', async () => {
  const id = 'r-takeover-repeat';
  const groups = [Array.from({ length: 4 }, (_, s) => ({ ...rec(0, s), rolloutId: id }))];
  try {
    await store.publish(id, groups);
    expect((await store.read(id, 'L3', null, 2, { consumer: 'pod-a' })).records).toHaveLength(2); // then dies
    const b1 = await store.read(id, 'L3', null, 10, { consumer: 'pod-b', claimIdleMs: 100 });
    expect(b1.records.map((r) => r.sampleIndex)).toEqual([2, 3]);
    await new Promise((r) => setTimeout(r, 150));
    const b2 = await store.read(id, 'L3', b1.cursor, 10, { consumer: 'pod-b', claimIdleMs: 100 });
    expect(b2.records.map((r) => r.sampleIndex)).toEqual([0, 1]);
    expect(b2.claimed).toBe(2);
    // pod-b crashes before processing b2 and repeats its previous cursor: the same takeover page again
    const again = await store.read(id, 'L3', b1.cursor, 10, { consumer: 'pod-b', claimIdleMs: 100 });
    expect(again.records.map((r) => r.sampleIndex)).toEqual([0, 1]);
    expect(again.cursor).toBe(b2.cursor);
    const end = await store.read(id, 'L3', again.cursor, 10, { consumer: 'pod-b', claimIdleMs: 100 });
    expect(end).toMatchObject({ records: [], done: true });
    await expect(store.read(id, 'L3', null, 10, { consumer: 'pod-b', claimIdleMs: 5 })).rejects.toThrow(/claimIdleMs must be/);
  } finally {
    await store.dropStream(id);
  }
});
