import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childLoggerFactory, PathOnlyLogController } from '../../src/http/request-log.js';
import { startHarness, type Harness } from '../support/harness.js';

/**
 * Nothing secret in logs: request lines are logged with the path only. A client that sends the
 * API key as `?key=…`, or a proxied Google call with `?access_token=…`, must not find either in
 * any log line, incoming, completed or error.
 */
const SECRET1 = `k1-${randomBytes(12).toString('hex')}`;
const SECRET2 = `ya29.${randomBytes(12).toString('hex')}`;
const QUERY = `?key=${SECRET1}&access_token=${SECRET2}`;

interface Line {
  msg?: string;
  reqId?: string;
  req?: { method?: string; url?: string };
}

const parse = (lines: string[]): Line[] => lines.map((line) => JSON.parse(line) as Line);

function expectNoSecret(lines: string[]): void {
  const hits = lines.filter(
    (line) =>
      line.includes(SECRET1) ||
      line.includes(SECRET2) ||
      line.includes('key=') ||
      line.includes('access_token='),
  );
  expect(hits).toEqual([]);
}

describe('request log lines carry the path, not the query string (real server)', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ env: { BEHALF_LOG_LEVEL: 'debug', BEHALF_GOOGLE_TIMEOUT_MS: '1000' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it('logs every route by path, and neither secret anywhere', async () => {
    const sub = await h.signedInUser();
    const withKey = { authorization: `Bearer ${h.apiKey}` };
    const proxied = `/v1/users/${sub}/google/drive/v3/files`;
    const calls: Array<{
      method: string;
      path: string;
      query?: string;
      headers?: Record<string, string>;
      status: number;
    }> = [
      { method: 'GET', path: '/healthz', status: 200 },
      // The proxy, with the API key where it belongs and the secrets in the forwarded query.
      { method: 'GET', path: proxied, query: `${QUERY}&spaces=appDataFolder`, headers: withKey, status: 200 },
      // The proxy with the key only in the query: refused, still logged by path.
      { method: 'GET', path: proxied, status: 401 },
      { method: 'GET', path: `/v1/users/${sub}`, headers: withKey, status: 200 },
      { method: 'GET', path: '/no/such/route', status: 404 },
      {
        method: 'POST',
        path: '/v1/google/signin',
        headers: { 'content-type': 'application/json', 'x-requested-with': 'x' },
        status: 400,
      },
    ];
    for (const call of calls) {
      const response = await fetch(`${h.url}${call.path}${call.query ?? QUERY}`, {
        method: call.method,
        ...(call.headers === undefined ? {} : { headers: call.headers }),
        ...(call.method === 'POST' ? { body: '{"code":' } : {}),
      });
      await response.arrayBuffer();
      expect(response.status, `${call.method} ${call.path}`).toBe(call.status);
    }

    // An error logged by behalf itself: Google failing a refresh is a 503 with a warning line.
    // Google's Retry-After is past the refresh deadline, so behalf gives up at once.
    h.clock.advance(3700);
    await h.control('POST', '/emulator/faults', { path: '/token', status: 503, retry_after: 60, count: 1 });
    const failed = await fetch(`${h.url}/v1/users/${sub}/access-token${QUERY}`, {
      method: 'POST',
      headers: withKey,
    });
    await failed.arrayBuffer();
    await h.control('DELETE', '/emulator/faults');
    expect(failed.status).toBe(503);
    calls.push({ method: 'POST', path: `/v1/users/${sub}/access-token`, status: 503 });

    // "request completed" is written as the response finishes: wait for the last one.
    await expect
      .poll(() => parse(h.logs).filter((l) => l.msg === 'request completed').length)
      .toBeGreaterThanOrEqual(calls.length);

    expectNoSecret(h.logs);
    const lines = parse(h.logs);
    const incoming = lines
      .filter((l) => l.msg === 'incoming request')
      .map((l) => `${l.req?.method} ${l.req?.url}`);
    for (const call of calls) expect(incoming).toContain(`${call.method} ${call.path}`);
    // The error line belongs to a request whose incoming line names its path.
    const warning = lines.find((l) => l.msg !== undefined && /retry later/.test(l.msg));
    expect(warning?.reqId).toBeDefined();
    expect(lines.find((l) => l.reqId === warning?.reqId && l.msg === 'incoming request')?.req?.url).toBe(
      `/v1/users/${sub}/access-token`,
    );
  });
});

describe('request log lines carry the path, whatever logger behalf is handed', () => {
  /** A bare Fastify with behalf's logging options, and Fastify's own 404 handler. */
  function appWith(logger: Logger) {
    const app = Fastify({
      loggerInstance: logger,
      childLoggerFactory,
      logController: new PathOnlyLogController(),
    });
    app.get('/boom', async () => {
      throw new Error('boom');
    });
    return app;
  }

  it('overrides an embedding app’s own req serializer, and Fastify’s "Route … not found" line', async () => {
    const logs: string[] = [];
    const logger = pino(
      { level: 'debug', serializers: { req: (req: { url?: string }) => ({ rawUrl: req.url }) } },
      { write: (line: string) => void logs.push(line) },
    );
    const app = appWith(logger);
    try {
      expect((await app.inject({ method: 'GET', url: `/missing${QUERY}` })).statusCode).toBe(404);
      expect((await app.inject({ method: 'GET', url: `/boom${QUERY}` })).statusCode).toBe(500);
    } finally {
      await app.close();
    }
    expectNoSecret(logs);
    const lines = parse(logs);
    expect(lines.filter((l) => l.msg === 'incoming request').map((l) => l.req?.url)).toEqual([
      '/missing',
      '/boom',
    ]);
    expect(lines.map((l) => l.msg)).toContain('Route GET:/missing not found');
    // Fastify's default error handler logs the 500 with the request: path only there too.
    expect(lines.find((l) => l.msg === 'boom')?.req?.url).toBe('/boom');
  });
});
