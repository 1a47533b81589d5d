import type { JobRunSummary } from '../../jobs/index.js';
import type { SecurityEventRecord, UserSecurity } from '../../risc/index.js';
import type { RefreshRecord, StoredGrant, UserRecord } from '../../vault/index.js';
import { html, segment } from '../html.js';
import type { AdminSession } from '../sessions.js';
import { badge, csrfField, renderPage, time, type Notice } from './layout.js';

export interface UserView {
  session: AdminSession;
  user: UserRecord;
  /** The grant as stored: only its status, scopes and times are read (tokens stay ciphertext, unread). */
  grant: StoredGrant | null;
  lastRefresh: RefreshRecord | null;
  security: UserSecurity | null;
  securityEvents: SecurityEventRecord[];
  jobRuns: JobRunSummary[];
  notice?: Notice | undefined;
}

/** One user: profile, grant, last refresh, security events, job runs, and the actions. */
export function userPage(view: UserView): string {
  const { user, grant, session } = view;
  const base = `/admin/users/${segment(user.sub)}`;
  const who = user.email ?? user.sub;
  return renderPage(
    { title: who, session, section: 'users', notice: view.notice },
    html`<p><a href="/admin/users">All users</a></p>
<h1>${who}</h1>
<section class="card" aria-labelledby="profile-h">
<h2 id="profile-h">Profile</h2>
<dl class="facts">
<dt>Google user id</dt><dd><code>${user.sub}</code></dd>
<dt>Email</dt><dd>${user.email ?? html`<span class="hint">none (the email scope was not granted)</span>`}${user.email !== null && !user.emailVerified ? ' (not verified)' : ''}</dd>
<dt>Name</dt><dd>${user.name ?? '—'}</dd>
<dt>Picture URL</dt><dd>${user.picture ?? '—'}</dd>
<dt>Workspace domain</dt><dd>${user.hd ?? '—'}</dd>
<dt>Locale</dt><dd>${user.locale ?? '—'}</dd>
<dt>First sign-in</dt><dd>${time(user.createdAt)}</dd>
<dt>Last sign-in</dt><dd>${time(user.lastSignInAt)}</dd>
</dl>
</section>
<section class="card" aria-labelledby="grant-h">
<h2 id="grant-h">Grant</h2>
${
  grant === null
    ? html`<p>No grant is stored for this server's OAuth client.</p>`
    : html`<dl class="facts">
<dt>Status</dt><dd>${badge(grant.status)}</dd>
<dt>Offline access</dt><dd>${grant.status === 'active' && grant.refreshTokenCiphertext !== null ? 'yes: a refresh token is stored' : 'no'}</dd>
<dt>Refresh token stored</dt><dd>${time(grant.refreshTokenIssuedAt)}</dd>
<dt>Refresh token expires</dt><dd>${grant.refreshTokenExpiresAt === null ? html`<span class="hint">never (no expiry from Google)</span>` : html`${time(grant.refreshTokenExpiresAt)} <span class="hint">(Testing-mode client or time-based access: the user must sign in again then)</span>`}</dd>
<dt>Access token valid until</dt><dd>${grant.accessTokenExpiresAt === null ? html`<span class="hint">none cached</span>` : time(grant.accessTokenExpiresAt)}</dd>
<dt>Last refresh at Google</dt><dd>${view.lastRefresh === null ? html`<span class="hint">none recorded</span>` : html`${time(view.lastRefresh.at)} ${badge(view.lastRefresh.outcome === 'ok' ? 'ok' : 'error')} ${view.lastRefresh.outcome === 'ok' ? '' : html`<code>${view.lastRefresh.outcome}</code>${view.lastRefresh.reason === null ? '' : html` (${view.lastRefresh.reason})`}`}`}</dd>
<dt>Scopes</dt><dd><ul class="scopes">${grant.scopes.map((s) => html`<li><code>${s}</code></li>`)}</ul></dd>
</dl>`
}
<div class="actions">
<form method="post" action="${base}/check">${csrfField(session)}<button type="submit">Check now</button></form>
${
  grant !== null && grant.status !== 'revoked'
    ? html`<form method="post" action="${base}/sign-out">${csrfField(session)}<button type="submit" class="secondary">Sign out (revoke grant)</button></form>`
    : ''
}
<a class="button danger" href="${base}/delete">Delete user…</a>
</div>
</section>
<section class="card" aria-labelledby="security-h">
<h2 id="security-h">Security events</h2>
<p>Current state from Google: ${view.security === null ? html`<strong>none</strong>` : html`<strong>${view.security.state.replace(/_/g, ' ')}</strong> since ${time(view.security.at)}`}</p>
${
  view.securityEvents.length === 0
    ? html`<p class="hint">No Cross-Account Protection event has been received for this user.</p>`
    : html`<div class="scroll" role="region" aria-labelledby="security-caption" tabindex="0"><table>
<caption id="security-caption">Events received, newest first</caption>
<thead><tr><th scope="col">Received</th><th scope="col">Event</th><th scope="col">What behalf did</th></tr></thead>
<tbody>${view.securityEvents.map((e) => html`<tr><td>${time(e.at)}</td><td><code>${e.type}</code></td><td>${e.action.replace(/_/g, ' ')}</td></tr>`)}</tbody>
</table></div>`
}
</section>
<section class="card" aria-labelledby="jobs-h">
<h2 id="jobs-h">Job runs</h2>
${
  view.jobRuns.length === 0
    ? html`<p class="hint">No job has run for this user.</p>`
    : html`<div class="scroll" role="region" aria-labelledby="jobs-caption" tabindex="0"><table>
<caption id="jobs-caption">Latest runs, newest first</caption>
<thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Error</th><th scope="col" class="hide-narrow">Queued</th><th scope="col" class="hide-narrow">Finished</th></tr></thead>
<tbody>${view.jobRuns.map(
        (r) =>
          html`<tr><td>${r.name}</td><td>${badge(r.status)}</td><td>${r.attempts} of ${r.maxAttempts}</td><td>${r.errorCode === null ? '' : html`<code>${r.errorCode}</code>`}</td><td class="hide-narrow">${time(r.createdAt)}</td><td class="hide-narrow">${r.finishedAt === null ? '' : time(r.finishedAt)}</td></tr>`,
      )}</tbody>
</table></div>`
}
</section>`,
  );
}

/** Deleting asks first: what it does, and a box to tick. */
export function deleteUserPage(view: {
  session: AdminSession;
  user: UserRecord;
  notice?: Notice | undefined;
}): string {
  const { user, session } = view;
  const base = `/admin/users/${segment(user.sub)}`;
  const who = user.email ?? user.sub;
  return renderPage(
    { title: `Delete ${who}`, session, section: 'users', notice: view.notice },
    html`<p><a href="${base}">Back to ${who}</a></p>
<h1>Delete ${who}?</h1>
<form method="post" action="${base}/delete" class="card">
${csrfField(session)}
<p>behalf revokes this user's grant at Google, then deletes everything it stores about them: profile, grant and
tokens, security state and events, and job runs (queued jobs are cancelled). If Google cannot be reached, nothing
is deleted. The user can sign in again later as a new user.</p>
<p><label class="check"><input type="checkbox" name="confirm" value="yes" required> Yes, delete ${who} and revoke their grant</label></p>
<div class="actions"><button type="submit" class="danger">Delete user</button><a href="${base}">Cancel</a></div>
</form>`,
  );
}
