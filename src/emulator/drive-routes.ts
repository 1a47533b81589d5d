import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { API_ERRORS, sendApiError } from './errors.js';
import { applyFields, parseFields, type FieldTree } from './fields.js';
import { FOLDER_MIME, type DriveFile, type DriveStore } from './drive-store.js';
import { parseMultipartRelated } from './multipart.js';
import type { AccessRecord, EmulatorState } from './state.js';

const APPDATA_SCOPE = 'https://www.googleapis.com/auth/drive.appdata';
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const FOLDER_ALIASES = new Set(['appDataFolder', 'appfolder']);
/** Uploads larger than this are refused (multipart is meant for ≤5 MB; media uploads may be larger). */
export const MAX_UPLOAD_BYTES = 256 * 1024 * 1024;
const DEFAULT_FILE_FIELDS = parseFields('kind,id,name,mimeType')!;
const DEFAULT_LIST_FIELDS = parseFields('kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)')!;

interface DriveRequestContext {
  token: AccessRecord;
  fullDrive: boolean;
}

/** Drive v3, the appDataFolder subset (spec §11). */
export function registerDriveRoutes(app: FastifyInstance, state: EmulatorState, drive: DriveStore): void {
  const authorize = (request: FastifyRequest, reply: FastifyReply): DriveRequestContext | undefined => {
    state.stats.api_calls++;
    const header = request.headers.authorization;
    if (header === undefined) {
      API_ERRORS.missingCredentials(reply);
      return undefined;
    }
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const token = match?.[1] === undefined ? undefined : state.validAccessToken(match[1]);
    if (token === undefined) {
      API_ERRORS.invalidCredentials(reply);
      return undefined;
    }
    const fullDrive = token.scopes.includes(DRIVE_SCOPE);
    if (!fullDrive && !token.scopes.includes(APPDATA_SCOPE)) {
      API_ERRORS.insufficientScope(reply);
      return undefined;
    }
    return { token, fullDrive };
  };
  const fields = (
    request: FastifyRequest,
    reply: FastifyReply,
    fallback: FieldTree,
  ): FieldTree | undefined => {
    const selector = (request.query as Record<string, unknown>).fields;
    if (selector === undefined) return fallback;
    const tree = typeof selector === 'string' ? parseFields(selector) : null;
    if (tree === null) {
      API_ERRORS.badRequest(reply, 'Invalid field selection', 'invalidParameter', 'fields');
      return undefined;
    }
    return tree;
  };
  const findFile = (ctx: DriveRequestContext, fileId: string, reply: FastifyReply): DriveFile | undefined => {
    const file = drive.get(ctx.token.sub, fileId);
    if (file === undefined || (file.space === 'drive' && !ctx.fullDrive)) {
      API_ERRORS.notFound(reply, fileId);
      return undefined;
    }
    return file;
  };

  // Metadata routes take JSON.
  void app.register(async (scoped) => {
    scoped.get('/drive/v3/files', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const query = request.query as Record<string, unknown>;
      const spaces = new Set(
        String(query.spaces ?? 'drive')
          .split(',')
          .map((s) => s.trim()),
      );
      if ([...spaces].some((s) => s !== 'drive' && s !== 'appDataFolder')) {
        return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'spaces');
      }
      // With only drive.appdata, listing the default "drive" space is refused (spec §11.3).
      if (spaces.has('drive') && !ctx.fullDrive) {
        return sendApiError(
          reply,
          403,
          'The granted scopes do not give access to all of the requested spaces.',
          {
            message: 'The granted scopes do not give access to all of the requested spaces.',
            reason: 'insufficientScopes',
            location: 'spaces',
            locationType: 'parameter',
          },
        );
      }
      const filter = parseQuery(typeof query.q === 'string' ? query.q : '', drive.folderId(ctx.token.sub));
      if (filter === null) return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'q');
      const pageSize = query.pageSize === undefined ? 100 : Number(query.pageSize);
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
        return API_ERRORS.badRequest(
          reply,
          `Invalid value '${String(query.pageSize)}'. Values must be within the range: [1, 1000]`,
          'invalid',
          'pageSize',
        );
      }
      const offset = query.pageToken === undefined ? 0 : decodePageToken(String(query.pageToken));
      if (offset === null) return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'pageToken');
      const selected = fields(request, reply, DEFAULT_LIST_FIELDS);
      if (selected === undefined) return reply;
      const all = drive.list(ctx.token.sub, spaces).filter((f) => filter(f));
      const page = all.slice(offset, offset + pageSize);
      const next =
        offset + pageSize < all.length
          ? Buffer.from(String(offset + pageSize)).toString('base64url')
          : undefined;
      return applyFields(
        {
          kind: 'drive#fileList',
          incompleteSearch: false,
          nextPageToken: next,
          files: page.map((f) => drive.resource(f)),
        },
        selected,
      );
    });

    scoped.get('/drive/v3/files/:fileId', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const { fileId } = request.params as { fileId: string };
      const query = request.query as Record<string, unknown>;
      if (FOLDER_ALIASES.has(fileId) || fileId === drive.folderId(ctx.token.sub)) {
        const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
        return selected === undefined ? reply : applyFields(drive.folderMetadata(ctx.token.sub), selected);
      }
      const file = findFile(ctx, fileId, reply);
      if (file === undefined) return reply;
      if (query.alt === 'media') return sendMedia(reply, file);
      if (query.alt !== undefined && query.alt !== 'json')
        return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'alt');
      const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
      return selected === undefined ? reply : applyFields(drive.resource(file), selected);
    });

    scoped.post('/drive/v3/files', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      return createFile(ctx, request.body ?? {}, Buffer.alloc(0), undefined, request, reply);
    });

    scoped.patch('/drive/v3/files/:fileId', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const file = findFile(ctx, (request.params as { fileId: string }).fileId, reply);
      if (file === undefined) return reply;
      return updateFile(file, request.body ?? {}, undefined, request, reply);
    });

    scoped.delete('/drive/v3/files/:fileId', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const { fileId } = request.params as { fileId: string };
      if (findFile(ctx, fileId, reply) === undefined) return reply;
      drive.delete(ctx.token.sub, fileId);
      return reply.code(204).send();
    });

    // appDataFolder files cannot be shared or copied out (spec §11.1).
    scoped.post('/drive/v3/files/:fileId/permissions', async (request, reply) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const file = findFile(ctx, (request.params as { fileId: string }).fileId, reply);
      return file === undefined ? reply : API_ERRORS.notSupportedForAppData(reply);
    });
  });

  // Upload routes take any body as bytes.
  void app.register(async (scoped) => {
    scoped.removeAllContentTypeParsers();
    scoped.addContentTypeParser(
      '*',
      { parseAs: 'buffer', bodyLimit: MAX_UPLOAD_BYTES },
      (_request, body, done) => done(null, body),
    );

    const upload = async (request: FastifyRequest, reply: FastifyReply, existing: string | undefined) => {
      const ctx = authorize(request, reply);
      if (ctx === undefined) return reply;
      const file = existing === undefined ? undefined : findFile(ctx, existing, reply);
      if (existing !== undefined && file === undefined) return reply;
      const query = request.query as Record<string, unknown>;
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const contentType = request.headers['content-type'] ?? 'application/octet-stream';
      let metadata: unknown = {};
      let media = body;
      let mediaType: string | undefined = contentType;
      if (query.uploadType === 'multipart') {
        const parsed = parseMultipartRelated(contentType, body);
        if (parsed === null) return API_ERRORS.badRequest(reply, 'Malformed multipart body.', 'badContent');
        ({ metadata, media, mediaType } = parsed);
      } else if (query.uploadType !== 'media') {
        // Resumable uploads are outside the emulated subset.
        return API_ERRORS.badRequest(
          reply,
          `Invalid upload type: ${String(query.uploadType ?? '')}`,
          'invalid',
          'uploadType',
        );
      }
      return file === undefined
        ? createFile(ctx, metadata, media, mediaType, request, reply)
        : updateFile(file, metadata, { media, mediaType }, request, reply);
    };
    scoped.post('/upload/drive/v3/files', (request, reply) => upload(request, reply, undefined));
    scoped.patch('/upload/drive/v3/files/:fileId', (request, reply) =>
      upload(request, reply, (request.params as { fileId: string }).fileId),
    );
  });

  function createFile(
    ctx: DriveRequestContext,
    metadata: unknown,
    media: Buffer,
    mediaType: string | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): FastifyReply | unknown {
    const meta = readMetadata(metadata);
    if (meta === null) return API_ERRORS.badRequest(reply, 'Invalid JSON metadata.', 'parseError');
    const folder = drive.folderId(ctx.token.sub);
    const parents = meta.parents ?? [];
    const inAppData = parents.length === 1 && (FOLDER_ALIASES.has(parents[0]!) || parents[0] === folder);
    if (!inAppData && !(parents.length === 0 && ctx.fullDrive)) {
      return parents.length === 0
        ? API_ERRORS.insufficientScope(reply)
        : API_ERRORS.notFound(reply, parents[0]!);
    }
    const mimeType = meta.mimeType ?? mediaType ?? 'application/octet-stream';
    // Google-native types and folders cannot live in appDataFolder (spec §11.4).
    if (inAppData && mimeType.startsWith('application/vnd.google-apps.') && mimeType !== FOLDER_MIME) {
      return API_ERRORS.notSupportedForAppData(reply);
    }
    const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
    if (selected === undefined) return reply;
    const file = drive.create({
      owner: ctx.token.sub,
      space: inAppData ? 'appDataFolder' : 'drive',
      name: meta.name ?? 'Untitled',
      mimeType: mimeType.split(';')[0]!.trim(),
      description: meta.description,
      appProperties: meta.appProperties,
      content: media,
    });
    return reply.send(applyFields(drive.resource(file), selected));
  }

  function updateFile(
    file: DriveFile,
    metadata: unknown,
    content: { media: Buffer; mediaType: string | undefined } | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): FastifyReply | unknown {
    const meta = readMetadata(metadata);
    if (meta === null) return API_ERRORS.badRequest(reply, 'Invalid JSON metadata.', 'parseError');
    const query = request.query as Record<string, unknown>;
    // Moving between spaces and trashing are not supported for appDataFolder files (spec §11.1).
    if (meta.trashed === true || query.addParents !== undefined || query.removeParents !== undefined) {
      return API_ERRORS.notSupportedForAppData(reply);
    }
    const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
    if (selected === undefined) return reply;
    drive.update(file, {
      name: meta.name,
      mimeType: meta.mimeType,
      description: meta.description,
      appProperties:
        meta.appProperties === undefined ? undefined : { ...file.appProperties, ...meta.appProperties },
      content: content?.media,
    });
    return reply.send(applyFields(drive.resource(file), selected));
  }
}

