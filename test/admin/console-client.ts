/**
 * A browser-free client of the admin console for tests: posts forms as a browser would (form
 * encoding, the page's CSRF token, this origin), keeps the session cookie, follows nothing.
 */
import { expect } from 'vitest';

export interface Page {
  status: number;
  location: string | null;
  setCookie: string | null;
  headers: Headers;
  html: string;
}

export interface ConsoleClient {
  /** The session cookie (`name=value`), once signed in. */
  cookie: string | undefined;
  get(path: string): Promise<Page>;
  /** A form post (a field may repeat); the CSRF token is taken from `fromPage` (a GET first) unless given in `fields`. */
  post(
    path: string,
    fields?: Record<string, string> | Array<[string, string]>,
    options?: { fromPage?: string; headers?: Record<string, string> },
  ): Promise<Page>;
  signIn(key: string): Promise<Page>;
}

export function csrfOf(html: string): string {
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (match === null) throw new Error('no CSRF field on the page');
  return match[1]!;
}

export function consoleClient(baseUrl: string, log?: Page[]): ConsoleClient {
  const client: ConsoleClient = {
    cookie: undefined,
    async get(path) {
      const response = await fetch(`${baseUrl}${path}`, {
        redirect: 'manual',
        headers: client.cookie === undefined ? {} : { cookie: client.cookie },
      });
      return read(response);
    },
    async post(path, fields = {}, options = {}) {
      const body = new URLSearchParams(fields);
      if (!body.has('csrf') && options.fromPage !== undefined)
        body.set('csrf', csrfOf((await client.get(options.fromPage)).html));
      const response = await fetch(`${baseUrl}${path}`, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          origin: baseUrl,
          'sec-fetch-site': 'same-origin',
          ...(client.cookie === undefined ? {} : { cookie: client.cookie }),
          ...options.headers,
        },
        body: body.toString(),
      });
      return read(response);
    },
    async signIn(key) {
      const page = await client.post('/admin/sign-in', { key });
      expect(page.status, page.html).toBe(303);
      client.cookie = page.setCookie!.split(';')[0]!;
      return page;
    },
  };

  async function read(response: Response): Promise<Page> {
    const page = {
      status: response.status,
      location: response.headers.get('location'),
      setCookie: response.headers.get('set-cookie'),
      headers: response.headers,
      html: await response.text(),
    };
    log?.push(page);
    return page;
  }

  return client;
}
