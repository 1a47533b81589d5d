import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { BehalfError } from '../errors.js';

export interface ClientSecret {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
  javascriptOrigins: string[];
  /** The file's `token_uri`: which Google issued the client (Google's, or a local emulator's). */
  tokenUri: string | undefined;
}

// The "web" shape of the client_secret_*.json file the Google Cloud console hands out.
const WebClientFile = z.object({
  web: z.object({
    client_id: z.string().min(1),
    client_secret: z.string().min(1),
    redirect_uris: z.array(z.string()).optional(),
    javascript_origins: z.array(z.string()).optional(),
    token_uri: z.string().optional(),
  }),
});

/** Read Google's downloaded client secret file; every failure names the setting and the problem. */
export async function readClientSecretFile(
  path: string,
  setting = 'BEHALF_CLIENT_SECRET_FILE',
): Promise<ClientSecret> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new BehalfError(
      'CONFIG_INVALID',
      code === 'ENOENT'
        ? `${setting}: no file at ${path}.`
        : `${setting}: cannot read ${path} (${code ?? 'error'}).`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new BehalfError('CONFIG_INVALID', `${setting}: ${path} is not valid JSON.`);
  }
  if (typeof json === 'object' && json !== null && 'installed' in json) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${setting}: ${path} is a Desktop ("installed") client. Server auth codes are redeemed by a "Web application" client; download that one.`,
    );
  }
  const parsed = WebClientFile.safeParse(json);
  if (!parsed.success) {
    throw new BehalfError(
      'CONFIG_INVALID',
      `${setting}: ${path} is not a Google client secret file of the "web" shape (expected {"web": {"client_id", "client_secret", ...}}).`,
    );
  }
  const web = parsed.data.web;
  return {
    clientId: web.client_id,
    clientSecret: web.client_secret,
    redirectUris: web.redirect_uris ?? [],
    javascriptOrigins: web.javascript_origins ?? [],
    tokenUri: web.token_uri,
  };
}
