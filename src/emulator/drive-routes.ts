import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { API_ERRORS, sendApiError } from './errors.js';
import { applyFields, parseFields, type FieldTree } from './fields.js';
import { FOLDER_MIME, type DriveFile, type DriveStore } from './drive-store.js';
import { parseDriveQuery, parseOrderBy, parseRfc3339 } from './drive-query.js';
import { parseMultipartRelated } from './multipart.js';
import { ResumableUploads, type UploadSession } from './drive-resumable.js';
import type { AccessRecord, EmulatorState } from './state.js';

const APPDATA_SCOPE = 'https://www.googleapis.com/auth/drive.appdata';
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
const FOLDER_ALIASES = new Set(['appDataFolder', 'appfolder']);
/** Uploads larger than this are refused (multipart is meant for ≤5 MB; media uploads may be larger). */
export const MAX_UPLOAD_BYTES = 256 * 1024 * 1024;
const DEFAULT_FILE_FIELDS = parseFields('kind,id,name,mimeType')!;
const DEFAULT_LIST_FIELDS = parseFields('kind,incompleteSearch,nextPageToken,files(kind,id,name,mimeType)')!;

type DriveMethod =
  | 'DriveFiles.List'
  | 'DriveFiles.Get'
  | 'DriveFiles.Create'
  | 'DriveFiles.Update'
  | 'DriveFiles.Delete'
  | 'DrivePermissions.Create';

/**
 * The `google.rpc.ErrorInfo` current Drive adds to authentication and scope refusals, beside the
 * legacy `errors[]` (https://cloud.google.com/apis/design/errors#error_info).
 */
function errorInfo(reason: string, method: DriveMethod): Record<string, unknown> {
  return {
    '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
    reason,
    domain: 'googleapis.com',
    metadata: { service: 'drive.googleapis.com', method: `google.apps.drive.v3.${method}` },
  };
}

interface DriveRequestContext {
  token: AccessRecord;
  fullDrive: boolean;
}

/**
 * Drive v3, the parts apps use on the application data folder
 * (https://developers.google.com/drive/api/guides/appdata): files.get/list/create/update/delete, media,
 * multipart and resumable uploads (https://developers.google.com/drive/api/guides/manage-uploads).
 */
