import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Behalf } from '../behalf.js';
import { BehalfError, isBehalfError } from '../errors.js';
import type { JobRunner } from '../jobs/index.js';
import { APP_CSS, APP_JS, pageHtml } from './page.js';
import {
  downloadFile,
  ENHANCE_PHOTOS,
  enhancePhotosJob,
  samplePhoto,
  uploadPhoto,
  type EnhanceResult,
} from './photos.js';

/** What the demo needs once behalf runs (its port comes first: its origin goes into the client's JavaScript origins). */
export interface DemoWiring {
  /** behalf's base URL: the page POSTs the code there, cross-origin. */
  behalfUrl: string;
  /** The Google emulator's base URL: the page loads `/gsi/client` from it. */
  emulatorUrl: string;
  /** The web client id the page signs in with (the server's client, as for any web app). */
  clientId: string;
  /** Scopes the page asks for. */
  scopes: readonly string[];
  /** The demo's backend side: behalf as a library in this process (photos and the job runner). */
  behalf: Behalf;
}

export interface Demo {
  /** The page's URL, e.g. http://127.0.0.1:8090. */
  url: string;
  /** Its origins (127.0.0.1 and localhost): they must be among the web client's JavaScript origins. */
  origins: string[];
  /** Serve the page, now that behalf and the emulator run; starts the photo job's runner. */
  attach(wiring: DemoWiring): void;
  close(): Promise<void>;
}

export interface DemoOptions {
  port: number;
  /** When `port` is taken, listen on any free port instead of failing. */
  anyPortIfTaken?: boolean;
}

const Sub = z.string().regex(/^[\x21-\x7e]{1,255}$/, 'sub must be a Google user id.');
const PhotoJobBody = z.object({ sub: Sub });
const RunId = z.string().uuid();
const FileId = z.string().regex(/^[A-Za-z0-9_-]{1,200}$/);

/**
 * Local mode's demo web app, on an origin of its own (loopback only): a page that signs in with
 * the Google Identity Services code client against the emulator and POSTs the code to behalf
 * through CORS, and a small backend for it that, playing the app's backend, runs the photo job for
 * the signed-in user and serves the photos before and after. No token or key reaches the browser.
 */
export async function startDemo(options: DemoOptions): Promise<Demo> {
  let wired: Wired | undefined;
  let port = options.port;
  let app = buildApp(
    () => wired,
    () => port,
  );
  try {
    port = await listen(app, options.port);
  } catch (error) {
    await app.close();
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || options.anyPortIfTaken !== true)
      throw error;
    app = buildApp(
      () => wired,
      () => port,
    );
    port = await listen(app, 0);
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    origins: [url, `http://localhost:${port}`],
    attach(wiring) {
      const runner = wiring.behalf.createJobRunner({ concurrency: 2, pollIntervalMs: 100 });
      runner.define(enhancePhotosJob({ googleApiUrl: wiring.behalf.googleApiUrl }));
      runner.start();
      wired = { ...wiring, runner };
    },
    async close() {
      await app.close();
      await wired?.runner.stop();
    },
  };
}

type Wired = DemoWiring & { runner: JobRunner };

async function listen(app: FastifyInstance, port: number): Promise<number> {
  await app.listen({ port, host: '127.0.0.1' });
  const address = app.server.address();
  return typeof address === 'object' && address !== null ? address.port : port;
}

