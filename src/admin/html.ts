/**
 * HTML for the admin console, escaped by construction: `html` is a tagged template whose
 * interpolations are escaped unless they are themselves `html` fragments. Every attribute in the
 * console's templates is double-quoted, so escaping `&<>"'` covers text and attribute values
 * alike. URLs are only ever built from fixed paths and `encodeURIComponent`, never taken whole from
 * data (a stored picture URL is shown as text), so no `javascript:` URL can reach an href.
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** A fragment of HTML that is already safe to insert as is. */
export class SafeHtml {
  constructor(readonly value: string) {}

  toString(): string {
    return this.value;
  }
}

/** What may be interpolated: text (escaped), fragments (as is), lists of either, or nothing. */
export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  // null, undefined and false render as nothing, so `${cond && html`…`}` reads naturally.
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/** `html\`<p>${name}</p>\``: the values are escaped, fragments nest. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** A path segment for a URL inside the console (`/admin/users/${segment(sub)}`). */
export function segment(value: string): string {
  return encodeURIComponent(value);
}

/** A query string from the entries that have a value: `?q=a%40b&status=active`, or '' when none. */
export function query(params: Record<string, string | undefined>): string {
  const entries = Object.entries(params).filter(
    (entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '',
  );
  return entries.length === 0 ? '' : `?${new URLSearchParams(entries).toString()}`;
}
