import { randomBytes } from 'node:crypto';
import type { DriveFile } from './drive-store.js';
import type { FieldTree } from './fields.js';

/** Chunks other than the last must be multiples of 256 KiB (manage-uploads, "Upload in chunks"). */
export const CHUNK_GRANULARITY = 256 * 1024;
/** Session URIs expire after one week (manage-uploads, "Resume an interrupted upload"). */
const SESSION_LIFETIME_MS = 7 * 86_400_000;
/** Bounds the memory held by abandoned sessions. */
const MAX_SESSIONS = 1000;

export interface UploadSession {
  id: string;
  owner: string;
  fullDrive: boolean;
  target:
    { kind: 'create'; space: DriveFile['space']; mimeType: string } | { kind: 'update'; fileId: string };
  meta: {
    name?: string;
    description?: string;
    mimeType?: string;
    appProperties?: Record<string, string | null>;
    properties?: Record<string, string | null>;
    modifiedTime?: string;
  };
  mediaType: string | undefined;
  /** `X-Upload-Content-Length` from the initiation request, or the total a `Content-Range` named. */
  total: number | undefined;
  fields: FieldTree;
  chunks: Buffer[];
  received: number;
  expiresAt: number;
  /** The file resource, once the last byte arrived: later requests to the session answer it again. */
  result?: Record<string, unknown>;
}

export type ChunkStep =
  | { kind: 'incomplete'; received: number }
  | { kind: 'complete'; content: Buffer }
  | { kind: 'error'; status: 400 | 413; message: string };

/**
 * Google's resumable upload protocol, the server side
 * (https://developers.google.com/drive/api/guides/manage-uploads#resumable): a session collects
 * bytes sent with `PUT` and `Content-Range: bytes first-last/total` (`total` may be `*` until the
 * last chunk), answers status queries (`Content-Range: bytes *\/total`), and completes when the
 * received bytes reach the total.
 */
export class ResumableUploads {
  readonly #sessions = new Map<string, UploadSession>();

  constructor(
    private readonly now: () => number,
    private readonly maxBytes = 256 * 1024 * 1024,
  ) {}

  start(
    input: Pick<UploadSession, 'owner' | 'fullDrive' | 'target' | 'meta' | 'mediaType' | 'fields'> & {
      declaredLength: number | undefined;
    },
  ): UploadSession {
    this.#sweep();
    const id = `AJRbA${randomBytes(48).toString('base64url')}`;
    const session: UploadSession = {
      id,
      owner: input.owner,
      fullDrive: input.fullDrive,
      target: input.target,
      meta: input.meta,
      mediaType: input.mediaType,
      fields: input.fields,
      total: input.declaredLength,
      chunks: [],
      received: 0,
      expiresAt: this.now() + SESSION_LIFETIME_MS,
    };
    this.#sessions.set(id, session);
    return session;
  }

  get(id: string): UploadSession | undefined {
    const session = this.#sessions.get(id);
    if (session === undefined) return undefined;
    if (session.expiresAt <= this.now()) {
      this.#sessions.delete(id);
      return undefined;
    }
    return session;
  }

  delete(id: string): void {
    this.#sessions.delete(id);
  }

  /** Takes one PUT's `Content-Range` header and body. */
  accept(session: UploadSession, contentRange: string | undefined, body: Buffer): ChunkStep {
    const range = parseContentRange(contentRange, body.length);
    if (range === null)
      return { kind: 'error', status: 400, message: 'Failed to parse Content-Range header.' };
    if (range.total !== undefined) {
      if (session.total !== undefined && session.total !== range.total) {
        return { kind: 'error', status: 400, message: 'The total size does not match an earlier request.' };
      }
      if (range.total > this.maxBytes)
        return { kind: 'error', status: 413, message: 'Request Entity Too Large' };
      if (range.total < session.received) {
        return { kind: 'error', status: 400, message: 'The total size is smaller than the bytes received.' };
      }
      session.total = range.total;
    }
    if (range.first !== undefined) {
      const last = range.first + body.length - 1;
      if (range.first > session.received) {
        return {
          kind: 'error',
          status: 400,
          message: `Content-Range starts at ${range.first} but ${session.received} bytes were received.`,
        };
      }
      if (session.total !== undefined && last >= session.total) {
        return { kind: 'error', status: 400, message: 'Content-Range goes past the total size.' };
      }
      // Bytes sent again (a client resending after a lost answer) are skipped.
      const fresh = body.subarray(session.received - range.first);
      const end = session.received + fresh.length;
      if (end > this.maxBytes) return { kind: 'error', status: 413, message: 'Request Entity Too Large' };
      const final = session.total !== undefined && end === session.total;
      if (!final) {
        // Only whole 256 KiB units of an unfinished upload are kept; a smaller chunk is refused as
        // Google's upload servers refuse it.
        const kept = Math.floor(end / CHUNK_GRANULARITY) * CHUNK_GRANULARITY;
        if (kept <= session.received && fresh.length > 0) {
          return {
            kind: 'error',
            status: 400,
            message: `Invalid request. The number of bytes uploaded is required to be equal or greater than ${CHUNK_GRANULARITY}, except for the final request (it's recommended to be the exact multiple of ${CHUNK_GRANULARITY}). The received request contained ${body.length} bytes, which does not meet this requirement.`,
          };
        }
        if (kept > session.received) {
          session.chunks.push(fresh.subarray(0, kept - session.received));
          session.received = kept;
        }
      } else {
        session.chunks.push(fresh);
        session.received = end;
      }
    }
    if (session.total !== undefined && session.received === session.total) {
      const content = Buffer.concat(session.chunks);
      session.chunks = [];
      return { kind: 'complete', content };
    }
    return { kind: 'incomplete', received: session.received };
  }

  #sweep(): void {
    const now = this.now();
    for (const [id, session] of this.#sessions) if (session.expiresAt <= now) this.#sessions.delete(id);
    while (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next().value;
      if (oldest === undefined) break;
      this.#sessions.delete(oldest);
    }
  }
}

/**
 * `bytes first-last/total`, `bytes first-last/*`, `bytes *\/total` or `bytes *\/*` (RFC 9110 §14.4);
 * no header means the body is the whole file. Null when malformed or when the range's length is not
 * the body's.
 */
function parseContentRange(
  header: string | undefined,
  length: number,
): { first: number | undefined; total: number | undefined } | null {
  if (header === undefined) return { first: 0, total: length };
  const m = /^bytes (?:(\d{1,15})-(\d{1,15})|\*)\/(\d{1,15}|\*)$/.exec(header.trim());
  if (m === null) return null;
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (m[1] === undefined) return length === 0 ? { first: undefined, total } : null;
  const first = Number(m[1]);
  const last = Number(m[2]);
  if (last < first || last - first + 1 !== length) return null;
  return { first, total };
}
