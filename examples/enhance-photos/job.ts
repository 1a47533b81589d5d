import { Readable } from 'node:stream';
import { google } from 'googleapis';
import sharp from 'sharp';
import type { JobDefinition } from '../../src/jobs/index.js';

export const ENHANCED_SUFFIX = '-enhanced.jpg';

export interface EnhanceResult {
  enhanced: string[];
  skipped: number;
}

/**
 * The seed's example, for real: for a user who is offline, read the photos the app put in their
 * Drive appDataFolder, "enhance" each one (normalise the levels, lift saturation, sharpen: a real,
 * deterministic transformation with sharp) and write the result back beside it. Photos that
 * already have an enhanced copy are left alone, so a run can be repeated safely.
 */
export function enhancePhotosJob(options: { googleApiUrl: string }): JobDefinition<Record<string, never>> {
  return {
    name: 'enhance-photos',
    maxAttempts: 4,
    run: async (ctx): Promise<EnhanceResult> => {
      const rootUrl = `${options.googleApiUrl}/`;
      const drive = google.drive({ version: 'v3', auth: ctx.auth, rootUrl });
      const files = await listAll(drive);
      const names = new Set(files.map((f) => f.name));
      const photos = files.filter(
        (f) => f.mimeType?.startsWith('image/') === true && !f.name.endsWith(ENHANCED_SUFFIX) && !names.has(enhancedName(f.name)),
      );
      const enhanced: string[] = [];
      for (const photo of photos) {
        const original = await drive.files.get({ fileId: photo.id, alt: 'media' }, { responseType: 'arraybuffer' });
        const output = await enhance(Buffer.from(original.data as ArrayBuffer));
        // A global rootUrl does not reach googleapis' media upload URLs: give it per call too.
        await drive.files.create(
          {
            requestBody: { name: enhancedName(photo.name), parents: ['appDataFolder'], mimeType: 'image/jpeg' },
            media: { mimeType: 'image/jpeg', body: Readable.from([output]) },
            fields: 'id,name',
          },
          { rootUrl },
        );
        enhanced.push(enhancedName(photo.name));
        ctx.log.info({ file: photo.id }, 'photo enhanced');
      }
      return { enhanced, skipped: files.length - photos.length };
    },
  };
}

/** The image work itself: deterministic for the same input. */
export async function enhance(input: Buffer): Promise<Buffer> {
  return sharp(input).normalise().modulate({ saturation: 1.3 }).sharpen().jpeg({ quality: 90 }).toBuffer();
}

export function enhancedName(name: string): string {
  return `${name.replace(/\.[^.]+$/, '')}${ENHANCED_SUFFIX}`;
}

interface FileEntry {
  id: string;
  name: string;
  mimeType: string | null | undefined;
}

async function listAll(drive: ReturnType<typeof google.drive>): Promise<FileEntry[]> {
  const files: FileEntry[] = [];
  let pageToken: string | undefined;
  do {
    const page = await drive.files.list({
      spaces: 'appDataFolder',
      fields: 'nextPageToken,files(id,name,mimeType)',
      pageSize: 100,
      ...(pageToken === undefined ? {} : { pageToken }),
    });
    for (const f of page.data.files ?? []) {
      if (typeof f.id === 'string' && typeof f.name === 'string') files.push({ id: f.id, name: f.name, mimeType: f.mimeType });
    }
    pageToken = page.data.nextPageToken ?? undefined;
  } while (pageToken !== undefined);
  return files;
}
