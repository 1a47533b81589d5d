/**
 * A webhook receiver for tests: an HTTP server on loopback that records every request and answers
 * as told (a status, a dropped connection, or no answer at all), and a verifier that checks a
 * request the way a receiver would, with the `standardwebhooks` library.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { vi } from 'vitest';
import type { Clock } from '../../src/clock.js';

export interface Received {
  /** The request's path and query. */
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** What the receiver does with a request: answer with a status, drop the connection, or never answer. */
export type Behaviour = number | 'drop' | 'hang';

export class Receiver {
  readonly received: Received[] = [];
  /** TCP connections accepted, whatever came over them. */
  connections = 0;
  /** Decides each answer, from the request and how many came before it (default: 204). */
  behaviour: (request: Received, index: number) => Behaviour = () => 204;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #waiters: Array<{ count: number; resolve: () => void }> = [];

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<Receiver> {
    const server = createServer();
    const receiver = new Receiver(server);
    server.on('connection', (socket) => {
      receiver.connections++;
      receiver.#sockets.add(socket);
      socket.on('close', () => receiver.#sockets.delete(socket));
    });
    server.on('request', (request, response) => {
      void receiver.#handle(request).then((behaviour) => {
        if (behaviour === 'drop') request.socket.destroy();
        else if (behaviour !== 'hang') response.writeHead(behaviour).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  /** The URL webhooks are sent to. */
  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/behalf`;
  }

  /** Resolves once `count` requests in all have been received. */
  waitFor(count: number): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** The requests that carried this webhook-id, in order. */
  attemptsOf(id: string): Received[] {
    return this.received.filter((r) => r.headers['webhook-id'] === id);
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(request: IncomingMessage): Promise<Behaviour> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers))
      if (typeof value === 'string') headers[name] = value;
    const received = { path: request.url ?? '', headers, body: Buffer.concat(chunks).toString('utf8') };
    const index = this.received.push(received) - 1;
    for (const waiter of this.#waiters.filter((w) => this.received.length >= w.count)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    return this.behaviour(received, index);
  }
}

/**
 * Verify a request with standardwebhooks's Webhook.verify, as a receiver living at `clock`'s time
 * would: the library checks webhook-timestamp against Date.now() (within 5 minutes), and tests
 * move behalf's clock hours ahead through the retry schedule, so for the length of this one
 * synchronous call Date reads the test's clock. Signature, id and body are checked unchanged.
 */
export function verifyAt(clock: Clock, secret: string, request: Received): unknown {
  vi.useFakeTimers({ toFake: ['Date'], now: clock.now() });
  try {
    return new Webhook(secret).verify(request.body, request.headers);
  } finally {
    vi.useRealTimers();
  }
}
