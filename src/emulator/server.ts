import { writeFile, chmod } from 'node:fs/promises';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { OffsetClock } from '../clock.js';
import { registerConsentPage } from './consent-page.js';
import { registerControlRoutes } from './control-routes.js';
import { DriveStore } from './drive-store.js';
import { registerDriveRoutes } from './drive-routes.js';
import { sendApiError, sendOAuthError } from './errors.js';
import { Faults } from './faults.js';
import { registerGsiClient } from './gsi-client.js';
import { SigningKeys } from './keys.js';
import { registerLegacyRoutes } from './legacy-routes.js';
import { registerOAuthRoutes } from './oauth-routes.js';
import { RiscStream } from './risc-stream.js';
import { EmulatorState, randomToken, stableId } from './state.js';
import type { EmulatorClients, EmulatorOptions, RunningEmulator } from './types.js';

/** The emulated project's number: client ids are `<project number>-<32 chars>.apps.googleusercontent.com`. */
const PROJECT_NUMBER = '614071230985';

function clientId(label: string): string {
  return `${PROJECT_NUMBER}-${stableId(`behalf-emulator/${label}`).slice(0, 32)}.apps.googleusercontent.com`;
}

export function emulatorClients(
  serverClientSecret?: string,
  javascriptOrigins: readonly string[] = [],
): EmulatorClients {
  return {
    server: {
      clientId: clientId('server'),
      // Real secrets look like GOCSPX-… (28 characters after the prefix); random per start.
      clientSecret: serverClientSecret ?? `GOCSPX-${randomToken(28)}`,
      redirectUris: ['http://localhost:3000/oauth2callback', 'http://localhost:8080/oauth2callback'],
      javascriptOrigins: [
        ...new Set(['http://localhost:3000', 'http://localhost:8080', ...javascriptOrigins.map(toOrigin)]),
      ],
    },
    apps: { ios: clientId('ios'), android: clientId('android'), web: clientId('web') },
  };
}

/** `http://Localhost:5173/` → `http://localhost:5173`; anything that is not an origin is refused. */
function toOrigin(value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    !/^https?:$/.test(url.protocol) ||
    url.pathname !== '/' ||
    url.search !== '' ||
    url.hash !== '' ||
    url.username !== ''
  ) {
    throw new TypeError(`not a JavaScript origin (such as http://localhost:5173): ${value}`);
  }
  return url.origin;
}

/** Start the emulator: Google's OAuth/OIDC endpoints, Drive's appDataFolder and a control API, on one port. */
export async function startEmulator(options: EmulatorOptions = {}): Promise<RunningEmulator> {
  const clock = options.clock ?? new OffsetClock();
  const clients = emulatorClients(options.serverClientSecret, options.javascriptOrigins);
  const issuer = options.issuer ?? 'https://accounts.google.com';
  const state = new EmulatorState(clock);
  const keys = new SigningKeys(clock);
  const faults = new Faults(state);
  const drive = new DriveStore(() => clock.now());
  let url = '';

  const app: FastifyInstance = Fastify({
    logger: options.logger ?? false,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 500 },
  });
  void app.register(formbody, { bodyLimit: 1024 * 1024 });
  // Any other body type is taken as bytes and ignored where it is not expected, as Google does.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    if (await faults.apply(request, reply)) {
      if (!reply.sent) reply.hijack();
      return reply;
    }
    return undefined;
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500
        ? error.statusCode
        : 400;
    const path = request.url.split('?')[0] ?? '';
    if (/^\/(token|revoke|tokeninfo|oauth2\/v\d\/token|o\/oauth2\/(token|revoke))$/.test(path)) {
      return sendOAuthError(
        reply,
        status === 413 ? 413 : 400,
        'invalid_request',
        status === 413 ? 'Request too large' : 'Invalid request',
      );
    }
    const message =
      status === 413 ? 'Request Entity Too Large' : status === 415 ? 'Unsupported Media Type' : 'Bad Request';
    return sendApiError(reply, status, message, {
      message,
      reason: status === 413 ? 'uploadTooLarge' : 'badRequest',
    });
  });
  app.setNotFoundHandler((_request, reply) =>
    sendApiError(reply, 404, 'Not Found', { message: 'Not Found', reason: 'notFound' }),
  );

  // Requests held by a fault's latency are dropped at close, which would otherwise wait for them.
  app.addHook('preClose', async () => {
    faults.dropHeld();
  });
  const oauth = {
    state,
    keys,
    clients,
    issuer,
    baseUrl: () => url,
    idTokenClaims: (request: FastifyRequest) => faults.idTokenClaims(request),
  };
  registerOAuthRoutes(app, oauth);
  registerLegacyRoutes(app, oauth);
  registerConsentPage(app, state, clients);
  registerGsiClient(app, () => url);
  registerDriveRoutes(app, state, drive);
  registerControlRoutes(app, { state, keys, faults, drive, clients, issuer });
  new RiscStream({ state, keys, issuer, audience: clients.server.clientId, baseUrl: () => url }).register(
    app,
  );

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  const host = options.host ?? '127.0.0.1';
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const clientSecretJson = () => ({
    web: {
      client_id: clients.server.clientId,
      project_id: `behalf-emulator-${PROJECT_NUMBER}`,
      auth_uri: `${url}/o/oauth2/v2/auth`,
      token_uri: `${url}/token`,
      auth_provider_x509_cert_url: `${url}/oauth2/v1/certs`,
      client_secret: clients.server.clientSecret,
      redirect_uris: clients.server.redirectUris,
      javascript_origins: clients.server.javascriptOrigins,
    },
  });

  return {
    url,
    clients,
    clock,
    clientSecretJson,
    async writeClientSecret(file: string) {
      await writeFile(file, `${JSON.stringify(clientSecretJson(), null, 2)}\n`, { mode: 0o600 });
      await chmod(file, 0o600);
    },
    close: () => app.close(),
  };
}
