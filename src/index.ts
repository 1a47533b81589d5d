/**
 * behalf as a library. `createBehalf` takes typed settings (the camelCase names of `behalf serve`'s
 * BEHALF_* variables, with numbers, booleans and lists as such) and returns the same capabilities
 * the HTTP server offers. Settings only a server has (port, TLS, CORS…) are not options.
 */
import { createRuntime, type Dependencies } from './app.js';
import type { Behalf } from './behalf.js';
import {
  checkOptionsObject,
  loadLibraryConfig,
  type BehalfSettings,
  type RefusedSettings,
} from './config/index.js';

/**
 * `createBehalf`'s options: the settings ({@link BehalfSettings}, each documented there) and what
 * behalf may be handed instead of its own ({@link Dependencies}: clock, fetch, logger…).
 * `discoveryUrl`, `apiUrl` and server-only settings such as `port` do not compile ({@link RefusedSettings}).
 */
export type BehalfOptions = BehalfSettings & RefusedSettings & Dependencies;

const DEPENDENCIES = ['clock', 'fetch', 'request', 'logger', 'webhooks'] as const satisfies ReadonlyArray<
  keyof Dependencies
>;

/**
 * Build behalf from settings (environment variables are not read: pass what you need). Bad options
 * throw one `BehalfError` with code `CONFIG_INVALID` whose message lists every problem, one line
 * each, naming the option.
 *
 * @example
 * const behalf = await createBehalf({
 *   clientSecretFile: './client_secret.json',
 *   appClientIds: ['1234-ios.apps.googleusercontent.com'],
 *   encryptionKeys: process.env.BEHALF_ENCRYPTION_KEYS,
 *   googleTimeoutMs: 5000,
 * });
 */
export async function createBehalf(options: BehalfOptions): Promise<Behalf> {
  checkOptionsObject(options);
  const { clock, fetch, request, logger, webhooks } = options;
  const config = await loadLibraryConfig(options, DEPENDENCIES);
  const runtime = await createRuntime(config, {
    ...(clock === undefined ? {} : { clock }),
    ...(fetch === undefined ? {} : { fetch }),
    ...(request === undefined ? {} : { request }),
    ...(logger === undefined ? {} : { logger }),
    ...(webhooks === undefined ? {} : { webhooks }),
  });
  return runtime.behalf;
}

export type { BehalfSettings, RefusedSettings } from './config/index.js';
export type { Dependencies } from './app.js';
export { Behalf, type GrantSummary } from './behalf.js';
export { BehalfError, ERROR_CODES, isBehalfError, type ErrorCode } from './errors.js';
export { systemClock, OffsetClock, type Clock } from './clock.js';
export type { SignInInput, SignInResult } from './signin/index.js';
export type { AccessToken, SweepReport } from './tokens/index.js';
export type {
  EnqueueOptions,
  JobContext,
  JobDefinition,
  JobParamsByName,
  JobRun,
  JobRunner,
  JobRunStatus,
} from './jobs/index.js';
export type { JobRunnerSettings } from './app.js';
export {
  BehalfAuthClient,
  type HttpRequestLike,
  type UserRequestAnswer,
  type UserRequestInit,
} from './calls/index.js';
export type { VerifiedIdToken } from './idtoken/index.js';
export type { UserProfile, UserRecord, GrantStatus } from './vault/index.js';

/**
 * The seed's example job, `enhance-photos` (local mode's demo page and `npm run example:photos` run
 * it): for a user who is offline, enhance each photo the app left in their Drive appDataFolder
 * and write the result beside it. Needs the `sharp` package (not a dependency of behalf: install
 * it to run this job). `enhancedName` names an enhanced copy; a run answers an {@link EnhanceResult}.
 */
export { enhancePhotosJob, enhancedName, type EnhanceResult } from './demo/index.js';
