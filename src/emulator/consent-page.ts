import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EmulatorState } from './state.js';
import type { EmulatorClients } from './types.js';

/**
 * The authorization endpoint (spec §2) as a small consent screen: pick or add a test user, then
 * Allow or Deny. Codes go back in the query string of a registered redirect URI, or, for
 * `redirect_uri=postmessage` (Google Identity Services' popup code flow), to `window.opener`.
 */
export function registerConsentPage(app: FastifyInstance, state: EmulatorState, clients: EmulatorClients): void {
  for (const path of ['/o/oauth2/v2/auth', '/o/oauth2/auth']) {
    app.get(path, (request, reply) => {
      const p = stringParams(request.query);
      const problem = validate(p, clients);
      if (problem !== undefined) return errorPage(reply, problem.status, problem.error, problem.description);
      return page(reply, p, state);
    });
  }

  app.post('/o/oauth2/v2/auth/decision', (request, reply) => {
    const p = stringParams(request.body);
    const problem = validate(p, clients);
    if (problem !== undefined) return errorPage(reply, problem.status, problem.error, problem.description);
    const redirectUri = p.redirect_uri!;
    if (p.decision !== 'allow') return finish(reply, redirectUri, { error: 'access_denied', ...(p.state === undefined ? {} : { state: p.state }) }, p);
    let sub = p.sub;
    if ((sub === undefined || sub === '') && p.new_email !== undefined && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(p.new_email)) {
      sub = state.addUser({ email: p.new_email, name: p.new_email.split('@')[0] }).user.sub;
    }
    if (sub === undefined || !state.users.has(sub)) return errorPage(reply, 400, 'invalid_request', 'Choose a test user or give a valid email address.');
    // A disabled account cannot sign in: Google stops at its own sign-in page and never returns to the app.
    if (state.isDisabled(sub)) return errorPage(reply, 403, 'account_disabled', "Couldn't sign you in: this account has been disabled.");
    const scopes = (p.scope ?? '').split(' ').filter((s) => s.length > 0);
    const code = state.issueCode({
      sub,
      clientId: clients.server.clientId,
      azp: p.client_id!,
      scopes,
      redirectUri,
      nonce: p.nonce,
      prompt: p.prompt,
      codeChallenge: p.code_challenge,
      codeChallengeMethod: p.code_challenge_method === 'S256' ? 'S256' : p.code_challenge === undefined ? undefined : 'plain',
    });
    const granted = state.codes.get(code)!.scopes.join(' ');
    return finish(reply, redirectUri, { ...(p.state === undefined ? {} : { state: p.state }), code, scope: granted, authuser: '0', prompt: 'consent' }, p);
  });
}

function validate(p: Record<string, string>, clients: EmulatorClients): { status: number; error: string; description: string } | undefined {
  if (p.client_id === undefined) return { status: 400, error: 'invalid_request', description: 'Missing required parameter: client_id' };
  if (p.client_id !== clients.server.clientId) {
    return Object.values(clients.apps).includes(p.client_id)
      ? { status: 400, error: 'invalid_request', description: 'This client type cannot use the web consent flow.' }
      : { status: 401, error: 'invalid_client', description: 'The OAuth client was not found.' };
  }
  const uri = p.redirect_uri;
  if (uri === undefined) return { status: 400, error: 'invalid_request', description: 'Missing required parameter: redirect_uri' };
  if (uri !== 'postmessage' && !clients.server.redirectUris.includes(uri)) {
    return { status: 400, error: 'redirect_uri_mismatch', description: `You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy.` };
  }
  if ((p.response_type ?? 'code') !== 'code') return { status: 400, error: 'unsupported_response_type', description: 'Only response_type=code is emulated.' };
  if (p.scope === undefined || p.scope.trim() === '') return { status: 400, error: 'invalid_request', description: 'Missing required parameter: scope' };
  return undefined;
}

function finish(reply: FastifyReply, redirectUri: string, result: Record<string, string>, p: Record<string, string>): FastifyReply {
  if (redirectUri === 'postmessage') {
    const target = p.origin !== undefined && /^https?:\/\/[^/]+$/.test(p.origin) ? p.origin : '*';
    const script = `window.opener && window.opener.postMessage(${JSON.stringify(result).replace(/</g, '\\u003c')}, ${JSON.stringify(target)}); window.close();`;
    return reply.type('text/html; charset=utf-8').send(`<!doctype html><meta charset="utf-8"><title>Signing in…</title><script>${script}</script>`);
  }
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(result)) url.searchParams.set(key, value);
  return reply.redirect(url.toString(), 302);
}

function page(reply: FastifyReply, p: Record<string, string>, state: EmulatorState): FastifyReply {
  const hidden = Object.entries(p)
    .filter(([k]) => !['decision', 'sub', 'new_email'].includes(k))
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  const hint = p.login_hint?.toLowerCase();
  const users = [...state.users.values()]
    .map(
      (u, i) =>
        `<label><input type="radio" name="sub" value="${esc(u.sub)}"${hint === u.email || hint === u.sub || (hint === undefined && i === 0) ? ' checked' : ''}> ${esc(u.name ?? u.email)} &lt;${esc(u.email)}&gt;</label><br>`,
    )
    .join('');
  const scopes = (p.scope ?? '')
    .split(' ')
    .filter((s) => s.length > 0)
    .map((s) => `<li>${esc(s)}</li>`)
    .join('');
  return reply.type('text/html; charset=utf-8').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in – Google Accounts (emulator)</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}button{margin-right:.5rem}</style></head>
<body><h1>Choose an account</h1><p>to continue to your app (behalf's Google emulator: no real account is used)</p>
<form method="post" action="/o/oauth2/v2/auth/decision">${hidden}
<fieldset><legend>Test users</legend>${users || '<p>No test users yet.</p>'}
<label>or a new one: <input type="email" name="new_email" placeholder="someone@example.com"></label></fieldset>
<p>The app will be able to:</p><ul>${scopes}</ul>
<button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>`);
}

function errorPage(reply: FastifyReply, status: number, error: string, description: string): FastifyReply {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(`<!doctype html><meta charset="utf-8"><title>Error ${status}: ${esc(error)}</title><h1>Access blocked</h1><p>Error ${status}: ${esc(error)}</p><p>${esc(description)}</p>`);
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

