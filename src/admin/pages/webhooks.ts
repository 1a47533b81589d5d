import { WEBHOOK_EVENT_TYPES, type DeliveryRecord, type WebhookEndpoint } from '../../webhooks/index.js';
import { html, segment } from '../html.js';
import type { AdminSession } from '../sessions.js';
import { badge, csrfField, renderPage, time, type Notice } from './layout.js';

export interface WebhooksView {
  session: AdminSession;
  endpoints: WebhookEndpoint[];
  deliveries: DeliveryRecord[];
  /** An endpoint just added, with its signing secret: shown on this one page, once. */
  created?: { endpoint: WebhookEndpoint; secret: string };
  /** What the add form held, when it was refused. */
  form?: { url: string; events: string[] };
  notice?: Notice | undefined;
}

/** Webhook endpoints (list, add with the secret shown once, remove) and their recent deliveries. */
export function webhooksPage(view: WebhooksView): string {
  const { session } = view;
  const urlOf = new Map(view.endpoints.map((e) => [e.id, e.url]));
  return renderPage(
    { title: 'Webhooks', session, section: 'webhooks', notice: view.notice },
    html`<h1>Webhooks</h1>
<p class="lead">behalf posts signed events (Standard Webhooks) to these URLs when a grant dies or comes back, a user is deleted, or Google sends a security event.</p>
${
  view.created === undefined
    ? ''
    : html`<section class="card" aria-labelledby="created-h">
<h2 id="created-h">Endpoint added</h2>
<p>Its signing secret, for your receiver to verify signatures with. Copy it now: it is shown only this once.</p>
<p class="secret" aria-label="The signing secret">${view.created.secret}</p>
</section>`
}
<div class="scroll" role="region" aria-labelledby="endpoints-caption" tabindex="0">
<table class="stack">
<caption id="endpoints-caption">${view.endpoints.length === 0 ? 'No endpoints yet' : `${view.endpoints.length} endpoint${view.endpoints.length === 1 ? '' : 's'}`}</caption>
<thead><tr><th scope="col">URL</th><th scope="col">Events</th><th scope="col">Status</th><th scope="col">Deliveries</th><th scope="col"><span class="hint">Action</span></th></tr></thead>
<tbody>
${view.endpoints.map(
  (e) => html`<tr>
<th scope="row" class="wrap"><code>${e.url}</code></th>
<td data-label="Events">${e.events === null ? 'all' : html`<ul class="scopes">${e.events.map((t) => html`<li><code>${t}</code></li>`)}</ul>`}</td>
<td data-label="Status">${badge(e.status)}${e.disabledReason === null ? '' : html`<br><span class="hint">${e.disabledReason}</span>`}</td>
<td data-label="Deliveries">${e.deliveries.pending} pending, ${e.deliveries.delivered} delivered, ${e.deliveries.failed} failed</td>
<td><form method="post" action="/admin/webhooks/${segment(e.id)}/remove">${csrfField(session)}<button type="submit" class="secondary" aria-label="Remove endpoint ${e.url}">Remove</button></form></td>
</tr>`,
)}
</tbody>
</table>
</div>
<form method="post" action="/admin/webhooks" class="card">
${csrfField(session)}
<h2>Add an endpoint</h2>
<div class="field">
<label for="url">URL <span class="hint">(https, on a public host)</span></label>
<input type="url" id="url" name="url" required maxlength="2048" autocomplete="off" spellcheck="false" placeholder="https://backend.example.com/webhooks/behalf" value="${view.form?.url ?? ''}">
</div>
<fieldset class="events">
<legend>Events <span class="hint">(none ticked: every type, also types added later)</span></legend>
${WEBHOOK_EVENT_TYPES.map(
  (t) =>
    html`<label class="check"><input type="checkbox" name="events" value="${t}"${view.form?.events.includes(t) === true ? html` checked` : ''}> <code>${t}</code></label>`,
)}
</fieldset>
<div class="actions"><button type="submit">Add endpoint</button></div>
</form>
<div class="scroll" role="region" aria-labelledby="deliveries-caption" tabindex="0">
<table class="stack">
<caption id="deliveries-caption">${view.deliveries.length === 0 ? 'No deliveries yet' : 'Recent deliveries, newest first'}</caption>
<thead><tr><th scope="col">Created</th><th scope="col">Event</th><th scope="col">User</th><th scope="col">Status</th><th scope="col">Endpoint</th><th scope="col">Last attempt</th></tr></thead>
<tbody>
${view.deliveries.map(
  (d) => html`<tr>
<td data-label="Created">${time(d.createdAt)}</td>
<td data-label="Event"><code>${d.eventType}</code></td>
<td data-label="User" class="wrap"><a href="/admin/users/${segment(d.sub)}">${d.sub}</a></td>
<td data-label="Status">${badge(d.status)}<br><span class="hint">${d.attempts} attempt${d.attempts === 1 ? '' : 's'}${d.nextAttemptAt === null ? '' : html`, next ${time(d.nextAttemptAt)}`}</span></td>
<td data-label="Endpoint" class="wrap"><code>${urlOf.get(d.endpointId) ?? d.endpointId}</code></td>
<td data-label="Last attempt" class="wrap">${d.lastAttemptAt === null ? '' : html`${time(d.lastAttemptAt)}${d.lastStatus === null ? '' : html` · HTTP ${d.lastStatus}`}${d.lastError === null ? '' : html`<br><span class="hint">${d.lastError}</span>`}`}</td>
</tr>`,
)}
</tbody>
</table>
</div>`,
  );
}
