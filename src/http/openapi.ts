import { readFileSync } from 'node:fs';
import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorAnswers } from './schemas.js';

/** Where the API description is served. */
export const OPENAPI_PATH = '/openapi.json';

// package.json is two folders up from both src/http/openapi.ts and dist/http/openapi.js.
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The admin console's HTML pages are for people in a browser, not part of the API description. */
const UNDOCUMENTED_PREFIX = '/admin';

/**
 * Makes the routes' zod schemas do both jobs: requests are validated with them (a route maps a
 * failure to its own error code with `schemaErrorFormatter` or `attachValidation`; anything else
 * becomes INVALID_REQUEST in ./errors.ts), and `GET /openapi.json` (OpenAPI 3.1,
 * https://spec.openapis.org/oas/v3.1.0) is generated from them by @fastify/swagger. Call before
 * any route is added: the document is made of the routes added after.
 */
export function registerOpenApi(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  // Answers are written as the handlers built them (their types are checked against the
  // response schemas when compiling, and test/openapi checks real answers against the document):
  // a serializer that dropped unknown fields or turned a mismatch into a 500 would change the
  // contract's answers at run time.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'behalf',
        version,
        description:
          "Sign-in for apps, and the service API for the app's backend: act for Google users while they are offline. Errors are always the Error body, with a stable `error` code.",
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      components: {
        securitySchemes: {
          serviceApiKey: {
            type: 'http',
            scheme: 'bearer',
            description: 'A service API key (`behalf keys create-api-key`), for the backend only.',
          },
          metricsToken: { type: 'http', scheme: 'bearer', description: 'BEHALF_METRICS_TOKEN.' },
        },
      },
    },
    transform: (input) =>
      input.url.startsWith(UNDOCUMENTED_PREFIX)
        ? { schema: { hide: true }, url: input.url }
        : jsonSchemaTransform(input),
    transformObject: (input) => tidyDocument(jsonSchemaTransformObject(input) as OpenApiDocument),
  });

  app.after(() => {
    app.withTypeProvider<ZodTypeProvider>().get(
      OPENAPI_PATH,
      {
        schema: {
          summary: 'This document',
          tags: ['operations'],
          response: {
            200: z
              .looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) })
              .describe('The OpenAPI 3.1 description of this API.'),
            ...errorAnswers({}),
          },
        },
      },
      async (_request, reply) => {
        reply.header('cache-control', 'no-cache');
        return app.swagger() as unknown as {
          openapi: string;
          info: Record<string, unknown>;
          paths: Record<string, unknown>;
        };
      },
    );
  });
}

interface OpenApiDocument {
  paths?: Record<string, Record<string, { responses?: Record<string, Response> }>>;
  components?: { schemas?: Record<string, { description?: string }> };
}
interface Response {
  description?: string;
  content?: Record<string, { schema?: { $ref?: string } }>;
}

/** The operations an OpenAPI 3.1 path item may hold (https://spec.openapis.org/oas/v3.1.0#path-item-object). */
const OPENAPI_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const REF_PREFIX = '#/components/schemas/';

/**
 * The generated document, tidied: a method OpenAPI 3.1 cannot name (QUERY, which the proxy's
 * any-method route also accepts) is left out; an answer whose schema is a named component takes
 * the component's description; components nothing refers to (zod's input variants of answer
 * schemas) are dropped.
 */
function tidyDocument(document: OpenApiDocument): OpenApiDocument {
  const schemas = document.components?.schemas ?? {};
  for (const item of Object.values(document.paths ?? {})) {
    for (const method of Object.keys(item)) {
      if (!OPENAPI_METHODS.has(method)) delete item[method];
    }
    for (const operation of Object.values(item)) {
      for (const response of Object.values(operation.responses ?? {})) {
        const ref = response.content?.['application/json']?.schema?.$ref;
        const named = ref?.startsWith(REF_PREFIX) ? schemas[ref.slice(REF_PREFIX.length)] : undefined;
        if (response.description === 'Default Response' && named?.description !== undefined)
          response.description = named.description;
      }
    }
  }
  // Keep what the paths refer to, and what those components refer to in turn.
  const kept = new Set<string>();
  let pending = [JSON.stringify(document.paths ?? {})];
  while (pending.length > 0) {
    const found = pending.flatMap((text) =>
      [...text.matchAll(/"#\/components\/schemas\/([^"]+)"/g)].map((match) => match[1]!),
    );
    const fresh = [...new Set(found)].filter((name) => !kept.has(name) && schemas[name] !== undefined);
    for (const name of fresh) kept.add(name);
    pending = fresh.map((name) => JSON.stringify(schemas[name]));
  }
  for (const name of Object.keys(schemas)) if (!kept.has(name)) delete schemas[name];
  return document;
}
