import { html } from '../html.js';
import type { AdminSession } from '../sessions.js';
import { renderPage } from './layout.js';

/** A refusal or failure, as a page: the stable error code and what to do, never request data. */
export function errorPage(options: {
  title: string;
  code: string;
  message: string;
  session?: AdminSession | undefined;
}): string {
  return renderPage(
    { title: options.title, ...(options.session === undefined ? {} : { session: options.session }) },
    html`<h1>${options.title}</h1>
<div class="notice error" role="alert"><p>${options.message}</p><p class="hint">Error code <code>${options.code}</code></p></div>
<p><a href="/admin/users">Back to the console</a></p>`,
  );
}
