import type { FastifyInstance } from 'fastify';

/**
 * `GET /gsi/client`: a stand-in for Google Identity Services' library
 * (https://accounts.google.com/gsi/client), the part a web app uses to get a server auth code: the
 * code client in popup mode (https://developers.google.com/identity/oauth2/web/guides/use-code-model,
 * reference https://developers.google.com/identity/oauth2/web/reference/js-reference). A page that
 * loads this script instead of Google's runs its own sign-in code unchanged against the emulator.
 *
 * `requestCode()` opens the emulator's authorization endpoint in a popup with
 * `redirect_uri=postmessage` and the page's origin; the consent page (consent-page.ts) checks that
 * origin against the client's JavaScript origins and posts the answer to the opener, targeted at
 * that origin only. The script accepts only messages from that popup and the emulator's origin.
 */
export function registerGsiClient(app: FastifyInstance, baseUrl: () => string): void {
  app.get('/gsi/client', async (_request, reply) =>
    reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(gsiClientScript(baseUrl())),
  );
}

/** The script's text; `fallbackBase` is used when the script cannot tell where it was loaded from. */
export function gsiClientScript(fallbackBase: string): string {
  return `/* Google Identity Services code client, emulated by behalf (popup mode only). */
(function () {
  'use strict';
  var base = ${JSON.stringify(fallbackBase)};
  try {
    if (document.currentScript && document.currentScript.src) base = new URL(document.currentScript.src).origin;
  } catch (e) { /* keep the fallback */ }
  var POPUP_FEATURES = 'popup,width=500,height=640';
  var RESPONSE_FIELDS = ['code', 'scope', 'state', 'authuser', 'prompt', 'hd', 'error', 'error_description', 'error_uri'];

  window.google = window.google || {};
  window.google.accounts = window.google.accounts || {};
  var oauth2 = (window.google.accounts.oauth2 = window.google.accounts.oauth2 || {});

  oauth2.initCodeClient = function (config) {
    if (config === null || typeof config !== 'object') throw new TypeError('initCodeClient: a config object is required.');
    return {
      requestCode: function () {
        requestCode(config);
      },
    };
  };

  function requestCode(config) {
    // Google's library reports a missing required parameter in the console and opens nothing
    // (https://developers.google.com/identity/oauth2/web/guides/error).
    var missing = ['client_id', 'scope'].filter(function (name) {
      return typeof config[name] !== 'string' || config[name] === '';
    });
    if (missing.length > 0) {
      console.error('[GSI_LOGGER-OAUTH2_CLIENT]: Missing required parameter: ' + missing.join(', '));
      return;
    }
    if (config.ux_mode !== undefined && config.ux_mode !== 'popup') {
      console.error('[behalf emulator]: only ux_mode "popup" is emulated.');
      return;
    }
    if (typeof config.callback !== 'function') {
      console.error('[GSI_LOGGER-OAUTH2_CLIENT]: Missing required parameter: callback');
      return;
    }
    var params = new URLSearchParams({
      client_id: config.client_id,
      scope: config.scope,
      redirect_uri: 'postmessage',
      response_type: 'code',
      origin: window.location.origin,
      include_granted_scopes: config.include_granted_scopes === false ? 'false' : 'true',
      // The code model's code is for the backend's access and refresh tokens
      // (https://developers.google.com/identity/oauth2/web/guides/use-code-model): offline access.
      access_type: 'offline',
    });
    if (typeof config.state === 'string') params.set('state', config.state);
    if (typeof config.login_hint === 'string') params.set('login_hint', config.login_hint);
    if (typeof config.hd === 'string') params.set('hd', config.hd);
    if (config.select_account === true) params.set('prompt', 'select_account');

    var popup = null;
    try {
      popup = window.open(base + '/o/oauth2/v2/auth?' + params.toString(), 'g_auth_code_window', POPUP_FEATURES);
    } catch (e) {
      popup = null;
    }
    if (!popup) {
      fail(config, 'popup_failed_to_open', 'Failed to open popup window');
      return;
    }

    var finished = false;
    var watcher = setInterval(function () {
      // The opener closes the popup itself once an answer arrives, so a closed popup means the
      // user closed it first.
      if (!finished && popup.closed) {
        finish();
        fail(config, 'popup_closed', 'Popup window closed');
      }
    }, 250);
    function finish() {
      finished = true;
      clearInterval(watcher);
      window.removeEventListener('message', onMessage);
    }
    function onMessage(event) {
      if (finished || event.origin !== base || event.source !== popup) return;
      var data = event.data;
      if (data === null || typeof data !== 'object') return;
      if (typeof data.code !== 'string' && typeof data.error !== 'string') return;
      finish();
      try {
        popup.close();
      } catch (e) { /* already gone */ }
      var response = {};
      RESPONSE_FIELDS.forEach(function (name) {
        if (typeof data[name] === 'string') response[name] = data[name];
      });
      config.callback(response);
    }
    window.addEventListener('message', onMessage);
  }

  function fail(config, type, message) {
    if (typeof config.error_callback === 'function') config.error_callback({ type: type, message: message });
  }

  if (typeof window.onGoogleLibraryLoad === 'function') window.onGoogleLibraryLoad();
})();
`;
}
