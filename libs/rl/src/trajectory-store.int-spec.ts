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
  failedRecord({ rolloutId: 'r1', groupIndex: g, sampleIndex: s, promptId: `p${g}`, prompt: 'Q', answer: '1', verifier: 'exact', promptTokenIds: [1, 2] }, 'failed', `g${g}s${s}`, s, { name: 'm', version: '1', seq: 0 }, {});

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
  const groups = [[rec(0, 0), rec(0, 1), rec(0, 2)], [rec(1, 0), rec(1, 1)]];
  const before = await store.read('r1', 'learnerA', null, 2);
  expect(before).toMatchObject({ records: [], done: false, total: null });

  const pub = await store.publish('r1', groups);
  expect(pub.records).toBe(5);
  expect((await store.jsonl('r1'))!.toString().trim().split('\n').map((l) => JSON.parse(l).error)).toEqual(['g0s0', 'g0s1', 'g0s2', 'g1s0', 'g1s1']);
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
