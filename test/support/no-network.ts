import { undiciRequest, type HttpRequestLike } from '../../src/calls/index.js';

/**
 * Any destination but loopback fails the call at once, so a test can never talk to the internet by
 * accident (STYLE: "an unexpected outbound request fails the test").
 */
function assertLoopback(url: URL): void {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new TypeError(`test tried to reach ${url.host}: only loopback is allowed`);
  }
}

/** A fetch that reaches loopback only. */
export const loopbackFetch: typeof fetch = async (input, init) => {
  assertLoopback(new URL(input instanceof Request ? input.url : input.toString()));
  return fetch(input, init);
};

/** The same fence around the proxy's HTTP client (undici's request). */
export const loopbackRequest: HttpRequestLike = async (url, options) => {
  assertLoopback(url);
  return undiciRequest(url, options);
};
