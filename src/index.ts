/**
 * behalf as a library. `createBehalf` takes the same settings as `behalf serve` (camelCase names of
 * the BEHALF_* variables) and returns the same capabilities the HTTP server offers.
 */
import { createRuntime, type Dependencies } from './app.js';
import type { Behalf } from './behalf.js';
import { loadConfig, type FlagName, type Mode } from './config/index.js';

export type BehalfOptions = Partial<
  Record<Exclude<FlagName, 'appClientIds' | 'requiredScopes' | 'allowedOrigins' | 'redirectUris'>, string>
> & {
  appClientIds?: string | readonly string[];
  requiredScopes?: string | readonly string[];
  allowedOrigins?: string | readonly string[];
  redirectUris?: string | readonly string[];
  /** `production` (default) requires encryption keys; `local` may generate a key file. */
  mode?: Mode;
} & Dependencies;

/** Build behalf from settings (environment variables are not read: pass what you need). */
export async function createBehalf(options: BehalfOptions): Promise<Behalf> {
  const { mode = 'production', clock, fetch, request, logger, ...settings } = options;
  const flags: Partial<Record<FlagName, string>> = {};
  for (const [name, value] of Object.entries(settings)) {
    if (value === undefined) continue;
    flags[name as FlagName] = Array.isArray(value) ? value.join(',') : String(value);
  }
  const config = await loadConfig({ mode, env: {}, flags });
  const runtime = await createRuntime(config, {
    ...(clock === undefined ? {} : { clock }),
    ...(fetch === undefined ? {} : { fetch }),
    ...(request === undefined ? {} : { request }),
    ...(logger === undefined ? {} : { logger }),
  });
  return runtime.behalf;
}

export { Behalf, type GrantSummary } from './behalf.js';
export { BehalfError, ERROR_CODES, isBehalfError, type ErrorCode } from './errors.js';
export { systemClock, OffsetClock, type Clock } from './clock.js';
export type { SignInInput, SignInResult } from './signin/index.js';
export type { AccessToken, SweepReport } from './tokens/index.js';
export type { JobContext, JobDefinition, JobRun, JobRunner, JobRunStatus } from './jobs/index.js';
export type { JobRunnerSettings } from './app.js';
export {
  BehalfAuthClient,
  type HttpRequestLike,
  type UserRequestAnswer,
  type UserRequestInit,
} from './calls/index.js';
export type { VerifiedIdToken } from './idtoken/index.js';
export type { UserProfile, UserRecord, GrantStatus } from './vault/index.js';
