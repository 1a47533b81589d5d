import type { FastifyInstance, FastifyReply } from 'fastify';
import { parse as parseCookie, serialize as serializeCookie } from 'cookie';
import { isBasicScope, isKnownScope, normalizeScopes, type EmulatorState } from './state.js';
import type { EmulatorClients } from './types.js';

/**
 * The authorization endpoint (https://developers.google.com/identity/protocols/oauth2/web-server#creatingclient)
 * as a small consent screen: pick or add a test user, then
 * Allow or Deny. Codes go back in the query string of a registered redirect URI, or, for
 * `redirect_uri=postmessage` (Google Identity Services' popup code flow, see gsi-client.ts), to
 * `window.opener` by postMessage, targeted at the page's `origin`, which must be one of the
 * client's Authorized JavaScript origins
 * (https://developers.google.com/identity/oauth2/web/guides/error: "For popup UX, add all domains
 * that may trigger the current flow to Authorized JavaScript origins").
 */
export function registerConsentPage(
  app: FastifyInstance,
  state: EmulatorState,
  clients: EmulatorClients,
): void {
  for (const path of ['/o/oauth2/v2/auth', '/o/oauth2/auth']) {
    app.get(path, (request, reply) => {
      const p = stringParams(request.query);
      const problem = validate(p, clients);
      if (problem !== undefined) return errorPage(reply, problem.status, problem.error, problem.description);
      if (prompts(p).includes('none')) return silent(reply, p, state, clients, request.headers.cookie);
      return page(reply, p, state);
    });
  }

  app.post('/o/oauth2/v2/auth/decision', (request, reply) => {
    const p = stringParams(request.body);
    const problem = validate(p, clients);
    if (problem !== undefined) return errorPage(reply, problem.status, problem.error, problem.description);
    const redirectUri = p.redirect_uri!;
    if (p.decision !== 'allow')
      return finish(
        reply,
        redirectUri,
        { error: 'access_denied', ...(p.state === undefined ? {} : { state: p.state }) },
        p,
      );
    // A typed new account wins over the preselected test user.
    let sub = p.sub;
    const newEmail = p.new_email?.trim() ?? '';
    if (newEmail !== '') {
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(newEmail) || newEmail.length > 320) {
        return errorPage(reply, 400, 'invalid_request', 'Choose a test user or give a valid email address.');
      }
      sub = state.addUser({ email: newEmail, name: newEmail.split('@')[0] }).user.sub;
    }
    if (sub === undefined || !state.users.has(sub))
      return errorPage(reply, 400, 'invalid_request', 'Choose a test user or give a valid email address.');
    // A disabled account cannot sign in: Google stops at its own sign-in page and never returns to the app.
    if (state.isDisabled(sub))
      return errorPage(
        reply,
        403,
        'account_disabled',
        "Couldn't sign you in: this account has been disabled.",
      );
    // The page's checkboxes (granular consent): only the ticked non-basic scopes are granted.
    const ticked = p.granular === '1' ? tickedScopes(request.body) : undefined;
    const code = issue(state, clients, p, sub, ticked);
    // The browser is now signed in to this account: prompt=none finds it in this cookie.
    const accounts = [...new Set([...sessionAccounts(request.headers.cookie), sub])].slice(-10);
    reply.header(
      'set-cookie',
      serializeCookie(SESSION_COOKIE, accounts.join(' '), { path: '/', httpOnly: true, sameSite: 'lax' }),
    );
    return finish(reply, redirectUri, success(p, state, code, 'consent'), p);
  });
}

/** The emulator's stand-in for Google's sign-in cookies: the accounts signed in in this browser. */
const SESSION_COOKIE = 'emulator_accounts';

function sessionAccounts(header: string | undefined): string[] {
  if (header === undefined) return [];
  return (parseCookie(header)[SESSION_COOKIE] ?? '').split(' ').filter((s) => s.length > 0);
}

function prompts(p: Record<string, string>): string[] {
  return (p.prompt ?? '').split(' ').filter((s) => s.length > 0);
}

function issue(
  state: EmulatorState,
  clients: EmulatorClients,
  p: Record<string, string>,
  sub: string,
  grantedScopes: string[] | undefined,
): string {
  return state.issueCode({
    sub,
    clientId: clients.server.clientId,
    azp: p.client_id!,
    scopes: (p.scope ?? '').split(' ').filter((s) => s.length > 0),
    grantedScopes,
    redirectUri: p.redirect_uri!,
    nonce: p.nonce,
    prompt: p.prompt,
    // Both default as Google's authorization endpoint does: online, and no earlier grants
    // (https://developers.google.com/identity/protocols/oauth2/web-server#creatingclient).
    accessType: p.access_type === 'offline' ? 'offline' : 'online',
    includeGrantedScopes: p.include_granted_scopes === 'true',
    codeChallenge: p.code_challenge,
    codeChallengeMethod:
      p.code_challenge_method === 'S256' ? 'S256' : p.code_challenge === undefined ? undefined : 'plain',
  });
}

