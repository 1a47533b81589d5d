import { html, type SafeHtml } from '../html.js';
import type { AdminSession } from '../sessions.js';

export type Section = 'users' | 'sweep' | 'api-keys' | 'webhooks';

export interface Notice {
  kind: 'ok' | 'error' | 'info';
  text: string | SafeHtml;
}

export interface Frame {
  title: string;
  /** Absent on the sign-in page: no navigation, no sign-out. */
  session?: AdminSession;
  section?: Section;
  notice?: Notice | undefined;
  /** Reload the page after this many seconds (a sweep in progress): no script needed. */
  refreshSeconds?: number;
}

const SECTIONS: Array<{ id: Section; label: string; href: string }> = [
  { id: 'users', label: 'Users', href: '/admin/users' },
  { id: 'sweep', label: 'Health sweep', href: '/admin/sweep' },
  { id: 'api-keys', label: 'API keys', href: '/admin/api-keys' },
  { id: 'webhooks', label: 'Webhooks', href: '/admin/webhooks' },
];

/** A whole console page: header, navigation, a notice, the content. No script anywhere. */
export function renderPage(frame: Frame, content: SafeHtml): string {
  const { session } = frame;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${frame.refreshSeconds === undefined ? '' : html`<meta http-equiv="refresh" content="${frame.refreshSeconds}">`}
<title>${frame.title} · behalf console</title>
<link rel="stylesheet" href="/admin/assets/admin.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="bar">
<div class="inner">
<a class="brand" href="/admin/users">behalf console</a>
${
  session === undefined
    ? ''
    : html`<nav aria-label="Console sections"><ul>
${SECTIONS.map(
  (s) =>
    html`<li><a href="${s.href}"${s.id === frame.section ? html` aria-current="page"` : ''}>${s.label}</a></li>`,
)}
</ul></nav>
<div class="who"><span>Key <strong>${session.apiKeyName}</strong></span>
<form method="post" action="/admin/sign-out">${csrfField(session)}<button type="submit">Sign out</button></form></div>`
}
</div>
</header>
<main id="main" tabindex="-1">
${frame.notice === undefined ? '' : notice(frame.notice)}
${content}
</main>
</body>
</html>
`.value;
}

export function notice(n: Notice): SafeHtml {
  return html`<div class="notice ${n.kind}" role="${n.kind === 'error' ? 'alert' : 'status'}">${n.text}</div>`;
}

/** The hidden field every state-changing form carries. */
export function csrfField(session: AdminSession): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${session.csrfToken}">`;
}

/** Unix milliseconds as a UTC date and time, in a <time> element. */
export function time(ms: number | null | undefined): SafeHtml {
  if (ms === null || ms === undefined) return html`<span class="hint">never</span>`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;
}

/** A status word as a coloured badge (the word itself carries the meaning; colour only helps). */
export function badge(status: string): SafeHtml {
  return html`<span class="badge ${status.replace(/[^a-z_]/g, '')}">${status.replace(/_/g, ' ')}</span>`;
}
