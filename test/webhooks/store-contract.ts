/**
 * The webhook store's contract suite: every backend runs exactly these tests, unchanged
 * (`runWebhookStoreContract('postgres', …)` beside `runWebhookStoreContract('sqlite', …)`), as the
 * vault's store does (test/vault/store-contract.ts).
 *
 * Issue 13, point 5: events are written in the transaction of the change they announce (one row
 * per subscribed endpoint), and delivered at least once: a claimed delivery is leased to one
 * sender, taken again only when its lease has run out, and a late answer from a lost lease changes
 * nothing.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DeliveryRecord, WebhookStore } from '../../src/webhooks/index.js';
import type { WebhookEvent } from '../../src/webhooks/outbox.js';
import type { EndpointRecord } from '../../src/webhooks/store.js';

const T0 = 1_760_000_000_000;

export interface WebhookStoreWorld {
  store: WebhookStore;
  /** Record events as the vault does, inside a transaction; with `fail`, the transaction then throws (and rolls back). */
  record(events: WebhookEvent[], now: number, options?: { fail?: boolean }): Promise<number>;
  /** Another store over the same data, on a database object of its own (another instance). */
  openAnother(): Promise<WebhookStore>;
  close(): Promise<void>;
}

let endpointCount = 0;
export function endpoint(overrides: Partial<EndpointRecord> = {}): EndpointRecord {
  const id = `wh_${randomBytes(12).toString('hex')}`;
  const at = T0 + ++endpointCount;
  return {
    id,
    url: `https://hooks.example.com/${id}`,
    events: null,
    secretCiphertext: randomBytes(40),
    status: 'enabled',
    disabledReason: null,
    createdAt: at,
    updatedAt: at,
    ...overrides,
  };
}

const revoked = (sub: string): WebhookEvent => ({
  type: 'grant.revoked',
  sub,
  fields: { previous_status: 'active', reason: 'signed_out' },
});
const deleted = (sub: string): WebhookEvent => ({ type: 'user.deleted', sub, fields: { reason: 'deleted' } });

