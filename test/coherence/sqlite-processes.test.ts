import { afterAll, beforeAll, describe } from 'vitest';
import { createSharedSqlite } from '../support/shared-database.js';
import { lifecycleChangeTests, startServerPair, type ServerPair } from './server-pair.js';

/**
 * Issue 11, point 1, on SQLite: two `behalf serve` processes on one database file (and `behalf
 * sweep` as a third). A change committed by one process is honoured by the others within the
 * staleness bound, and at once by the process that made it (which SQLite's change counter does
 * not report to the connection that wrote).
 */
describe('coherent caches: two behalf processes on one SQLite file', () => {
  let pair: ServerPair;
  beforeAll(async () => {
    pair = await startServerPair(await createSharedSqlite());
  }, 120_000);
  afterAll(async () => {
    await pair?.close();
  }, 60_000);

  lifecycleChangeTests(() => pair);
});