/** File content, streamed in slices of the stored buffer (no copy), with its length. */
function sendMedia(reply: FastifyReply, file: DriveFile): FastifyReply {
  const chunk = 64 * 1024;
  const content = file.content;
  function* slices() {
    for (let offset = 0; offset < content.length; offset += chunk)
      yield content.subarray(offset, offset + chunk);
  }
  return reply
    .header('content-type', file.mimeType)
    .header('content-length', String(content.length))
    .header('cache-control', 'private, max-age=0')
    .send(Readable.from(slices()));
}

interface Metadata {
  name?: string;
  mimeType?: string;
  description?: string;
  parents?: string[];
  appProperties?: Record<string, string>;
  trashed?: boolean;
}

function readMetadata(value: unknown): Metadata | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  const optionalString = (x: unknown) => x === undefined || (typeof x === 'string' && x.length <= 32_768);
  if (!optionalString(v.name) || !optionalString(v.mimeType) || !optionalString(v.description)) return null;
  if (
    v.parents !== undefined &&
    (!Array.isArray(v.parents) || !v.parents.every((p) => typeof p === 'string'))
  )
    return null;
  if (v.trashed !== undefined && typeof v.trashed !== 'boolean') return null;
  if (
    v.appProperties !== undefined &&
    (typeof v.appProperties !== 'object' ||
      v.appProperties === null ||
      !Object.values(v.appProperties).every((x) => typeof x === 'string'))
  ) {
    return null;
  }
  return v as Metadata;
}

