import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendToGoogle } from '../../src/google/http.js';
import { requestFetch } from '../../src/google/request-fetch.js';

/** A loopback server that answers what each test sets, and remembers what it was sent. */
describe("requestFetch (the default client for Google's OAuth and OpenID endpoints)", () => {
  let server: Server;
  let base: string;
  let handle: (request: IncomingMessage, body: string, response: ServerResponse) => void;
  let seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string } | undefined;

  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (body += chunk));
      request.on('end', () => {
        seen = { method: request.method!, url: request.url!, headers: request.headers, body };
        handle(request, body, response);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('posts a form as fetch does and answers a Response with status, headers and body', async () => {
    handle = (_request, _body, response) => {
      response.setHeader('set-cookie', ['a=1', 'b=2']);
      response.setHeader('retry-after', '7');
      response.writeHead(400, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: 'invalid_grant', error_description: 'Bad Request' }));
    };
    const response = await requestFetch(`${base}/token`, {
      method: 'POST',
      headers: { accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: '1//x y' }),
    });
    expect(seen).toMatchObject({
      method: 'POST',
      url: '/token',
      body: 'grant_type=refresh_token&refresh_token=1%2F%2Fx+y',
      headers: {
        accept: 'application/json',
        'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
      },
    });
    expect(response).toBeInstanceOf(Response);
    expect(response.status).toBe(400);
    expect(response.ok).toBe(false);
    expect(response.headers.get('retry-after')).toBe('7');
    expect(response.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(await response.json()).toEqual({ error: 'invalid_grant', error_description: 'Bad Request' });
  });

  it("keeps the caller's content type and takes headers as Headers too", async () => {
    handle = (_request, _body, response) => response.end('ok');
    const response = await requestFetch(`${base}/revoke`, {
      method: 'POST',
      headers: new Headers({ 'Content-Type': 'application/x-www-form-urlencoded' }),
      body: 'token=abc',
    });
    expect(seen?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(seen?.body).toBe('token=abc');
    expect(await response.text()).toBe('ok');
  });

  it('follows a redirect on GET (discovery, signing keys), answers a 204 without a body', async () => {
    handle = (request, _body, response) => {
      if (request.url === '/old') {
        response.writeHead(301, { location: '/certs' });
        response.end();
      } else if (request.url === '/empty') {
        response.writeHead(204);
        response.end();
      } else {
        response.writeHead(200, { 'cache-control': 'public, max-age=100' });
        response.end('{"keys":[]}');
      }
    };
    const moved = await requestFetch(`${base}/old`);
    expect(moved.status).toBe(200);
    expect(await moved.json()).toEqual({ keys: [] });
    const empty = await requestFetch(`${base}/empty`);
    expect(empty.status).toBe(204);
    expect(empty.body).toBeNull();
  });

  it('rejects as fetch does: a refused connection is a TypeError with the cause, which sendToGoogle calls the network', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const failure = await requestFetch(`http://127.0.0.1:${port}/token`).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect(((failure as Error).cause as { code?: string }).code).toBe('ECONNREFUSED');
    await expect(
      sendToGoogle(requestFetch, `http://127.0.0.1:${port}/token`, {}, 1000, 'token refresh'),
    ).rejects.toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'network' });
  });

  it('rejects with the signal’s reason on a timeout, headers or body late, which sendToGoogle calls a timeout', async () => {
    handle = () => undefined; // never answers
    await expect(
      sendToGoogle(requestFetch, `${base}/token`, { method: 'POST', body: 'x=1' }, 100, 'token refresh'),
    ).rejects.toMatchObject({ code: 'GOOGLE_UNAVAILABLE', reason: 'timeout' });

    handle = (_request, _body, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.write('{"keys":'); // and the rest never comes
    };
    const late = await requestFetch(`${base}/certs`, { signal: AbortSignal.timeout(100) }).catch(
      (error: unknown) => error,
    );
    expect(late).toBeInstanceOf(DOMException);
    expect((late as DOMException).name).toBe('TimeoutError');

    const aborted = new AbortController();
    aborted.abort(new Error('gone'));
    await expect(requestFetch(`${base}/certs`, { signal: aborted.signal })).rejects.toThrow('gone');
  });

  it('refuses an answer larger than 1 MiB instead of holding it', async () => {
    handle = (_request, _body, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(Buffer.alloc(1024 * 1024 + 1, 0x20));
    };
    const failure = await requestFetch(`${base}/huge`).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect(((failure as Error).cause as Error).message).toMatch(/larger than 1048576 bytes/);
  });

  it('hands a body it does not read itself to the global fetch', async () => {
    handle = (_request, body, response) => response.end(`got ${body}`);
    const response = await requestFetch(`${base}/blob`, { method: 'POST', body: new Blob(['blob body']) });
    expect(await response.text()).toBe('got blob body');
  });
});