function success(
  p: Record<string, string>,
  state: EmulatorState,
  code: string,
  prompt: 'consent' | 'none',
): Record<string, string> {
  return {
    ...(p.state === undefined ? {} : { state: p.state }),
    code,
    scope: state.codes.get(code)!.scopes.join(' '),
    authuser: '0',
    prompt,
  };
}

/**
 * `prompt=none`: no page at all. The account is the one `login_hint` names among those signed in
 * in this browser, else the first signed in; none is `login_required`, and an account that would
 * have to see the consent screen is `consent_required`, both sent to the redirect URI
 * (https://developers.google.com/identity/protocols/oauth2/web-server#creatingclient, `prompt`;
 * https://openid.net/specs/openid-connect-core-1_0.html#AuthError).
 */
function silent(
  reply: FastifyReply,
  p: Record<string, string>,
  state: EmulatorState,
  clients: EmulatorClients,
  cookie: string | undefined,
): FastifyReply {
  const signedIn = sessionAccounts(cookie).filter((sub) => state.users.has(sub) && !state.isDisabled(sub));
  const hint = p.login_hint?.toLowerCase();
  const sub =
    hint === undefined
      ? signedIn[0]
      : signedIn.find((s) => s.toLowerCase() === hint || state.users.get(s)?.email === hint);
  const error = (name: string) =>
    finish(reply, p.redirect_uri!, { error: name, ...(p.state === undefined ? {} : { state: p.state }) }, p);
  if (sub === undefined) return error('login_required');
  const scopes = (p.scope ?? '').split(' ').filter((s) => s.length > 0);
  if (state.needsConsent(sub, scopes, p.access_type === 'offline' ? 'offline' : 'online'))
    return error('consent_required');
  return finish(
    reply,
    p.redirect_uri!,
    success(p, state, issue(state, clients, p, sub, undefined), 'none'),
    p,
  );
}

/** The scopes ticked on the consent page (`granted_scope`, once per box). */
function tickedScopes(body: unknown): string[] {
  const value =
    typeof body === 'object' && body !== null ? (body as Record<string, unknown>).granted_scope : undefined;
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return values.filter((v): v is string => typeof v === 'string' && v.length <= 512).slice(0, 100);
}

function validate(
  p: Record<string, string>,
  clients: EmulatorClients,
): { status: number; error: string; description: string } | undefined {
  if (p.client_id === undefined)
    return { status: 400, error: 'invalid_request', description: 'Missing required parameter: client_id' };
  if (p.client_id !== clients.server.clientId) {
    return Object.values(clients.apps).includes(p.client_id)
      ? {
          status: 400,
          error: 'invalid_request',
          description: 'This client type cannot use the web consent flow.',
        }
      : { status: 401, error: 'invalid_client', description: 'The OAuth client was not found.' };
  }
  const uri = p.redirect_uri;
  if (uri === undefined)
    return { status: 400, error: 'invalid_request', description: 'Missing required parameter: redirect_uri' };
  if (uri !== 'postmessage' && !clients.server.redirectUris.includes(uri)) {
    return { status: 400, error: 'redirect_uri_mismatch', description: POLICY };
  }
  // The popup flow answers the page that opened it: only a registered JavaScript origin may
  // (https://developers.google.com/identity/protocols/oauth2/javascript-implicit-flow#origin-mismatch).
  if (
    uri === 'postmessage' &&
    (p.origin === undefined || !clients.server.javascriptOrigins.includes(p.origin))
  ) {
    return { status: 400, error: 'origin_mismatch', description: POLICY };
  }
  if ((p.response_type ?? 'code') !== 'code')
    return {
      status: 400,
      error: 'unsupported_response_type',
      description: 'Only response_type=code is emulated.',
    };
  if (p.scope === undefined || p.scope.trim() === '')
    return { status: 400, error: 'invalid_request', description: 'Missing required parameter: scope' };
  const scopes = p.scope.split(' ').filter((s) => s.length > 0);
  const invalid = scopes.filter((s) => !isKnownScope(s));
  if (invalid.length > 0) {
    const valid = scopes.filter((s) => isKnownScope(s));
    return {
      status: 400,
      error: 'invalid_scope',
      description: `Some requested scopes were invalid. {valid=[${valid.join(', ')}], invalid=[${invalid.join(', ')}]}`,
    };
  }
  if (p.access_type !== undefined && p.access_type !== 'online' && p.access_type !== 'offline')
    return { status: 400, error: 'invalid_request', description: `Invalid access_type: ${p.access_type}` };
  // prompt: space-delimited none / consent / select_account, and none only on its own
  // (https://developers.google.com/identity/protocols/oauth2/web-server#creatingclient).
  const asked = prompts(p);
  if (
    asked.some((v) => !['none', 'consent', 'select_account'].includes(v)) ||
    (asked.includes('none') && asked.length > 1)
  )
    return { status: 400, error: 'invalid_request', description: `Invalid prompt: ${p.prompt ?? ''}` };
  return undefined;
}

const POLICY = "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy.";