function buildApp(wiring: () => Wired | undefined, port: () => number): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 4 * 1024 }) as unknown as FastifyInstance;
  let photoCount = 0;

  app.addHook('onRequest', async (request, reply) => {
    // Loopback only, and only under its own names: a DNS-rebound name pointing here is refused.
    const host = request.headers.host ?? '';
    if (host !== `127.0.0.1:${port()}` && host !== `localhost:${port()}`)
      throw new BehalfError('INVALID_REQUEST', 'Unknown Host.');
    reply
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-store');
    return undefined;
  });
  app.setErrorHandler((error, _request, reply) => {
    // Fastify's own 4xx (a bad JSON body, a body over the limit) and anything unexpected, without details.
    const status = (error as { statusCode?: unknown }).statusCode;
    const known = isBehalfError(error)
      ? error
      : typeof status === 'number' && status < 500
        ? new BehalfError('INVALID_REQUEST', 'The request is malformed.')
        : new BehalfError('INTERNAL', 'Something went wrong in the demo backend.');
    return reply.code(known.status).type('application/json; charset=utf-8').send(known.toJSON());
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.code(404).type('text/plain; charset=utf-8').send('Not found.'),
  );

  app.get('/', async (request, reply) => {
    const w = wiring();
    if (w === undefined)
      return reply.code(503).type('text/plain; charset=utf-8').send('Starting; reload in a moment.');
    // The Host header was checked above: one of the page's own two names.
    const origin = `http://${request.headers.host}`;
    return reply
      .type('text/html; charset=utf-8')
      .header(
        'content-security-policy',
        `default-src 'none'; script-src 'self' ${w.emulatorUrl}; connect-src 'self' ${w.behalfUrl}; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      )
      .send(
        pageHtml({
          origin,
          behalfUrl: w.behalfUrl,
          emulatorUrl: w.emulatorUrl,
          clientId: w.clientId,
          scopes: w.scopes,
        }),
      );
  });
  app.get('/app.js', async (_request, reply) => reply.type('text/javascript; charset=utf-8').send(APP_JS));
  app.get('/app.css', async (_request, reply) => reply.type('text/css; charset=utf-8').send(APP_CSS));

  // The backend's API, for this page only (same origin, X-Requested-With: no other page can drive it).
  const api = (request: FastifyRequest) => {
    const w = wiring();
    if (w === undefined) throw new BehalfError('STORE_UNAVAILABLE', 'The demo is still starting.');
    const origin = request.headers.origin;
    if (
      origin !== undefined &&
      origin !== `http://127.0.0.1:${port()}` &&
      origin !== `http://localhost:${port()}`
    ) {
      throw new BehalfError('ORIGIN_NOT_ALLOWED', 'Only the demo page may call its backend.');
    }
    return w;
  };
  const checkCsrf = (request: FastifyRequest) => {
    if (typeof request.headers['x-requested-with'] !== 'string')
      throw new BehalfError('CSRF_HEADER_REQUIRED', 'Send X-Requested-With.');
  };

  // The app saves a new photo to the user's appDataFolder, then the backend enqueues the job for them.
  app.post('/api/photo-job', async (request, reply) => {
    checkCsrf(request);
    const w = api(request);
    const parsed = PhotoJobBody.safeParse(request.body);
    if (!parsed.success) throw new BehalfError('INVALID_REQUEST', 'Send {"sub": "<the signed-in user id>"}.');
    const { sub } = parsed.data;
    await w.behalf.getUser(sub);
    const photo = await uploadPhoto(
      (url, init) => w.behalf.fetch(sub, url, init),
      w.behalf.googleApiUrl,
      `photo-${new Date().toISOString().replace(/[:.]/g, '-')}.jpg`,
      await samplePhotoOrExplain(photoCount++),
    );
    const run = await w.runner.enqueue(ENHANCE_PHOTOS, sub);
    return reply.code(202).send({ run_id: run.id, photo });
  });

  app.get<{ Params: { id: string } }>('/api/photo-job/:id', async (request) => {
    checkCsrf(request);
    const w = api(request);
    const id = RunId.safeParse(request.params.id);
    const run = id.success ? await w.runner.getRun(id.data) : null;
    if (run === null || run.name !== ENHANCE_PHOTOS) throw new BehalfError('NOT_FOUND', 'No such photo job.');
    const result = run.result as EnhanceResult | null;
    return {
      status: run.status,
      attempts: run.attempts,
      error_code: run.errorCode,
      enhanced: result?.enhanced ?? [],
      pairs: result?.pairs ?? [],
    };
  });

  // Photos reach the page through the backend (behalf adds the user's token, which stays here).
  app.get<{ Params: { sub: string; fileId: string } }>(
    '/api/users/:sub/photos/:fileId',
    async (request, reply) => {
      const w = api(request);
      const sub = Sub.safeParse(request.params.sub);
      const fileId = FileId.safeParse(request.params.fileId);
      if (!sub.success || !fileId.success) throw new BehalfError('INVALID_REQUEST', 'Bad user or file id.');
      const bytes = await downloadFile(
        (url, init) => w.behalf.fetch(sub.data, url, init),
        w.behalf.googleApiUrl,
        fileId.data,
      ).catch((error: unknown) => {
        throw isBehalfError(error) ? error : new BehalfError('NOT_FOUND', 'No such photo.');
      });
      // Only this origin may embed it.
      return reply.type('image/jpeg').header('cross-origin-resource-policy', 'same-origin').send(bytes);
    },
  );

  return app;
}

async function samplePhotoOrExplain(variant: number): Promise<Buffer> {
  try {
    return await samplePhoto(variant);
  } catch (error) {
    throw new BehalfError('INTERNAL', (error as Error).message);
  }
}