function decodePageToken(token: string): number | null {
  const n = Number(Buffer.from(token, 'base64url').toString('utf8'));
  return Number.isInteger(n) && n >= 0 ? n : null;
}

/**
 * The subset of Drive's query language apps use on appDataFolder: clauses joined by `and`:
 * `'appDataFolder' in parents`, `name = '…'`, `name contains '…'` (prefix match, spec §11.3),
 * `mimeType = '…'`, `mimeType contains '…'`, `trashed = false`. Anything else is refused.
 */
function parseQuery(q: string, folderId: string): ((file: DriveFile) => boolean) | null {
  if (q.trim() === '') return () => true;
  const clauses = q.split(/\s+and\s+/i);
  const tests: Array<(file: DriveFile) => boolean> = [];
  for (const clause of clauses) {
    const text = clause.trim();
    let m: RegExpExecArray | null;
    if ((m = /^'([^']+)'\s+in\s+parents$/i.exec(text)) !== null) {
      const parent = m[1]!;
      if (!FOLDER_ALIASES.has(parent) && parent !== folderId) return null;
      tests.push((f) => f.space === 'appDataFolder');
    } else if ((m = /^(name|mimeType)\s*(=|!=|contains)\s*'((?:[^'\\]|\\.)*)'$/.exec(text)) !== null) {
      const field = m[1] as 'name' | 'mimeType';
      const op = m[2]!;
      const value = m[3]!.replace(/\\(.)/g, '$1');
      tests.push((f) =>
        op === '=' ? f[field] === value : op === '!=' ? f[field] !== value : f[field].startsWith(value),
      );
    } else if (/^trashed\s*=\s*false$/i.test(text)) {
      continue;
    } else {
      return null;
    }
  }
  return (file) => tests.every((t) => t(file));
}
