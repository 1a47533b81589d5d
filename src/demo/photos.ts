import { randomUUID } from 'node:crypto';
import type sharpModule from 'sharp';
import type { JobDefinition } from '../jobs/index.js';

/**
 * The seed's photo job: for a user who is offline, read the photos the app put in their Drive
 * appDataFolder, "enhance" each one (normalise the levels, lift saturation, sharpen: a real,
 * deterministic transformation with sharp) and write the result back beside it. Photos that
 * already have an enhanced copy are left alone, so a run can be repeated safely.
 *
 * It calls Drive with the run's `fetch` (the user's token, behalf's refresh and retry rules) rather
 * than `googleapis`: local mode's demo page runs it, and googleapis is only a dev dependency.
 */

export const ENHANCE_PHOTOS = 'enhance-photos';
export const ENHANCED_SUFFIX = '-enhanced.jpg';

/** What a run answers: the enhanced copies' names, and which file became which (Drive file ids). */
export interface EnhanceResult {
  enhanced: string[];
  pairs: Array<{ original: string; enhanced: string }>;
  skipped: number;
}

type UserFetch = (url: string, init?: RequestInit) => Promise<Response>;

interface DriveFile {
  id: string;
  name: string;
  mimeType: string | undefined;
}

export function enhancePhotosJob(options: { googleApiUrl: string }): JobDefinition<Record<string, never>> {
  return {
    name: ENHANCE_PHOTOS,
    maxAttempts: 4,
    run: async (ctx): Promise<EnhanceResult> => {
      const api = options.googleApiUrl;
      const files = await listAppData(ctx.fetch, api);
      const names = new Set(files.map((f) => f.name));
      const photos = files.filter(
        (f) =>
          f.mimeType?.startsWith('image/') === true &&
          !f.name.endsWith(ENHANCED_SUFFIX) &&
          !names.has(enhancedName(f.name)),
      );
      const result: EnhanceResult = { enhanced: [], pairs: [], skipped: files.length - photos.length };
      for (const photo of photos) {
        const output = await enhance(await downloadFile(ctx.fetch, api, photo.id));
        const created = await uploadPhoto(ctx.fetch, api, enhancedName(photo.name), output);
        result.enhanced.push(created.name);
        result.pairs.push({ original: photo.id, enhanced: created.id });
        ctx.log.info({ file: photo.id }, 'photo enhanced');
      }
      return result;
    },
  };
}

/** The image work itself: deterministic for the same input. */
export async function enhance(input: Buffer): Promise<Buffer> {
  return (await loadSharp())(input)
    .normalise()
    .modulate({ saturation: 1.3 })
    .sharpen()
    .jpeg({ quality: 90 })
    .toBuffer();
}

export function enhancedName(name: string): string {
  return `${name.replace(/\.[^.]+$/, '')}${ENHANCED_SUFFIX}`;
}

/**
 * A photo as a phone might have taken it on a grey day: a landscape, flat and washed out, so the
 * enhanced copy looks visibly better. `variant` moves the sun, so successive photos differ.
 */