export function runWebhookStoreContract(name: string, makeWorld: () => Promise<WebhookStoreWorld>): void {
  describe(`webhook store contract: ${name}`, () => {
    let world: WebhookStoreWorld;
    let store: WebhookStore;

    beforeEach(async () => {
      world = await makeWorld();
      store = world.store;
    });

    afterEach(async () => {
      await world.close();
    });

    const deliveries = (
      filter: { endpointId?: string; status?: 'pending' | 'delivered' | 'failed'; sub?: string } = {},
    ) => store.listDeliveries({ ...filter, limit: 500 });

    it('endpoints: listed oldest first with their counts; removed once, with their deliveries', async () => {
      const a = endpoint();
      const b = endpoint({ events: ['user.deleted', 'grant.revoked'] });
      await store.insertEndpoint(b);
      await store.insertEndpoint(a);
      const listed = await store.listEndpoints();
      expect(listed.map((e) => e.id)).toEqual([a.id, b.id]);
      expect(listed[1]).toEqual({ ...b, deliveries: { pending: 0, delivered: 0, failed: 0 } });
      expect(listed[0]!.events).toBeNull();
      await world.record([deleted('u1')], T0);
      expect((await store.listEndpoints()).map((e) => e.deliveries.pending)).toEqual([1, 1]);

      expect(await store.removeEndpoint(b.id)).toBe(true);
      expect(await store.removeEndpoint(b.id)).toBe(false);
      expect((await store.listEndpoints()).map((e) => e.id)).toEqual([a.id]);
      expect((await deliveries()).map((d) => d.endpointId)).toEqual([a.id]);
    });

    it('an event is written once per enabled endpoint that subscribes to it, with a message id of its own', async () => {
      const all = endpoint();
      const onlyDeleted = endpoint({ events: ['user.deleted'] });
      const disabled = endpoint({ status: 'disabled', disabledReason: 'it answered 410 Gone' });
      for (const e of [all, onlyDeleted, disabled]) await store.insertEndpoint(e);

      expect(await world.record([revoked('u1')], T0)).toBe(1);
      expect(await world.record([deleted('u1')], T0 + 1)).toBe(2);
      const rows = await deliveries();
      expect(rows.map((d) => [d.endpointId, d.eventType]).sort()).toEqual(
        [
          [all.id, 'grant.revoked'],
          [all.id, 'user.deleted'],
          [onlyDeleted.id, 'user.deleted'],
        ].sort(),
      );
      for (const row of rows) {
        expect(row.id).toMatch(/^msg_[0-9a-f]{32}$/);
        expect(row).toMatchObject({
          sub: 'u1',
          status: 'pending',
          attempts: 0,
          lastAttemptAt: null,
          lastStatus: null,
          lastError: null,
          finishedAt: null,
        });
        expect(row.nextAttemptAt).toBe(row.createdAt);
      }
      expect(new Set(rows.map((r) => r.id)).size).toBe(3);
    });

    it('the body is the Standard Webhooks payload, the same bytes on every attempt', async () => {
      const e = endpoint();
      await store.insertEndpoint(e);
      await world.record([revoked('u7')], T0);
      const [first] = await store.claimDue(T0, T0 + 1000, 10);
      expect(JSON.parse(first!.payload)).toEqual({
        type: 'grant.revoked',
        timestamp: new Date(T0).toISOString(),
        data: { sub: 'u7', previous_status: 'active', reason: 'signed_out' },
      });
      await store.recordOutcome(first!.id, 1, T0 + 10, {
        kind: 'failed',
        httpStatus: 503,
        error: 'HTTP 503',
        retryAt: T0 + 5000,
      });
      const [second] = await store.claimDue(T0 + 5000, T0 + 6000, 10);
      expect(second).toEqual({ ...first, attempt: 2 });
    });

    it('a transaction that fails after recording leaves no delivery behind', async () => {
      await store.insertEndpoint(endpoint());
      await expect(world.record([revoked('u1')], T0, { fail: true })).rejects.toMatchObject({
        cause: new Error('rolled back by the test'),
      });
      expect(await deliveries()).toEqual([]);
    });

    it('claims take due deliveries oldest first, up to the limit, each leased until its lease runs out', async () => {
      const e = endpoint();
      await store.insertEndpoint(e);
      await world.record([revoked('a')], T0 + 20);
      await world.record([revoked('b')], T0);
      await world.record([revoked('c')], T0 + 10);
      await world.record([revoked('later')], T0 + 1_000);

      expect(await store.claimDue(T0 - 1, T0 + 100, 10)).toEqual([]);
      const first = await store.claimDue(T0 + 20, T0 + 500, 2);
      expect(first.map((c) => JSON.parse(c.payload).data.sub)).toEqual(['b', 'c']);
      expect(
        first.every(
          (c) =>
            c.attempt === 1 &&
            c.endpointId === e.id &&
            c.url === e.url &&
            c.secretCiphertext.equals(e.secretCiphertext),
        ),
      ).toBe(true);
      // Leased: not taken again before the lease runs out, whoever asks.
      const other = await world.openAnother();
      expect(
        (await other.claimDue(T0 + 499, T0 + 900, 10)).map((c) => JSON.parse(c.payload).data.sub),
      ).toEqual(['a']);
      expect(await store.claimDue(T0 + 499, T0 + 900, 10)).toEqual([]);
      // A sender that died: once the lease has run out the delivery is taken again, as attempt 2.
      const retaken = await other.claimDue(T0 + 500, T0 + 900, 10);
      expect(retaken.map((c) => [JSON.parse(c.payload).data.sub, c.attempt])).toEqual([
        ['b', 2],
        ['c', 2],
      ]);
      const b = (await deliveries({ sub: 'b' }))[0]!;
      expect(b).toMatchObject({ status: 'pending', attempts: 2, lastAttemptAt: T0 + 500 });
    });

    it('outcomes: delivered; failed and due again; failed for good; a late answer from a lost lease changes nothing', async () => {
      const e = endpoint();
      await store.insertEndpoint(e);
      for (const sub of ['ok', 'retry', 'dead', 'late']) await world.record([revoked(sub)], T0);
      const claimed = new Map(
        (await store.claimDue(T0, T0 + 100, 10)).map((c) => [JSON.parse(c.payload).data.sub as string, c]),
      );

      expect(
        await store.recordOutcome(claimed.get('ok')!.id, 1, T0 + 5, { kind: 'delivered', httpStatus: 204 }),
      ).toBe(true);
      expect(
        await store.recordOutcome(claimed.get('retry')!.id, 1, T0 + 5, {
          kind: 'failed',
          httpStatus: 500,
          error: 'HTTP 500',
          retryAt: T0 + 5_000,
        }),
      ).toBe(true);
      expect(
        await store.recordOutcome(claimed.get('dead')!.id, 1, T0 + 5, {
          kind: 'failed',
          httpStatus: null,
          error: 'connection failed (ECONNREFUSED)',
          retryAt: null,
        }),
      ).toBe(true);
      // 'late' is taken again after its lease ran out; the first sender's answer then arrives.
      expect((await store.claimDue(T0 + 100, T0 + 200, 10)).map((c) => c.id)).toEqual([
        claimed.get('late')!.id,
      ]);
      expect(
        await store.recordOutcome(claimed.get('late')!.id, 1, T0 + 150, {
          kind: 'failed',
          httpStatus: 500,
          error: 'HTTP 500',
          retryAt: null,
        }),
      ).toBe(false);
      expect(
        await store.recordOutcome(claimed.get('late')!.id, 2, T0 + 160, {
          kind: 'delivered',
          httpStatus: 200,
        }),
      ).toBe(true);
      // Nothing is recorded twice.
      expect(
        await store.recordOutcome(claimed.get('ok')!.id, 1, T0 + 170, {
          kind: 'failed',
          httpStatus: 500,
          error: 'HTTP 500',
          retryAt: null,
        }),
      ).toBe(false);

      const bySub = new Map((await deliveries()).map((d) => [d.sub, d]));
      expect(bySub.get('ok')).toMatchObject({
        status: 'delivered',
        attempts: 1,
        lastStatus: 204,
        lastError: null,
        nextAttemptAt: null,
        finishedAt: T0 + 5,
      });
      expect(bySub.get('retry')).toMatchObject({
        status: 'pending',
        attempts: 1,
        lastStatus: 500,
        lastError: 'HTTP 500',
        nextAttemptAt: T0 + 5_000,
        finishedAt: null,
      });
      expect(bySub.get('dead')).toMatchObject({
        status: 'failed',
        attempts: 1,
        lastStatus: null,
        lastError: 'connection failed (ECONNREFUSED)',
        nextAttemptAt: null,
        finishedAt: T0 + 5,
      });
      expect(bySub.get('late')).toMatchObject({
        status: 'delivered',
        attempts: 2,
        lastStatus: 200,
        finishedAt: T0 + 160,
      });
      expect((await store.claimDue(T0 + 4_999, T0 + 6_000, 10)).map((c) => c.id)).toEqual([]);
      expect((await store.claimDue(T0 + 5_000, T0 + 6_000, 10)).map((c) => c.id)).toEqual([
        bySub.get('retry')!.id,
      ]);
      expect((await store.listEndpoints())[0]!.deliveries).toEqual({ pending: 1, delivered: 2, failed: 1 });
    });

    it('a disabled endpoint: its pending deliveries fail, it is not claimed from and gets no new events', async () => {
      const gone = endpoint();
      const fine = endpoint();
      await store.insertEndpoint(gone);
      await store.insertEndpoint(fine);
      await world.record([revoked('u1'), revoked('u2')], T0);
      await store.disableEndpoint(gone.id, 'it answered 410 Gone', T0 + 1);
      const listed = await store.listEndpoints();
      expect(listed.find((e) => e.id === gone.id)).toMatchObject({
        status: 'disabled',
        disabledReason: 'it answered 410 Gone',
        updatedAt: T0 + 1,
        deliveries: { pending: 0, delivered: 0, failed: 2 },
      });
      const goneRows = await deliveries({ endpointId: gone.id });
      expect(goneRows).toHaveLength(2);
      for (const row of goneRows) {
        expect(row).toMatchObject({
          status: 'failed',
          nextAttemptAt: null,
          lastError: 'not sent: the endpoint was disabled (it answered 410 Gone)',
          finishedAt: T0 + 1,
        });
      }
      expect((await store.claimDue(T0 + 10, T0 + 100, 10)).every((c) => c.endpointId === fine.id)).toBe(true);
      expect(await world.record([deleted('u1')], T0 + 20)).toBe(1);
    });

    it('deliveries are listed newest first, filtered by endpoint, status and user, a bounded page at a time', async () => {
      const a = endpoint();
      const b = endpoint({ events: ['user.deleted'] });
      await store.insertEndpoint(a);
      await store.insertEndpoint(b);
      await world.record([revoked('u1')], T0);
      await world.record([deleted('u1')], T0 + 1);
      await world.record([deleted('u2')], T0 + 2);
      const ids = (list: DeliveryRecord[]) =>
        list.map((d) => [d.endpointId === a.id ? 'a' : 'b', d.eventType, d.sub]);
      expect(ids(await store.listDeliveries({ endpointId: a.id, limit: 10 }))).toEqual([
        ['a', 'user.deleted', 'u2'],
        ['a', 'user.deleted', 'u1'],
        ['a', 'grant.revoked', 'u1'],
      ]);
      expect(ids(await store.listDeliveries({ sub: 'u1', endpointId: b.id, limit: 10 }))).toEqual([
        ['b', 'user.deleted', 'u1'],
      ]);
      expect(await store.listDeliveries({ limit: 2 })).toHaveLength(2);
      expect(await store.listDeliveries({ status: 'delivered', limit: 10 })).toEqual([]);
      for (const limit of [0, 501, 1.5])
        await expect(store.listDeliveries({ limit })).rejects.toMatchObject({
          code: 'INVALID_REQUEST',
          reason: 'bad_limit',
        });
      await expect(store.listDeliveries({ limit: 1, status: 'sent' as never })).rejects.toMatchObject({
        code: 'INVALID_REQUEST',
        reason: 'bad_status',
      });
    });

    it('finished deliveries older than the cut-off are pruned; pending ones never', async () => {
      await store.insertEndpoint(endpoint());
      for (const sub of ['old', 'recent', 'waiting']) await world.record([revoked(sub)], T0);
      const claimed = new Map(
        (await store.claimDue(T0, T0 + 100, 10)).map((c) => [JSON.parse(c.payload).data.sub as string, c]),
      );
      await store.recordOutcome(claimed.get('old')!.id, 1, T0 + 10, { kind: 'delivered', httpStatus: 200 });
      await store.recordOutcome(claimed.get('recent')!.id, 1, T0 + 30, {
        kind: 'failed',
        httpStatus: 400,
        error: 'HTTP 400',
        retryAt: null,
      });
      await store.recordOutcome(claimed.get('waiting')!.id, 1, T0 + 10, {
        kind: 'failed',
        httpStatus: 503,
        error: 'HTTP 503',
        retryAt: T0 + 5_000,
      });
      expect(await store.pruneFinished(T0 + 20)).toBe(1);
      expect((await deliveries()).map((d) => d.sub).sort()).toEqual(['recent', 'waiting']);
    });

    it('a secret is replaced only if it is still the one read (key rotation)', async () => {
      const e = endpoint();
      await store.insertEndpoint(e);
      expect(await store.listSecrets()).toEqual([
        { id: e.id, url: e.url, secretCiphertext: e.secretCiphertext },
      ]);
      const next = randomBytes(40);
      expect(await store.replaceSecret(e.id, randomBytes(40), next, T0 + 5)).toBe(false);
      expect(await store.replaceSecret(e.id, e.secretCiphertext, next, T0 + 5)).toBe(true);
      expect((await store.listSecrets())[0]!.secretCiphertext.equals(next)).toBe(true);
      expect((await store.listEndpoints())[0]!.updatedAt).toBe(T0 + 5);
    });

    it('two instances claiming at once never take the same delivery', async () => {
      await store.insertEndpoint(endpoint());
      const subs = Array.from({ length: 40 }, (_, i) => `u${i}`);
      await world.record(subs.map(revoked), T0);
      const other = await world.openAnother();
      const taken: string[] = [];
      const drain = async (s: WebhookStore) => {
        for (;;) {
          const claimed = await s.claimDue(T0, T0 + 60_000, 3);
          if (claimed.length === 0) return;
          taken.push(...claimed.map((c) => c.id));
        }
      };
      await Promise.all([drain(store), drain(other), drain(store), drain(other)]);
      expect(taken).toHaveLength(40);
      expect(new Set(taken).size).toBe(40);
    });
  });
}
