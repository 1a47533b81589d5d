/**
 * The limit for the proxy workload: the least a streaming HTTP proxy on Node can do. A node:http
 * server that forwards each request to one upstream through undici's request() (keep-alive, the
 * same client behalf uses) with a fixed Authorization header, and pipes the answer back. No API
 * key, no token lookup, no header filtering, no logging: what is left of behalf's proxy above this
 * is behalf's own cost.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';

export interface BareProxy {
  url: string;
  close(): Promise<void>;
}

export async function startBareProxy(upstream: string, authorization: string): Promise<BareProxy> {
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const answer = await request(`${upstream}${req.url ?? '/'}`, {
          method: req.method as 'GET',
          headers: { authorization, accept: req.headers.accept ?? '*/*' },
        });
        res.writeHead(answer.statusCode, contentHeaders(answer.headers));
        await pipeline(answer.body, res);
      } catch {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      }
    })();
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function contentHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const type = headers['content-type'];
  const length = headers['content-length'];
  return {
    ...(typeof type === 'string' ? { 'content-type': type } : {}),
    ...(typeof length === 'string' ? { 'content-length': length } : {}),
  };
}
