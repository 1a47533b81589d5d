import { describe, expect, it } from 'vitest';
import { escapeHtml, html, query, segment } from '../../src/admin/html.js';

describe('console HTML', () => {
  it('escapes every interpolated value for text and double-quoted attributes, and nests fragments as they are', () => {
    const hostile = `"><script>alert('x')</script>&`;
    expect(html`<p title="${hostile}">${hostile}</p>`.value).toBe(
      '<p title="&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;">&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</p>',
    );
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p>${inner}${[inner, 'a<b']}</p>`.value).toBe(
      '<p><b>&lt;i&gt;</b><b>&lt;i&gt;</b>a&lt;b</p>',
    );
    expect(html`${null}${undefined}${false}${0}`.value).toBe('0');
    expect(escapeHtml('&amp;')).toBe('&amp;amp;');
  });

  it('builds path segments and query strings encoded, leaving out empty values', () => {
    expect(segment('a/b?c#d')).toBe('a%2Fb%3Fc%23d');
    expect(query({ q: 'a@b c&d', status: undefined, after: '' })).toBe('?q=a%40b+c%26d');
    expect(query({})).toBe('');
  });
});
