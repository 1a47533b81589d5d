import type { EmulatorHandle } from './emulator.js';

/** What every workload receives from bench/run.ts. */
export interface BenchContext {
  quick: boolean;
  /** A scratch directory, removed after the run. */
  dir: string;
  /** The Google emulator, in its own process. */
  emulator: EmulatorHandle;
  /** Users stored for the scale workload, in SQLite and in Postgres. */
  scaleUsers: number;
  postgresScaleUsers: number;
  /** The Postgres server to measure on: BEHALF_DATABASE_URL when it names one, else the tests' server. */
  postgresUrl: string | undefined;
  /** Progress lines on stderr (the table goes to stdout). */
  log(message: string): void;
}
