import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * behalf's logger. Nothing secret is ever passed to it on purpose; redaction is the second line
 * of defence for fields that could carry one if a future change slipped.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.code',
  '*.client_secret',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.clientSecret',
];

export function createLogger(
  level: LoggerOptions['level'] = 'info',
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'behalf' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
