import { html, type SafeHtml } from '../html.js';
import type { AdminSession } from '../sessions.js';
import type { SweepRun } from '../sweeps.js';
import { badge, csrfField, renderPage, time, type Notice } from './layout.js';

export interface SweepView {
  session: AdminSession;
  /** Newest first. */
  runs: SweepRun[];
  isStalled: (run: SweepRun) => boolean;
  notice?: Notice | undefined;
}

/** The token health sweep: start one, watch it (the page reloads itself while it runs), see past ones. */
export function sweepPage(view: SweepView): string {
  const [latest, ...earlier] = view.runs;
  const running = latest !== undefined && latest.status === 'running' && !view.isStalled(latest);
  return renderPage(
    {
      title: 'Health sweep',
      session: view.session,
      section: 'sweep',
      notice: view.notice,
      ...(running ? { refreshSeconds: 2 } : {}),
    },
    html`<h1>Health sweep</h1>
<p class="lead">Checks every grant at Google (refreshing where due), so a revoked or expired grant is found before a job needs it.</p>
${latest === undefined ? html`<p class="card">No sweep has run from the console yet.</p>` : progress(latest, view.isStalled(latest))}
${
  running
    ? ''
    : html`<form method="post" action="/admin/sweep" class="card">
${csrfField(view.session)}
<p><label class="check"><input type="checkbox" name="force" value="yes"> Refresh every grant, not only those due <span class="hint">(finds grants revoked at Google whose access token still looks valid; costs one refresh per user)</span></label></p>
<div class="actions"><button type="submit">Start a sweep</button></div>
</form>`
}
${
  earlier.length === 0
    ? ''
    : html`<div class="scroll" role="region" aria-labelledby="sweeps-caption" tabindex="0"><table>
<caption id="sweeps-caption">Earlier sweeps</caption>
<thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col">Checked</th><th scope="col">Need consent</th><th scope="col">Unavailable</th></tr></thead>
<tbody>${earlier.map(
        (r) =>
          html`<tr><td>${time(r.startedAt)}</td><td>${badge(statusOf(r, view.isStalled(r)))}</td><td>${r.checked} of ${r.total}</td><td>${r.needsConsent}</td><td>${r.unavailable}</td></tr>`,
      )}</tbody>
</table></div>`
}`,
  );
}

function statusOf(run: SweepRun, stalled: boolean): string {
  return stalled ? 'stalled' : run.status;
}

function progress(run: SweepRun, stalled: boolean): SafeHtml {
  const status = statusOf(run, stalled);
  return html`<section class="card" aria-labelledby="latest-h">
<h2 id="latest-h">${status === 'running' ? 'Sweep in progress' : 'Latest sweep'} ${badge(status)}</h2>
<p><label for="sweep-progress">Checked ${run.checked} of ${run.total} grants</label></p>
<progress id="sweep-progress" max="${Math.max(run.total, run.checked, 1)}" value="${run.checked}">${run.checked} of ${run.total}</progress>
<dl class="facts">
<dt>Started</dt><dd>${time(run.startedAt)}${run.forced ? ' (every grant refreshed)' : ''}</dd>
${run.finishedAt === null ? html`<dt>Last progress</dt><dd>${time(run.updatedAt)}</dd>` : html`<dt>Finished</dt><dd>${time(run.finishedAt)}</dd>`}
<dt>Healthy</dt><dd>${run.healthy} (${run.refreshed} refreshed at Google)</dd>
<dt>Need to sign in again</dt><dd>${run.needsConsent}${run.needsConsent > 0 ? html` · <a href="/admin/users?status=needs_consent">see who needs consent</a> · <a href="/admin/users?status=revoked">revoked</a>` : ''}</dd>
<dt>Could not be checked</dt><dd>${run.unavailable}${run.unavailable > 0 ? ' (Google unavailable: run another sweep later)' : ''}</dd>
</dl>
${stalled ? html`<p class="notice error" role="alert">The instance running this sweep stopped reporting progress (it was stopped or crashed). Start another.</p>` : ''}
</section>`;
}