function finish(
  reply: FastifyReply,
  redirectUri: string,
  result: Record<string, string>,
  p: Record<string, string>,
): FastifyReply {
  if (redirectUri === 'postmessage') {
    // Targeted at the origin validate() accepted: a page elsewhere that opened this popup under a
    // registered origin's name receives nothing. The opener closes the popup once it has the answer.
    const json = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c');
    const script = `if (window.opener) window.opener.postMessage(${json(result)}, ${json(p.origin)});`;
    return htmlPage(
      reply,
      200,
      'Signing in…',
      `<h1>Returning to the app…</h1><p>You can close this window.</p><script>${script}</script>`,
    );
  }
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(result)) url.searchParams.set(key, value);
  return reply.redirect(url.toString(), 302);
}

function page(reply: FastifyReply, p: Record<string, string>, state: EmulatorState): FastifyReply {
  const hidden = Object.entries(p)
    .filter(([k]) => !['decision', 'sub', 'new_email', 'granted_scope', 'granular'].includes(k))
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  const hint = p.login_hint?.toLowerCase();
  const users = [...state.users.values()];
  const chosen = users.findIndex((u) => hint === u.email || hint === u.sub);
  const accounts = users
    .map(
      (u, i) =>
        `<label class="account"><input type="radio" name="sub" value="${esc(u.sub)}"${i === (chosen === -1 ? 0 : chosen) ? ' checked' : ''}><span><strong>${esc(u.name ?? u.email)}</strong><small>${esc(u.email)}</small></span></label>`,
    )
    .join('');
  // Granular consent: each scope beyond sign-in has its own box, ticked to start with.
  const scopes = normalizeScopes((p.scope ?? '').split(' ').filter((s) => s.length > 0))
    .map((s) =>
      isBasicScope(s)
        ? `<li>${esc(s)}</li>`
        : `<li><label><input type="checkbox" name="granted_scope" value="${esc(s)}" checked> ${esc(s)}</label></li>`,
    )
    .join('');
  // With no test user yet, the new-account field is the choice (filled in from login_hint). Allow
  // comes first, so Enter in that field allows.
  const newValue = users.length === 0 && hint !== undefined ? ` value="${esc(hint)}"` : '';
  return htmlPage(
    reply,
    200,
    'Sign in – Google Accounts (emulator)',
    `<h1>Choose an account</h1>
<p class="lead">to continue to your app. This is behalf's Google emulator: no real account is used.</p>
<form method="post" action="/o/oauth2/v2/auth/decision">${hidden}
<fieldset><legend>Test users</legend>${accounts || '<p>No test users yet.</p>'}
<label class="new">or a new one <input type="email" name="new_email" autocomplete="email" placeholder="someone@example.com"${newValue}></label></fieldset>
<input type="hidden" name="granular" value="1"><p>The app will be able to:</p><ul class="scopes">${scopes}</ul>
<div class="actions"><button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny" class="secondary">Deny</button></div>
</form>`,
  );
}

function errorPage(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return htmlPage(
    reply,
    status,
    `Error ${status}: ${error}`,
    `<h1>Access blocked</h1><p class="error">Error ${status}: ${esc(error)}</p><p>${esc(description)}</p>`,
  );
}

const STYLE = `:root{color-scheme:light;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f1f1f;background:#f0f4f9}
body{margin:0;padding:1rem}main{max-width:28rem;margin:1.5rem auto;background:#fff;border-radius:1.25rem;padding:1.5rem 1.75rem;box-shadow:0 1px 3px #0002}
.brand{font-size:.85rem;color:#444746;margin:0 0 1rem}h1{font-size:1.5rem;font-weight:500;margin:0 0 .5rem}.lead{color:#444746;margin-top:0}
fieldset{border:0;padding:0;margin:1rem 0}legend{font-weight:600;margin-bottom:.5rem}
.account{display:flex;gap:.75rem;align-items:center;padding:.6rem .75rem;border:1px solid #c4c7c5;border-radius:.75rem;margin-bottom:.5rem;cursor:pointer}
.account:has(input:checked){border-color:#0b57d0;background:#e8f0fe}.account span{display:flex;flex-direction:column}.account small{color:#444746}
.new{display:flex;flex-direction:column;gap:.35rem;margin-top:.75rem;font-size:.95rem}input[type=email]{font:inherit;padding:.55rem .7rem;border:1px solid #747775;border-radius:.5rem}
.scopes{padding-left:1.2rem;color:#444746;font-size:.9rem;word-break:break-all}.actions{display:flex;gap:.75rem;margin-top:1.25rem}
button{font:inherit;font-weight:500;border-radius:999px;padding:.6rem 1.4rem;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#0b57d0;border-color:#747775}:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}.error{color:#b3261e;font-weight:600}`;

function htmlPage(reply: FastifyReply, status: number, title: string, body: string): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${esc(title)}</title><style>${STYLE}</style></head><body><main><p class="brand">Google Accounts · behalf emulator</p>${body}</main></body></html>`,
    );
}

function stringParams(source: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof source !== 'object' || source === null) return out;
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) {
    if (typeof value === 'string' && key.length <= 64 && value.length <= 4096) out[key] = value;
  }
  return out;
}

function esc(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
