import { undiciRequest, type HttpRequestLike } from '../../src/calls/index.js';
/**
 * A fetch that reaches loopback only: any other destination fails the call at once, so a test can
 * never talk to the internet by accident (STYLE: "an unexpected outbound request fails the test").
 */
export const loopbackFetch: typeof fetch = async (input, init) => {
  const url = new URL(input instanceof Request ? input.url : input.toString());
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new TypeError(`test tried to reach ${url.host}: only loopback is allowed`);
  }
  return fetch(input, init);
};

/** The same fence around the proxy's HTTP client (undici's request). */
export const loopbackRequest: HttpRequestLike = async (url, options) => {
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new TypeError(`test tried to reach ${url.host}: only loopback is allowed`);
  }
  return undiciRequest(url, options);
};
