import type { GrantStatus, UserRecord, UserSearchPage } from '../../vault/index.js';
import { html, query, segment } from '../html.js';
import type { AdminSession } from '../sessions.js';
import { badge, renderPage, time, type Notice } from './layout.js';

export const STATUS_FILTERS: Array<{ value: GrantStatus; label: string }> = [
  { value: 'active', label: 'Active' },
  { value: 'needs_consent', label: 'Needs consent' },
  { value: 'revoked', label: 'Revoked' },
];

export interface UsersView {
  session: AdminSession;
  q: string;
  status: GrantStatus | undefined;
  /** Set when this is not the first page. */
  after: string | undefined;
  page: UserSearchPage;
  /** A user whose Google id is exactly the search text. */
  exact: UserRecord | null;
  notice?: Notice | undefined;
}

/** Users: search by email prefix, filter by grant status, a page at a time (keyset). */
export function usersPage(view: UsersView): string {
  const { q, status, page } = view;
  const filters = { q, status };
  return renderPage(
    { title: 'Users', session: view.session, section: 'users', notice: view.notice },
    html`<h1>Users</h1>
<form method="get" action="/admin/users" class="card filters" role="search" aria-label="Find users">
<div class="field">
<label for="q">Email starts with <span class="hint">(or a Google user id)</span></label>
<input type="search" id="q" name="q" value="${q}" maxlength="320" autocomplete="off" spellcheck="false" autocapitalize="off">
</div>
<div class="field narrow">
<label for="status">Grant status</label>
<select id="status" name="status">
<option value=""${status === undefined ? html` selected` : ''}>Any</option>
${STATUS_FILTERS.map((s) => html`<option value="${s.value}"${s.value === status ? html` selected` : ''}>${s.label}</option>`)}
</select>
</div>
<div><button type="submit">Search</button></div>
</form>
${
  view.exact === null
    ? ''
    : html`<div class="notice info" role="status">The user with Google id <code>${view.exact.sub}</code>:
<a href="/admin/users/${segment(view.exact.sub)}">${view.exact.email ?? view.exact.sub}</a></div>`
}
<div class="scroll" role="region" aria-labelledby="users-caption" tabindex="0">
<table>
<caption id="users-caption">${page.users.length === 0 ? 'No users found' : `Users${view.after === undefined ? '' : ' (continued)'}`}</caption>
<thead><tr><th scope="col">Email</th><th scope="col" class="hide-narrow">Name</th><th scope="col">Grant</th><th scope="col" class="hide-narrow">Last sign-in</th></tr></thead>
<tbody>
${page.users.map(
  ({ user, grant }) => html`<tr>
<th scope="row" class="wrap"><a href="/admin/users/${segment(user.sub)}">${user.email ?? html`<span class="hint">no email</span> ${user.sub}`}</a></th>
<td class="wrap hide-narrow">${user.name ?? ''}</td>
<td>${badge(grant?.status ?? 'none')}</td>
<td class="hide-narrow">${time(user.lastSignInAt)}</td>
</tr>`,
)}
</tbody>
</table>
${page.users.length === 0 ? html`<p class="empty">No user matches${q === '' && status === undefined ? ' yet: nobody has signed in' : ''}.</p>` : ''}
</div>
<nav class="pager" aria-label="Pages">
<span>${view.after === undefined ? '' : html`<a href="/admin/users${query(filters)}">First page</a>`}</span>
<span>${page.next === null ? '' : html`<a href="/admin/users${query({ ...filters, after: page.next })}" rel="next">Next page</a>`}</span>
</nav>`,
  );
}
