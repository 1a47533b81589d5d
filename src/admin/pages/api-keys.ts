import type { ApiKeySummary } from '../../vault/index.js';
import { html, segment } from '../html.js';
import type { AdminSession } from '../sessions.js';
import { csrfField, renderPage, time, type Notice } from './layout.js';

export interface ApiKeysView {
  session: AdminSession;
  keys: ApiKeySummary[];
  /** A key just created: shown on this one page, once. */
  created?: { id: string; name: string; key: string };
  notice?: Notice | undefined;
}

/** Service API keys: list (never the key itself), create (shown once), revoke. */
export function apiKeysPage(view: ApiKeysView): string {
  const { session } = view;
  return renderPage(
    { title: 'API keys', session, section: 'api-keys', notice: view.notice },
    html`<h1>Service API keys</h1>
<p class="lead">Keys your backend sends as <code>Authorization: Bearer …</code>. behalf keeps only a hash of each; revoking a key ends the console sessions opened with it.</p>
${
  view.created === undefined
    ? ''
    : html`<section class="card" aria-labelledby="created-h">
<h2 id="created-h">New key “${view.created.name}”</h2>
<p>Copy it now: it is shown only this once.</p>
<p class="secret" aria-label="The new API key">${view.created.key}</p>
</section>`
}
<div class="scroll" role="region" aria-labelledby="keys-caption" tabindex="0">
<table>
<caption id="keys-caption">${view.keys.length} key${view.keys.length === 1 ? '' : 's'}</caption>
<thead><tr><th scope="col">Label</th><th scope="col" class="hide-narrow">Id</th><th scope="col" class="hide-narrow">Created</th><th scope="col">Last used</th><th scope="col"><span class="hint">Action</span></th></tr></thead>
<tbody>
${view.keys.map(
  (k) => html`<tr>
<th scope="row" class="wrap">${k.name}${k.id === session.apiKeyId ? html` <span class="hint">(this session)</span>` : ''}<span class="show-narrow"><code>${k.id}</code></span></th>
<td class="hide-narrow"><code>${k.id}</code></td>
<td class="hide-narrow">${time(k.createdAt)}</td>
<td>${time(k.lastUsedAt)}</td>
<td><form method="post" action="/admin/api-keys/${segment(k.id)}/revoke">${csrfField(session)}<button type="submit" class="secondary" aria-label="Revoke key ${k.name} (${k.id})">Revoke</button></form></td>
</tr>`,
)}
</tbody>
</table>
</div>
<form method="post" action="/admin/api-keys" class="card filters">
${csrfField(session)}
<div class="field">
<label for="name">New key label</label>
<input type="text" id="name" name="name" required maxlength="100" autocomplete="off" placeholder="e.g. billing backend">
</div>
<div><button type="submit">Create key</button></div>
</form>`,
  );
}