export async function samplePhoto(variant = 0): Promise<Buffer> {
  const sunX = 150 + ((variant * 97) % 340);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="420" viewBox="0 0 640 420">
  <defs><linearGradient id="sky" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#5b9be0"/><stop offset="0.7" stop-color="#ffc98a"/></linearGradient>
  <linearGradient id="lake" x1="0" y1="0" x2="0" y2="1"><stop offset="0" stop-color="#4a8cc9"/><stop offset="1" stop-color="#245a8c"/></linearGradient></defs>
  <rect width="640" height="420" fill="url(#sky)"/>
  <circle cx="${sunX}" cy="150" r="42" fill="#ffd25e"/>
  <polygon points="0,290 120,150 220,250 330,120 450,240 540,170 640,260 640,420 0,420" fill="#6c7fa0"/>
  <polygon points="0,320 90,250 200,310 320,230 430,300 560,240 640,300 640,420 0,420" fill="#3f7a4a"/>
  <rect y="330" width="640" height="90" fill="url(#lake)"/>
  <g fill="#2a5233">${[40, 95, 520, 585].map((x) => `<polygon points="${x},335 ${x + 18},270 ${x + 36},335"/>`).join('')}</g>
</svg>`;
  const sharp = await loadSharp();
  // Flatten the contrast and the colours: what the job's normalise and saturation undo.
  return sharp(Buffer.from(svg))
    .linear(0.6, 60)
    .modulate({ saturation: 0.7 })
    .jpeg({ quality: 88 })
    .toBuffer();
}

/** Upload a JPEG into the user's appDataFolder (Drive's multipart upload). */
export async function uploadPhoto(
  fetch: UserFetch,
  api: string,
  name: string,
  bytes: Buffer,
): Promise<{ id: string; name: string }> {
  const boundary = `behalf-${randomUUID()}`;
  const metadata = JSON.stringify({ name, parents: ['appDataFolder'], mimeType: 'image/jpeg' });
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n${metadata}\r\n--${boundary}\r\nContent-Type: image/jpeg\r\n\r\n`,
    ),
    bytes,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const response = await fetch(`${api}/upload/drive/v3/files?uploadType=multipart&fields=id,name`, {
    method: 'POST',
    headers: { 'content-type': `multipart/related; boundary=${boundary}` },
    body,
  });
  const created = (await driveJson(response, 'upload a photo')) as { id?: unknown; name?: unknown };
  if (typeof created.id !== 'string' || typeof created.name !== 'string')
    throw new Error('Drive answered an upload without id and name.');
  return { id: created.id, name: created.name };
}

/** A file's bytes (`alt=media`). */
export async function downloadFile(fetch: UserFetch, api: string, fileId: string): Promise<Buffer> {
  const response = await fetch(`${api}/drive/v3/files/${encodeURIComponent(fileId)}?alt=media`);
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`Drive answered HTTP ${response.status} to a download.`);
  }
  return Buffer.from(await response.arrayBuffer());
}

/** Every file of the user's appDataFolder, page by page. */
export async function listAppData(fetch: UserFetch, api: string): Promise<DriveFile[]> {
  const files: DriveFile[] = [];
  let pageToken: string | undefined;
  do {
    const query = new URLSearchParams({
      spaces: 'appDataFolder',
      fields: 'nextPageToken,files(id,name,mimeType)',
      pageSize: '100',
    });
    if (pageToken !== undefined) query.set('pageToken', pageToken);
    const page = (await driveJson(
      await fetch(`${api}/drive/v3/files?${query.toString()}`),
      'list the app folder',
    )) as {
      files?: Array<{ id?: unknown; name?: unknown; mimeType?: unknown }>;
      nextPageToken?: unknown;
    };
    for (const f of page.files ?? []) {
      if (typeof f.id === 'string' && typeof f.name === 'string') {
        files.push({
          id: f.id,
          name: f.name,
          mimeType: typeof f.mimeType === 'string' ? f.mimeType : undefined,
        });
      }
    }
    pageToken = typeof page.nextPageToken === 'string' ? page.nextPageToken : undefined;
  } while (pageToken !== undefined);
  return files;
}

async function driveJson(response: Response, what: string): Promise<unknown> {
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`Drive answered HTTP ${response.status} when asked to ${what}.`);
  }
  return response.json();
}

/**
 * sharp is loaded when a photo is first touched: it is a dev dependency (native binaries), so an
 * install without it runs everything but the photo step, which then says what is missing.
 */
async function loadSharp(): Promise<typeof sharpModule> {
  try {
    // A CommonJS module: Node hands its function over as the default export.
    return ((await import('sharp')) as unknown as { default: typeof sharpModule }).default;
  } catch {
    throw new Error('The photo job needs the sharp package: run `npm install sharp`.');
  }
}
