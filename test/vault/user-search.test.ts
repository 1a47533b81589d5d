import { describe, expect, it } from 'vitest';
import { prefixUpperBound } from '../../src/vault/user-search.js';

/** The end of an email-prefix range (issue 13): every string with the prefix sorts below it, in byte order. */
describe('prefixUpperBound', () => {
  it('increments the last code point, skipping the surrogates, and drops a last one that cannot grow', () => {
    expect(prefixUpperBound('alice')).toBe('alicf');
    expect(prefixUpperBound('a@')).toBe('aA');
    expect(prefixUpperBound('a\ud7ff')).toBe('a\ue000');
    expect(prefixUpperBound('a\u{10ffff}')).toBe('b');
    expect(prefixUpperBound('\u{10ffff}\u{10ffff}')).toBeNull();
    expect(prefixUpperBound('')).toBeNull();
  });

  it('is above every string that starts with the prefix, and not above the next one, in UTF-8 byte order', () => {
    const bytes = (s: string) => Buffer.from(s, 'utf8');
    for (const prefix of ['ali', 'é', 'z', 'a\u{1f600}']) {
      const bound = bytes(prefixUpperBound(prefix)!);
      for (const tail of ['', 'a', '\u{10ffff}', '\uffff', 'zzzz']) expect(Buffer.compare(bytes(prefix + tail), bound)).toBe(-1);
      expect(Buffer.compare(bound, bytes(prefix))).toBe(1);
    }
  });
});