export function registerDriveRoutes(app: FastifyInstance, state: EmulatorState, drive: DriveStore): void {
  const uploads = new ResumableUploads(() => state.clock.now());
  /**
   * The access token from `Authorization: Bearer`, or from the `access_token` query parameter, a
   * system parameter every Google API takes (https://cloud.google.com/apis/docs/system-parameters).
   * Refusals carry the `google.rpc.ErrorInfo` detail current Drive sends, naming the method.
   */
  const authorize = (
    request: FastifyRequest,
    reply: FastifyReply,
    method: DriveMethod,
  ): DriveRequestContext | undefined => {
    state.stats.api_calls++;
    const header = request.headers.authorization;
    const queryToken = (request.query as Record<string, unknown>).access_token;
    if (header === undefined && typeof queryToken !== 'string') {
      API_ERRORS.missingCredentials(reply, [errorInfo('CREDENTIALS_MISSING', method)]);
      return undefined;
    }
    const value = header === undefined ? (queryToken as string) : /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    const token = value === undefined ? undefined : state.validAccessToken(value);
    if (token === undefined) {
      // A token Google issued that has run out says so; anything else is only "Invalid Credentials".
      const expired =
        value !== undefined && (state.accessTokens.get(value)?.expiresAt ?? Infinity) <= state.nowSeconds();
      API_ERRORS.invalidCredentials(reply, expired ? [errorInfo('ACCESS_TOKEN_EXPIRED', method)] : undefined);
      return undefined;
    }
    const fullDrive = token.scopes.includes(DRIVE_SCOPE);
    if (!fullDrive && !token.scopes.includes(APPDATA_SCOPE)) {
      API_ERRORS.insufficientScope(reply, [errorInfo('ACCESS_TOKEN_SCOPE_INSUFFICIENT', method)]);
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
      const ctx = authorize(request, reply, 'DriveFiles.List');
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
      // With only drive.appdata, listing the default "drive" space is refused, as Google answers apps
      // that forget spaces=appDataFolder (https://developers.google.com/drive/api/guides/appdata).
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
      const folderId = drive.folderId(ctx.token.sub);
      const filter =
        query.q === undefined || typeof query.q === 'string'
          ? parseDriveQuery(query.q ?? '', (id) => FOLDER_ALIASES.has(id) || id === folderId)
          : null;
      if (filter === null) return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'q');
      const order =
        query.orderBy === undefined
          ? undefined
          : typeof query.orderBy === 'string'
            ? parseOrderBy(query.orderBy)
            : null;
      if (order === null) return API_ERRORS.badRequest(reply, 'Invalid Value', 'invalid', 'orderBy');
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
      // Array.prototype.sort is stable: ties keep the store's creation order.
      if (order !== undefined) all.sort(order);
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
      const ctx = authorize(request, reply, 'DriveFiles.Get');
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
      const ctx = authorize(request, reply, 'DriveFiles.Create');
      if (ctx === undefined) return reply;
      return createFile(ctx, request.body ?? {}, Buffer.alloc(0), undefined, request, reply);
    });

    scoped.patch('/drive/v3/files/:fileId', async (request, reply) => {
      const ctx = authorize(request, reply, 'DriveFiles.Update');
      if (ctx === undefined) return reply;
      const file = findFile(ctx, (request.params as { fileId: string }).fileId, reply);
      if (file === undefined) return reply;
      return updateFile(file, request.body ?? {}, undefined, request, reply);
    });

    scoped.delete('/drive/v3/files/:fileId', async (request, reply) => {
      const ctx = authorize(request, reply, 'DriveFiles.Delete');
      if (ctx === undefined) return reply;
      const { fileId } = request.params as { fileId: string };
      if (findFile(ctx, fileId, reply) === undefined) return reply;
      drive.delete(ctx.token.sub, fileId);
      return reply.code(204).send();
    });

    // appDataFolder files cannot be shared (https://developers.google.com/drive/api/guides/appdata).
    scoped.post('/drive/v3/files/:fileId/permissions', async (request, reply) => {
      const ctx = authorize(request, reply, 'DrivePermissions.Create');
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
      const ctx = authorize(
        request,
        reply,
        existing === undefined ? 'DriveFiles.Create' : 'DriveFiles.Update',
      );
      if (ctx === undefined) return reply;
      const file = existing === undefined ? undefined : findFile(ctx, existing, reply);
      if (existing !== undefined && file === undefined) return reply;
      const query = request.query as Record<string, unknown>;
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const contentType = request.headers['content-type'] ?? 'application/octet-stream';
      if (query.uploadType === 'resumable') return startResumable(ctx, file, body, request, reply);
      let metadata: unknown = {};
      let media = body;
      let mediaType: string | undefined = contentType;
      if (query.uploadType === 'multipart') {
        const parsed = parseMultipartRelated(contentType, body);
        if (parsed === null) return API_ERRORS.badRequest(reply, 'Malformed multipart body.', 'badContent');
        ({ metadata, media, mediaType } = parsed);
      } else if (query.uploadType !== 'media') {
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
    // Resumable uploads send their bytes to the session URI with PUT.
    scoped.put('/upload/drive/v3/files', (request, reply) => putChunk(request, reply));
    scoped.put('/upload/drive/v3/files/:fileId', (request, reply) => putChunk(request, reply));
  });

  /**
   * Starts a resumable upload session: the metadata is checked now, the session URI comes back in
   * `Location` (https://developers.google.com/drive/api/guides/manage-uploads#resumable).
   */
  function startResumable(
    ctx: DriveRequestContext,
    file: DriveFile | undefined,
    body: Buffer,
    request: FastifyRequest,
    reply: FastifyReply,
  ): FastifyReply {
    let metadata: unknown = {};
    if (body.length > 0) {
      try {
        metadata = JSON.parse(body.toString('utf8'));
      } catch {
        return API_ERRORS.badRequest(reply, 'Invalid JSON metadata.', 'parseError');
      }
    }
    const meta = readMetadata(metadata);
    if (meta === null) return API_ERRORS.badRequest(reply, 'Invalid JSON metadata.', 'parseError');
    const declared = request.headers['x-upload-content-length'];
    const declaredLength = declared === undefined ? undefined : Number(declared);
    if (
      declaredLength !== undefined &&
      (!Number.isSafeInteger(declaredLength) || declaredLength < 0 || String(declaredLength) !== declared)
    ) {
      return API_ERRORS.badRequest(reply, 'Invalid X-Upload-Content-Length header.', 'badRequest');
    }
    if (declaredLength !== undefined && declaredLength > MAX_UPLOAD_BYTES) {
      return sendApiError(reply, 413, 'Request Entity Too Large', {
        message: 'Request Entity Too Large',
        reason: 'uploadTooLarge',
      });
    }
    const mediaTypeHeader = request.headers['x-upload-content-type'];
    const mediaType = typeof mediaTypeHeader === 'string' ? mediaTypeHeader : undefined;
    const query = request.query as Record<string, unknown>;
    let target: UploadSession['target'];
    if (file === undefined) {
      const checked = checkCreate(ctx, meta, mediaType, reply);
      if (checked === undefined) return reply;
      target = { kind: 'create', space: checked.space, mimeType: checked.mimeType };
    } else {
      if (!checkUpdate(meta, query, reply)) return reply;
      target = { kind: 'update', fileId: file.id };
    }
    const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
    if (selected === undefined) return reply;
    const session = uploads.start({
      owner: ctx.token.sub,
      fullDrive: ctx.fullDrive,
      target,
      meta,
      mediaType,
      declaredLength,
      fields: selected,
    });
    const path = file === undefined ? '/upload/drive/v3/files' : `/upload/drive/v3/files/${file.id}`;
    const location = `${request.protocol}://${request.host}${path}?uploadType=resumable&upload_id=${session.id}`;
    return reply.code(200).header('location', location).header('x-guploader-uploadid', session.id).send();
  }

  /**
   * One chunk, or a status query (`Content-Range: bytes *\/N`), sent to a session URI. Unfinished:
   * `308` with `Range: bytes=0-N` (no `Range` before the first byte); finished: `200` with the file.
   */
  function putChunk(request: FastifyRequest, reply: FastifyReply): FastifyReply {
    state.stats.api_calls++;
    const query = request.query as Record<string, unknown>;
    const session = typeof query.upload_id === 'string' ? uploads.get(query.upload_id) : undefined;
    if (session === undefined) {
      // An unknown or expired session: the upload must start again (manage-uploads, "Resume an interrupted upload").
      return sendApiError(reply, 404, 'Not Found', { message: 'Not Found', reason: 'notFound' });
    }
    if (session.result !== undefined)
      return reply.code(200).send(applyFields(session.result, session.fields));
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const step = uploads.accept(session, request.headers['content-range'], body);
    if (step.kind === 'error') {
      return step.status === 413
        ? sendApiError(reply, 413, 'Request Entity Too Large', {
            message: 'Request Entity Too Large',
            reason: 'uploadTooLarge',
          })
        : API_ERRORS.badRequest(reply, step.message, 'badRequest');
    }
    if (step.kind === 'incomplete') {
      reply.code(308).header('content-length', '0').header('x-guploader-uploadid', session.id);
      if (step.received > 0) reply.header('range', `bytes=0-${step.received - 1}`);
      return reply.send();
    }
    const media = step.content;
    let file: DriveFile;
    if (session.target.kind === 'create') {
      file = drive.create({
        owner: session.owner,
        space: session.target.space,
        name: session.meta.name ?? 'Untitled',
        mimeType: session.target.mimeType,
        description: session.meta.description,
        appProperties: definedValues(session.meta.appProperties),
        properties: definedValues(session.meta.properties),
        modifiedTime: normalizedTime(session.meta.modifiedTime),
        content: media,
      });
    } else {
      const existing = drive.get(session.owner, session.target.fileId);
      if (existing === undefined) {
        uploads.delete(session.id);
        return API_ERRORS.notFound(reply, session.target.fileId);
      }
      file = drive.update(existing, patchOf(existing, session.meta, media));
    }
    session.result = drive.resource(file);
    return reply.code(200).send(applyFields(session.result, session.fields));
  }

  /** Where a new file goes and its type, or undefined once the refusal is sent. */
  function checkCreate(
    ctx: DriveRequestContext,
    meta: Metadata,
    mediaType: string | undefined,
    reply: FastifyReply,
  ): { space: DriveFile['space']; mimeType: string } | undefined {
    const folder = drive.folderId(ctx.token.sub);
    const parents = meta.parents ?? [];
    const inAppData = parents.length === 1 && (FOLDER_ALIASES.has(parents[0]!) || parents[0] === folder);
    if (!inAppData && !(parents.length === 0 && ctx.fullDrive)) {
      if (parents.length === 0) API_ERRORS.insufficientScope(reply);
      else API_ERRORS.notFound(reply, parents[0]!);
      return undefined;
    }
    const mimeType = meta.mimeType ?? mediaType ?? 'application/octet-stream';
    // Google-native types cannot live in appDataFolder (an observed 403 notSupportedForAppDataFolderFiles).
    if (inAppData && mimeType.startsWith('application/vnd.google-apps.') && mimeType !== FOLDER_MIME) {
      API_ERRORS.notSupportedForAppData(reply);
      return undefined;
    }
    return { space: inAppData ? 'appDataFolder' : 'drive', mimeType: mimeType.split(';')[0]!.trim() };
  }

  /** Whether an update may go ahead; false once the refusal is sent. */
  function checkUpdate(meta: Metadata, query: Record<string, unknown>, reply: FastifyReply): boolean {
    // Moving between spaces and trashing are not supported for appDataFolder files
    // (https://developers.google.com/drive/api/guides/appdata).
    if (meta.trashed === true || query.addParents !== undefined || query.removeParents !== undefined) {
      API_ERRORS.notSupportedForAppData(reply);
      return false;
    }
    return true;
  }

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
    const checked = checkCreate(ctx, meta, mediaType, reply);
    if (checked === undefined) return reply;
    const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
    if (selected === undefined) return reply;
    const file = drive.create({
      owner: ctx.token.sub,
      space: checked.space,
      name: meta.name ?? 'Untitled',
      mimeType: checked.mimeType,
      description: meta.description,
      appProperties: definedValues(meta.appProperties),
      properties: definedValues(meta.properties),
      modifiedTime: normalizedTime(meta.modifiedTime),
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
    if (!checkUpdate(meta, request.query as Record<string, unknown>, reply)) return reply;
    const selected = fields(request, reply, DEFAULT_FILE_FIELDS);
    if (selected === undefined) return reply;
    drive.update(file, patchOf(file, meta, content?.media));
    return reply.send(applyFields(drive.resource(file), selected));
  }
}

/**
 * An update's changes. `appProperties` / `properties` merge key by key, and a key set to null is
 * removed (https://developers.google.com/drive/api/guides/properties).
 */
function patchOf(
  file: DriveFile,
  meta: Metadata,
  media: Buffer | undefined,
): Parameters<DriveStore['update']>[1] {
  const merge = (current: Record<string, string>, change: Record<string, string | null> | undefined) => {
    if (change === undefined) return undefined;
    const next = { ...current };
    for (const [key, value] of Object.entries(change)) {
      if (value === null) delete next[key];
      else next[key] = value;
    }
    return next;
  };
  return {
    name: meta.name,
    mimeType: meta.mimeType,
    description: meta.description,
    appProperties: merge(file.appProperties, meta.appProperties),
    properties: merge(file.properties, meta.properties),
    modifiedTime: normalizedTime(meta.modifiedTime),
    content: media,
  };
}

function definedValues(
  values: Record<string, string | null> | undefined,
): Record<string, string> | undefined {
  if (values === undefined) return undefined;
  return Object.fromEntries(Object.entries(values).filter((e): e is [string, string] => e[1] !== null));
}

function normalizedTime(value: string | undefined): string | undefined {
  return value === undefined ? undefined : new Date(parseRfc3339(value)!).toISOString();
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
  appProperties?: Record<string, string | null>;
  properties?: Record<string, string | null>;
  /** Writable: an app may keep a file's own modification time (RFC 3339). */
  modifiedTime?: string;
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
    v.modifiedTime !== undefined &&
    (typeof v.modifiedTime !== 'string' || parseRfc3339(v.modifiedTime) === null)
  )
    return null;
  // Values are strings, or null to remove the key (https://developers.google.com/drive/api/guides/properties).
  const propertyMap = (x: unknown) =>
    x === undefined ||
    (typeof x === 'object' &&
      x !== null &&
      !Array.isArray(x) &&
      Object.values(x).every((item) => item === null || typeof item === 'string'));
  if (!propertyMap(v.appProperties) || !propertyMap(v.properties)) return null;
  return v as Metadata;
}

function decodePageToken(token: string): number | null {
  const n = Number(Buffer.from(token, 'base64url').toString('utf8'));
  return Number.isInteger(n) && n >= 0 ? n : null;
}
