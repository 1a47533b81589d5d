/**
 * The demo web app's page, script and style. The script signs in the way Google's code model guide
 * does (https://developers.google.com/identity/oauth2/web/guides/use-code-model): a code client in
 * popup mode, then a POST of the code to the backend with X-Requested-With. Only the script URL
 * differs from a page on real Google: it is the emulator's `/gsi/client`.
 */

export interface PageConfig {
  /** This page's origin, for the text. */
  origin: string;
  behalfUrl: string;
  emulatorUrl: string;
  clientId: string;
  scopes: readonly string[];
}

export function pageHtml(config: PageConfig): string {
  // A data block, not a script: the Content-Security-Policy runs only /app.js and the emulator's script.
  const data = JSON.stringify({
    behalfUrl: config.behalfUrl,
    clientId: config.clientId,
    scopes: config.scopes,
  }).replace(/</g, '\\u003c');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>behalf demo: a web app signs in, its backend works while you are away</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app.css">
<script src="${esc(config.emulatorUrl)}/gsi/client" async></script>
<script src="/app.js" defer></script>
</head>
<body>
<header class="bar"><div class="wrap"><span class="logo">behalf</span><span class="badge">demo · local mode</span></div></header>
<main class="wrap">
<h1>Sign in on the web, then let the backend work while you are away</h1>
<p class="lead">This page is a web app on its own origin, <code>${esc(config.origin)}</code>. It gets a one-time code from
Google (emulated at <code>${esc(config.emulatorUrl)}</code>) and hands it to behalf at <code>${esc(config.behalfUrl)}</code>.
No token ever reaches this page.</p>

<section class="card" aria-labelledby="step-1">
<h2 id="step-1"><span class="step" aria-hidden="true">1</span>Sign in with Google</h2>
<p>The app asks Google for a server auth code (the code client, in a popup) and POSTs it to behalf
cross-origin, with <code>X-Requested-With</code>. behalf redeems it, verifies the ID token and stores the
refresh token encrypted.</p>
<button type="button" id="signin" class="primary" disabled>Loading Google…</button>
<p id="signin-status" class="status" role="status" aria-live="polite"></p>
<div id="profile" class="profile" hidden>
<h3 id="profile-heading" tabindex="-1">Signed in</h3>
<div class="who"><span class="avatar" id="avatar" aria-hidden="true"></span><div><strong id="name"></strong><span id="email"></span></div></div>
<dl class="facts">
<dt>Google user id (sub)</dt><dd><code id="sub"></code></dd>
<dt>behalf answered</dt><dd id="answer"></dd>
<dt>Grant</dt><dd><span id="grant-status" class="pill"></span> <span id="offline"></span></dd>
<dt>Scopes granted</dt><dd><ul id="scopes" class="chips"></ul></dd>
<dt>Next step for the app</dt><dd id="action"></dd>
</dl>
</div>
</section>

<section class="card" aria-labelledby="step-2">
<h2 id="step-2"><span class="step" aria-hidden="true">2</span>Be the backend while the user is offline</h2>
<p>The app saves a new photo to your Drive app folder; then its backend runs the <code>enhance-photos</code>
job for you through behalf (fresh access tokens, refreshed when due), as it would at night with you
signed out. This demo's backend uses behalf as a library in the same process; a backend in another
language calls behalf's service API with an API key, which stays on the server.</p>
<button type="button" id="photo" class="primary" disabled>Run the photo job</button>
<p id="photo-status" class="status" role="status" aria-live="polite">Sign in first.</p>
<div id="photos" class="photos" hidden>
<figure><img id="before" alt="The photo as the app saved it: flat and washed out" width="640" height="420"><figcaption>Before</figcaption></figure>
<figure><img id="after" alt="The same photo after the job: levels normalised, colours lifted, sharpened" width="640" height="420" hidden><div id="after-placeholder" class="placeholder">Waiting for the job…</div><figcaption>After</figcaption></figure>
</div>
</section>

<section class="card quiet" aria-labelledby="what-happened" id="log-section" hidden>
<h2 id="what-happened">What happened</h2>
<ol id="log" class="log"></ol>
</section>
</main>
<script type="application/json" id="demo-config">${data}</script>
</body>
</html>
`;
}

export const APP_JS = `'use strict';
(function () {
  var config = JSON.parse(document.getElementById('demo-config').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var signInButton = $('signin');
  var photoButton = $('photo');
  var user = null;
  var expectedState = null;

  function say(id, text, kind) {
    var el = $(id);
    el.textContent = text;
    el.dataset.kind = kind || 'info';
  }
  function log(text) {
    var item = document.createElement('li');
    item.textContent = text;
    $('log').appendChild(item);
    $('log-section').hidden = false;
  }

  function libraryReady() {
    signInButton.disabled = false;
    signInButton.textContent = 'Sign in with Google';
  }
  if (window.google && window.google.accounts && window.google.accounts.oauth2) libraryReady();
  else window.onGoogleLibraryLoad = libraryReady;

  signInButton.addEventListener('click', function () {
    var random = new Uint8Array(16);
    crypto.getRandomValues(random);
    expectedState = Array.from(random, function (b) { return b.toString(16).padStart(2, '0'); }).join('');
    var client = google.accounts.oauth2.initCodeClient({
      client_id: config.clientId,
      scope: config.scopes.join(' '),
      ux_mode: 'popup',
      state: expectedState,
      callback: onCodeResponse,
      error_callback: onPopupError,
    });
    say('signin-status', 'Choose an account in the Google window…');
    client.requestCode();
  });

  function onPopupError(error) {
    if (error.type === 'popup_closed') say('signin-status', 'The Google window was closed before you chose: nothing was signed in.', 'error');
    else if (error.type === 'popup_failed_to_open') say('signin-status', 'The browser blocked the Google window: allow pop-ups for this page, then try again.', 'error');
    else say('signin-status', 'Sign-in did not finish (' + error.type + ').', 'error');
  }

  async function onCodeResponse(response) {
    if (response.error) {
      say('signin-status', 'You did not allow access (' + response.error + '): nothing was signed in.', 'error');
      log('Google answered ' + response.error + ' to the page: no code, nothing sent to behalf.');
      return;
    }
    if (response.state !== expectedState) {
      say('signin-status', 'The answer did not match this sign-in (state): ignored.', 'error');
      return;
    }
    log('Google gave the page a one-time code (shown nowhere) for ' + response.scope.split(' ').map(shortScope).join(', ') + '.');
    say('signin-status', 'Sending the code to behalf…');
    var answer;
    try {
      // Set custom header for CSRF protection, as in Google's guide; redirect_uri postmessage is
      // what codes from the popup flow are redeemed with.
      answer = await fetch(config.behalfUrl + '/v1/google/signin', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Requested-With': 'XMLHttpRequest' },
        body: JSON.stringify({ code: response.code, redirect_uri: 'postmessage' }),
      });
    } catch (e) {
      say('signin-status', 'behalf could not be reached from this page (or refused its origin).', 'error');
      return;
    }
    var body = await answer.json().catch(function () { return {}; });
    log('POST ' + config.behalfUrl + '/v1/google/signin (cross-origin, allowed by CORS) → ' + answer.status);
    if (!answer.ok) {
      say('signin-status', 'behalf refused the code: ' + (body.error || answer.status) + (body.message ? ' (' + body.message + ')' : ''), 'error');
      return;
    }
    log('behalf exchanged the code at Google, verified the ID token and stored the refresh token, encrypted.');
    showProfile(body, answer.status);
  }

  function shortScope(scope) {
    return scope.replace('https://www.googleapis.com/auth/', '');
  }

  function showProfile(body, status) {
    user = body.user;
    var name = user.name || user.email || user.sub;
    $('name').textContent = name;
    $('email').textContent = user.email ? user.email + (user.email_verified ? ' (verified)' : ' (not verified)') : '';
    $('avatar').textContent = name.trim().charAt(0).toUpperCase();
    $('sub').textContent = user.sub;
    $('answer').textContent = status + (body.created ? ' Created: a new user' : ' OK: a returning user');
    $('grant-status').textContent = body.grant.status;
    $('grant-status').dataset.status = body.grant.status;
    $('offline').textContent = body.grant.offline_access
      ? 'offline access in place' + (body.grant.refresh_token_received ? ' (new refresh token stored)' : ' (kept the stored refresh token)')
      : 'no offline access';
    var scopes = $('scopes');
    scopes.replaceChildren();
    body.grant.scopes.forEach(function (scope) {
      var item = document.createElement('li');
      item.textContent = shortScope(scope);
      item.title = scope;
      scopes.appendChild(item);
    });
    var actions = { none: 'nothing: all set', request_scopes: 'ask again for: ' + body.grant.missing_scopes.join(', '), force_consent: 'sign in again with consent' };
    $('action').textContent = actions[body.action] || body.action;
    $('profile').hidden = false;
    say('signin-status', 'Signed in as ' + (user.email || user.sub) + '.', 'ok');
    $('profile-heading').focus();
    photoButton.disabled = false;
    say('photo-status', 'Ready: run the photo job as the backend.');
  }

  async function demoApi(method, path, body) {
    var response = await fetch(path, {
      method: method,
      headers: Object.assign({ 'X-Requested-With': 'XMLHttpRequest' }, body ? { 'Content-Type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    var json = await response.json().catch(function () { return {}; });
    if (!response.ok) throw new Error((json.error || 'HTTP ' + response.status) + (json.message ? ': ' + json.message : ''));
    return json;
  }

  function photoUrl(fileId) {
    return '/api/users/' + encodeURIComponent(user.sub) + '/photos/' + encodeURIComponent(fileId);
  }

  function wait(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  photoButton.addEventListener('click', async function () {
    photoButton.disabled = true;
    $('after').hidden = true;
    $('after-placeholder').hidden = false;
    $('after-placeholder').textContent = 'Waiting for the job…';
    try {
      say('photo-status', 'The app saves a new photo to your Drive app folder…');
      var started = await demoApi('POST', '/api/photo-job', { sub: user.sub });
      $('before').src = photoUrl(started.photo.id);
      $('photos').hidden = false;
      log('The app saved ' + started.photo.name + ' to your Drive app folder.');
      say('photo-status', 'Backend: enhance-photos is running for you, as if you were offline…');
      var run;
      do {
        await wait(400);
        run = await demoApi('GET', '/api/photo-job/' + encodeURIComponent(started.run_id));
        $('after-placeholder').textContent = 'Job ' + run.status + '…';
      } while (run.status === 'queued' || run.status === 'running' || run.status === 'retrying');
      if (run.status !== 'done') {
        say('photo-status', 'The job ended ' + run.status + (run.error_code ? ' (' + run.error_code + ')' : '') + '.', 'error');
        log('enhance-photos ended ' + run.status + '.');
        return;
      }
      var pair = run.pairs.find(function (p) { return p.original === started.photo.id; });
      $('after').src = photoUrl(pair.enhanced);
      $('after').hidden = false;
      $('after-placeholder').hidden = true;
      log('The backend ran enhance-photos through behalf: ' + run.enhanced.length + ' photo(s) enhanced and saved beside the originals.');
      say('photo-status', 'Done: the job enhanced your photo while you were away.', 'ok');
    } catch (e) {
      say('photo-status', 'The photo job could not run: ' + e.message, 'error');
    } finally {
      photoButton.disabled = false;
    }
  });
})();
`;

export const APP_CSS = `:root{color-scheme:light;--ink:#1b1f24;--muted:#525a66;--line:#d5dae1;--accent:#1a56db;--ok:#12734a;--bad:#b42318;--bg:#f5f7fa;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.5;color:var(--ink);background:var(--bg)}
*{box-sizing:border-box}[hidden]{display:none!important}body{margin:0;overflow-wrap:anywhere}.wrap{max-width:60rem;margin:0 auto;padding:0 1rem}
.bar{background:#111827;color:#fff}.bar .wrap{display:flex;align-items:center;gap:.75rem;min-height:3.25rem}
.logo{font-weight:700;letter-spacing:.02em;font-size:1.15rem}.badge{font-size:.8rem;padding:.1rem .55rem;border:1px solid #ffffff55;border-radius:999px}
h1{font-size:clamp(1.45rem,4vw,2rem);line-height:1.2;margin:1.75rem 0 .5rem}.lead{color:var(--muted);max-width:46rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em;background:#eef1f5;padding:.05rem .3rem;border-radius:.3rem}
.card{background:#fff;border:1px solid var(--line);border-radius:1rem;padding:1.25rem 1.5rem;margin:1.25rem 0;box-shadow:0 1px 2px #0000000d}
.card.quiet{background:#fbfcfd}.card h2{display:flex;align-items:center;gap:.6rem;font-size:1.2rem;margin:0 0 .5rem}
.step{display:inline-grid;place-items:center;width:1.8rem;height:1.8rem;border-radius:50%;background:var(--accent);color:#fff;font-size:.95rem}
button.primary{font:inherit;font-weight:600;min-height:2.9rem;padding:.6rem 1.3rem;border-radius:.6rem;border:0;background:var(--accent);color:#fff;cursor:pointer}
button.primary:hover{background:#1648b8}button:disabled{background:#9aa5b5;cursor:not-allowed}
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}
.status{min-height:1.5em;margin:.75rem 0 0;color:var(--muted)}.status[data-kind=ok]{color:var(--ok);font-weight:600}.status[data-kind=error]{color:var(--bad);font-weight:600}
.profile{margin-top:1rem;border-top:1px solid var(--line);padding-top:1rem}.profile h3{margin:0 0 .75rem;font-size:1.05rem}
.who{display:flex;gap:.85rem;align-items:center}.who div{display:flex;flex-direction:column}.who span{color:var(--muted);word-break:break-all}
.avatar{display:grid;place-items:center;width:3rem;height:3rem;flex:none;border-radius:50%;background:#dbe6fd;color:var(--accent);font-weight:700;font-size:1.3rem}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.45rem 1rem;margin:1rem 0 0}.facts dt{color:var(--muted)}.facts dd{margin:0;min-width:0}
.pill{display:inline-block;padding:.05rem .6rem;border-radius:999px;background:#e7f6ee;color:var(--ok);font-weight:600}.pill[data-status=needs_consent],.pill[data-status=revoked]{background:#fdecea;color:var(--bad)}
.chips{list-style:none;display:flex;flex-wrap:wrap;gap:.35rem;margin:0;padding:0}.chips li{background:#eef1f5;border-radius:.4rem;padding:.05rem .5rem;font-size:.9rem}
.photos{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-top:1rem}.photos figure{margin:0}
.photos img,.placeholder{display:block;width:100%;height:auto;aspect-ratio:640/420;border-radius:.6rem;border:1px solid var(--line);background:#eef1f5}
.placeholder{display:grid;place-items:center;color:var(--muted)}.photos figcaption{margin-top:.35rem;font-weight:600}
.log{margin:0;padding-left:1.25rem;color:var(--muted)}.log li{margin:.2rem 0}
@media (max-width:40rem){.card{padding:1rem}.photos{grid-template-columns:1fr}.facts{grid-template-columns:1fr}.facts dd{margin-bottom:.4rem}button.primary{width:100%}}
`;

function esc(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
