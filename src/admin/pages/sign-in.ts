import { html } from '../html.js';
import { renderPage, type Notice } from './layout.js';

/** The sign-in form: a service API key, posted once and exchanged for a session cookie. */
export function signInPage(options: { notice?: Notice | undefined; next?: string | undefined }): string {
  return renderPage(
    { title: 'Sign in', notice: options.notice },
    html`<div class="signin">
<h1>Sign in</h1>
<p class="lead">Sign in with a service API key. The key is checked once and never kept in your browser.</p>
<form method="post" action="/admin/sign-in" class="card">
${options.next === undefined ? '' : html`<input type="hidden" name="next" value="${options.next}">`}
<div class="field">
<label for="key">Service API key <span class="hint">(starts with bhf_)</span></label>
<input type="password" id="key" name="key" required autocomplete="off" spellcheck="false" autocapitalize="off" autofocus aria-describedby="key-help">
</div>
<p id="key-help" class="hint">Create one with <code>behalf keys create-api-key</code>. In local mode (<code>npm start</code>) one is in <code>.behalf/api-key</code>.</p>
<div class="actions"><button type="submit">Sign in</button></div>
</form>
</div>`,
  );
}
