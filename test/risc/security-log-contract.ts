/**
 * The security event log's contract suite: every backend runs exactly these tests, unchanged
 * (`runSecurityLogContract('postgres', …)` beside `runSecurityLogContract('sqlite', …)`), as the
 * vault's store does (test/vault/store-contract.ts).
 *
 * Issue 11, point 3: recording a security event's id and acting on it are one transaction. An
 * event is acted on exactly once, across database objects (instances); a handling that fails
 * records nothing, so Google's redelivery acts. Point 5: deleting a user is one transaction
 * covering the grant, the security state and the job runs.
 *
 * `makeWorld` must return an empty, migrated database with the repositories over it; the suite
 * closes the world after each test.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Database, GrantChangeListener } from '../../src/database/index.js';
import { BehalfError } from '../../src/errors.js';
import type { JobBackend, JobRun } from '../../src/jobs/index.js';
import type { SecurityLog, SecurityStep } from '../../src/risc/index.js';
import type { SignInWrite, Store } from '../../src/vault/index.js';
import { profile } from '../vault/store-contract.js';

const CLIENT = 'server-client.apps.googleusercontent.com';
const OTHER_CLIENT = 'other-client.apps.googleusercontent.com';
const T0 = 1_760_000_000_000;

export interface SecurityLogWorld {
  /** An open database, migrated and empty. */
  database: Database;
  log: SecurityLog;
  /** The vault's store over the same database object, to seed and read users and grants. */
  store: Store;
  /** Job runs over the same database object, to seed and read a user's job runs. */
  jobs: JobBackend;
  /**
   * Another database object over the same data (a pool of its own on Postgres, a connection of its
   * own to the same file on SQLite), as a second instance has, with a security log over it.
   * Closed with the world.
   */
  openAnother(): Promise<{ database: Database; log: SecurityLog }>;
  /**
   * Make the database itself refuse to write `sub`'s security state (a trigger that raises an
   * error), as a real failure in the middle of an event's handling would. Returns the repair.
   */
  refuseStateWrites(sub: string): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

function signIn(sub: string, clientId = CLIENT): SignInWrite {
  return {
    user: profile(sub),
    clientId,
    scopes: ['openid', 'email'],
    refreshTokenCiphertext: randomBytes(40),
    accessTokenCiphertext: randomBytes(40),
    accessTokenExpiresAt: T0 + 3_600_000,
    now: T0,
  };
}

function jobRun(sub: string): JobRun {
  return {
    id: randomUUID(),
    name: 'sync',
    sub,
    params: { folder: 'root' },
    status: 'queued',
    attempts: 0,
    maxAttempts: 5,
    errorCode: null,
    errorMessage: null,
    result: null,
    createdAt: T0,
    updatedAt: T0,
    finishedAt: null,
  };
}

/** Every change the database's feed announces to this process, in order. */
function listen(database: Database): { changed: string[]; stop: () => void } {
  const changed: string[] = [];
  const listener: GrantChangeListener = { changed: (sub) => changed.push(sub), reset: () => undefined };
  return { changed, stop: database.changes.subscribe(listener) };
}

const revoke = (sub: string, clientId = CLIENT): SecurityStep => ({
  op: 'revoke_grant',
  sub,
  clientId,
  state: 'tokens_revoked',
});

export function runSecurityLogContract(name: string, makeWorld: () => Promise<SecurityLogWorld>): void {
  describe(`SecurityLog contract: ${name}`, () => {
    let world: SecurityLogWorld;
    let log: SecurityLog;
    let store: Store;

    beforeEach(async () => {
      world = await makeWorld();
      ({ log, store } = world);
    });

    afterEach(async () => {
      await world.close();
    });

    it('knows no state for a user it has heard nothing about', async () => {
      expect(await log.getState('nobody')).toBeNull();
    });

    it('applies an event once: the same id again answers false and applies nothing, whatever its steps', async () => {
      expect(
        await log.applyEvent('jti-1', T0, [{ op: 'set_state', sub: 'a', state: 'account_disabled' }]),
      ).toBe(true);
      expect(await log.getState('a')).toEqual({ state: 'account_disabled', at: T0 });

      await store.saveSignIn(signIn('b'));
      const before = await store.getGrant('b', CLIENT);
      // A redelivery carrying other steps (it cannot, from Google, but the id alone decides).
      expect(
        await log.applyEvent('jti-1', T0 + 1000, [
          { op: 'set_state', sub: 'a', state: 'credential_change_required' },
          revoke('b'),
          { op: 'delete_user', sub: 'b' },
        ]),
      ).toBe(false);
      expect(await log.getState('a')).toEqual({ state: 'account_disabled', at: T0 });
      expect(await log.getState('b')).toBeNull();
      expect(await store.getGrant('b', CLIENT)).toEqual(before);
      expect(await store.getUser('b')).not.toBeNull();

      // Another id is another event.
      expect(
        await log.applyEvent('jti-2', T0 + 2000, [
          { op: 'set_state', sub: 'a', state: 'credential_change_required' },
        ]),
      ).toBe(true);
      expect(await log.getState('a')).toEqual({ state: 'credential_change_required', at: T0 + 2000 });
    });

    it('an event with no steps is recorded all the same', async () => {
      expect(await log.applyEvent('empty', T0, [])).toBe(true);
      expect(await log.applyEvent('empty', T0, [])).toBe(false);
    });

    it('revoke_grant: the grant is revoked, both tokens erased, and the reason recorded; other grants are untouched', async () => {
      await store.saveSignIn(signIn('u'));
      await store.saveSignIn(signIn('u', OTHER_CLIENT));
      await store.saveSignIn(signIn('v'));
      const before = (await store.getGrant('u', CLIENT))!;

      expect(await log.applyEvent('revoke-u', T0 + 5000, [revoke('u')])).toBe(true);

      const after = await store.getGrant('u', CLIENT);
      expect(after).toMatchObject({
        status: 'revoked',
        refreshTokenCiphertext: null,
        accessTokenCiphertext: null,
        accessTokenExpiresAt: null,
        version: before.version + 1,
        updatedAt: T0 + 5000,
      });
      expect(await log.getState('u')).toEqual({ state: 'tokens_revoked', at: T0 + 5000 });
      expect(await store.getGrant('u', OTHER_CLIENT)).toMatchObject({ status: 'active', version: 1 });
      expect(await store.getGrant('v', CLIENT)).toMatchObject({ status: 'active', version: 1 });
      expect(await log.getState('v')).toBeNull();
      expect(await store.getUser('u')).not.toBeNull();
    });

    it('set_state records, replaces, and with null clears the state of one user only', async () => {
      await log.applyEvent('s1', T0, [
        { op: 'set_state', sub: 'x', state: 'account_disabled_hijacking' },
        { op: 'set_state', sub: 'y', state: 'sessions_revoked' },
      ]);
      expect(await log.getState('x')).toEqual({ state: 'account_disabled_hijacking', at: T0 });
      await log.applyEvent('s2', T0 + 1, [{ op: 'set_state', sub: 'x', state: 'token_revoked' }]);
      expect(await log.getState('x')).toEqual({ state: 'token_revoked', at: T0 + 1 });
      await log.applyEvent('s3', T0 + 2, [{ op: 'set_state', sub: 'x', state: null }]);
      expect(await log.getState('x')).toBeNull();
      expect(await log.getState('y')).toEqual({ state: 'sessions_revoked', at: T0 });
      // Clearing what is not there is fine.
      expect(await log.applyEvent('s4', T0 + 3, [{ op: 'set_state', sub: 'x', state: null }])).toBe(true);
      expect(await log.getState('x')).toBeNull();
    });

    it('delete_user forgets the user, their grants, security state and job runs; other users keep theirs', async () => {
      for (const sub of ['gone', 'kept']) {
        await store.saveSignIn(signIn(sub));
        await store.saveSignIn(signIn(sub, OTHER_CLIENT));
        await log.applyEvent(`state-${sub}`, T0, [{ op: 'set_state', sub, state: 'account_disabled' }]);
      }
      const goneRuns = [jobRun('gone'), jobRun('gone')];
      const keptRun = jobRun('kept');
      for (const run of [...goneRuns, keptRun]) await world.jobs.insertRun(run);

      expect(await log.applyEvent('purge', T0 + 1, [{ op: 'delete_user', sub: 'gone' }])).toBe(true);

      expect(await store.getUser('gone')).toBeNull();
      expect(await store.getGrant('gone', CLIENT)).toBeNull();
      expect(await store.getGrant('gone', OTHER_CLIENT)).toBeNull();
      expect(await log.getState('gone')).toBeNull();
      expect(await world.jobs.listRuns({ sub: 'gone' })).toEqual([]);
      for (const run of goneRuns) expect(await world.jobs.getRun(run.id)).toBeNull();

      expect(await store.getUser('kept')).not.toBeNull();
      expect(await store.getGrant('kept', OTHER_CLIENT)).toMatchObject({ status: 'active' });
      expect(await log.getState('kept')).toEqual({ state: 'account_disabled', at: T0 });
      expect(await world.jobs.listRuns({ sub: 'kept' })).toEqual([keptRun]);
      // The user may come back with a new sign-in, from nothing.
      expect((await store.saveSignIn(signIn('gone'))).grant).toMatchObject({ status: 'active', version: 1 });
    });

    it('delete_user of a user it does not hold, or twice in one event, is no failure', async () => {
      expect(
        await log.applyEvent('nobody', T0, [
          { op: 'delete_user', sub: 'nobody' },
          { op: 'delete_user', sub: 'nobody' },
        ]),
      ).toBe(true);
    });

    it('steps apply in order: a revoke then a delete leaves nothing; a state set after a revoke wins', async () => {
      await store.saveSignIn(signIn('p'));
      await store.saveSignIn(signIn('q'));
      expect(
        await log.applyEvent('ordered', T0 + 9, [
          revoke('p'),
          { op: 'delete_user', sub: 'p' },
          revoke('q'),
          { op: 'set_state', sub: 'q', state: 'account_disabled' },
        ]),
      ).toBe(true);
      expect(await store.getUser('p')).toBeNull();
      expect(await log.getState('p')).toBeNull();
      expect(await store.getGrant('q', CLIENT)).toMatchObject({
        status: 'revoked',
        refreshTokenCiphertext: null,
      });
      expect(await log.getState('q')).toEqual({ state: 'account_disabled', at: T0 + 9 });
    });

    it('a step that fails rolls back the whole event, its id included: the redelivery applies it (issue 11, point 3)', async () => {
      await store.saveSignIn(signIn('victim'));
      await store.saveSignIn(signIn('bystander'));
      const grantBefore = await store.getGrant('victim', CLIENT);
      const feed = listen(world.database);
      try {
        const repair = await world.refuseStateWrites('victim');
        // The first step succeeds inside the transaction, the second fails in the database.
        const failure = await log.applyEvent('flaky', T0 + 1, [revoke('bystander'), revoke('victim')]).then(
          () => undefined,
          (error: unknown) => error,
        );
        expect(failure).toBeInstanceOf(BehalfError);
        // Nothing of it stays: not the first step, not the id; nobody was told of a change.
        expect(await store.getGrant('bystander', CLIENT)).toMatchObject({ status: 'active', version: 1 });
        expect(await log.getState('bystander')).toBeNull();
        expect(await store.getGrant('victim', CLIENT)).toEqual(grantBefore);
        expect(feed.changed).toEqual([]);

        // While the database still refuses, the redelivery fails the same way (it is not "duplicate").
        await expect(
          log.applyEvent('flaky', T0 + 2, [revoke('bystander'), revoke('victim')]),
        ).rejects.toBeInstanceOf(BehalfError);

        await repair();
        expect(await log.applyEvent('flaky', T0 + 3, [revoke('bystander'), revoke('victim')])).toBe(true);
        expect(await store.getGrant('bystander', CLIENT)).toMatchObject({ status: 'revoked', version: 2 });
        expect(await store.getGrant('victim', CLIENT)).toMatchObject({
          status: 'revoked',
          version: 2,
          refreshTokenCiphertext: null,
        });
        expect(await log.getState('victim')).toEqual({ state: 'tokens_revoked', at: T0 + 3 });
        expect(await log.applyEvent('flaky', T0 + 4, [revoke('bystander'), revoke('victim')])).toBe(false);
      } finally {
        feed.stop();
      }
    });

    it('the same id applied at once through two database objects is applied exactly once, every time', async () => {
      const other = await world.openAnother();
      await store.saveSignIn(signIn('raced'));
      const logs = [log, other.log, log, other.log];
      const rounds = 20;
      for (let round = 0; round < rounds; round++) {
        const results = await Promise.all(
          logs.map((each) => each.applyEvent(`race-${round}`, T0 + round, [revoke('raced')])),
        );
        expect(results.filter(Boolean), `round ${round}: ${JSON.stringify(results)}`).toHaveLength(1);
      }
      // Each applied event bumped the grant's version once, and no event twice.
      expect(await store.getGrant('raced', CLIENT)).toMatchObject({ status: 'revoked', version: 1 + rounds });
      // Either object sees the other's record.
      expect(await other.log.applyEvent('race-0', T0, [revoke('raced')])).toBe(false);
      expect(await other.log.getState('raced')).toEqual({ state: 'tokens_revoked', at: T0 + rounds - 1 });
    });

    it('a revoke and a deletion of one user at once, through two database objects, both apply', async () => {
      const other = await world.openAnother();
      for (let round = 0; round < 20; round++) {
        const sub = `both${round}`;
        await store.saveSignIn(signIn(sub));
        await log.applyEvent(`state-${round}`, T0, [{ op: 'set_state', sub, state: 'sessions_revoked' }]);
        const results = await Promise.allSettled([
          log.applyEvent(`revoke-${round}`, T0 + 1, [revoke(sub)]),
          other.log.applyEvent(`delete-${round}`, T0 + 1, [{ op: 'delete_user', sub }]),
        ]);
        // Neither may fail for the other's sake (a deadlock between them would fail one).
        expect(results, `round ${round}`).toEqual([
          { status: 'fulfilled', value: true },
          { status: 'fulfilled', value: true },
        ]);
        expect(await store.getUser(sub)).toBeNull();
        expect(await store.getGrant(sub, CLIENT)).toBeNull();
      }
    });

    it("an applied event that revokes or deletes tells this process's listeners at once; a duplicate tells nobody", async () => {
      await store.saveSignIn(signIn('r'));
      await store.saveSignIn(signIn('d'));
      await store.saveSignIn(signIn('untouched'));
      const feed = listen(world.database);
      try {
        expect(await log.applyEvent('tell-r', T0, [revoke('r')])).toBe(true);
        // Published by the time applyEvent resolves: no waiting for a notification.
        expect(feed.changed).toContain('r');
        expect(await log.applyEvent('tell-d', T0, [{ op: 'delete_user', sub: 'd' }])).toBe(true);
        expect(feed.changed).toContain('d');
        // A duplicate applies nothing, so it changes no grant and announces none.
        expect(
          await log.applyEvent('tell-r', T0, [revoke('untouched'), { op: 'delete_user', sub: 'untouched' }]),
        ).toBe(false);
        expect(feed.changed).not.toContain('untouched');
        expect(await store.getGrant('untouched', CLIENT)).toMatchObject({ status: 'active' });
      } finally {
        feed.stop();
      }
    });

    it("announce keeps the user's history of events, newest first, once per event id, and a deletion erases it (issue 13: the admin console shows it)", async () => {
      await store.saveSignIn(signIn('h'));
      await store.saveSignIn(signIn('other'));
      const announce = (sub: string, event: string, action: string) => ({
        op: 'announce' as const,
        sub,
        event,
        action,
      });
      expect(await log.listEvents('h', 10)).toEqual([]);
      await log.applyEvent('h-1', T0, [
        { op: 'set_state', sub: 'h', state: 'credential_change_required' },
        announce('h', 'account-credential-change-required', 'user_marked'),
      ]);
      await log.applyEvent('h-2', T0 + 1000, [revoke('h'), announce('h', 'tokens-revoked', 'grant_dropped')]);
      // A redelivery adds nothing.
      expect(await log.applyEvent('h-2', T0 + 2000, [announce('h', 'tokens-revoked', 'grant_dropped')])).toBe(
        false,
      );
      await log.applyEvent('o-1', T0, [announce('other', 'sessions-revoked', 'grant_dropped')]);
      expect(await log.listEvents('h', 10)).toEqual([
        { type: 'tokens-revoked', action: 'grant_dropped', at: T0 + 1000 },
        { type: 'account-credential-change-required', action: 'user_marked', at: T0 },
      ]);
      expect(await log.listEvents('h', 1)).toEqual([
        { type: 'tokens-revoked', action: 'grant_dropped', at: T0 + 1000 },
      ]);

      // Purged by Google: deleted, and no history left behind.
      await log.applyEvent('h-3', T0 + 3000, [
        { op: 'delete_user', sub: 'h' },
        announce('h', 'account-purged', 'user_deleted'),
      ]);
      expect(await log.listEvents('h', 10)).toEqual([]);
      // Deleted through the store (DELETE /v1/users/{sub}): the history goes with the user.
      expect(await store.deleteUser('other')).toBe(true);
      expect(await log.listEvents('other', 10)).toEqual([]);
    });
  });
}
