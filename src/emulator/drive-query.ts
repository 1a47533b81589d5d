import type { DriveFile } from './drive-store.js';

/**
 * Drive v3's search language for `files.list` `q`, the terms apps use
 * (https://developers.google.com/drive/api/guides/search-files and
 * https://developers.google.com/drive/api/guides/ref-search-terms): terms joined by `and` / `or`,
 * negated with `not`, grouped with parentheses.
 *
 * - `'appDataFolder' in parents` (or the folder's id, or the v2 alias `appfolder`)
 * - `name` and `mimeType` with `=`, `!=`, `contains` (`name contains` matches a prefix, as Drive does)
 * - `modifiedTime` and `createdTime` with `<`, `<=`, `=`, `!=`, `>`, `>=` against an RFC 3339 date-time
 *   (UTC when it has no offset, as the reference says)
 * - `appProperties has { key='k' and value='v' }` and `properties has { … }`
 * - `trashed = true|false`, `starred = true|false` (nothing here is ever trashed or starred)
 *
 * Anything else is refused, so code that relies on an unemulated term fails here rather than passing
 * by accident. Returns null for a query Drive would answer `400 Invalid Value`.
 */
export function parseDriveQuery(q: string, isAppDataFolder: (id: string) => boolean): Filter | null {
  const tokens = tokenize(q);
  if (tokens === null) return null;
  if (tokens.length === 0) return () => true;
  const parser = new Parser(tokens, isAppDataFolder);
  try {
    const filter = parser.orExpression();
    return parser.done() ? filter : null;
  } catch (error) {
    if (error instanceof QueryError) return null;
    throw error;
  }
}

export type Filter = (file: DriveFile) => boolean;

type Token =
  | { kind: 'string'; value: string }
  | { kind: 'word'; value: string }
  | { kind: 'op'; value: string }
  | { kind: 'punct'; value: '(' | ')' | '{' | '}' };

class QueryError extends Error {}

function tokenize(q: string): Token[] | null {
  const tokens: Token[] = [];
  let i = 0;
  while (i < q.length) {
    const c = q[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      // Strings are single-quoted; `\'` and `\\` escape (ref-search-terms, "Query string escapes").
      let value = '';
      i++;
      for (;;) {
        if (i >= q.length) return null;
        const d = q[i]!;
        if (d === '\\') {
          if (i + 1 >= q.length) return null;
          value += q[i + 1];
          i += 2;
        } else if (d === "'") {
          i++;
          break;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push({ kind: 'string', value });
    } else if ('(){}'.includes(c)) {
      tokens.push({ kind: 'punct', value: c as '(' | ')' | '{' | '}' });
      i++;
    } else if ('=!<>'.includes(c)) {
      const two = q.slice(i, i + 2);
      const op = ['!=', '<=', '>='].includes(two) ? two : c;
      if (op === '!') return null;
      tokens.push({ kind: 'op', value: op });
      i += op.length;
    } else if (/[A-Za-z0-9_.]/.test(c)) {
      const start = i;
      while (i < q.length && /[A-Za-z0-9_.]/.test(q[i]!)) i++;
      tokens.push({ kind: 'word', value: q.slice(start, i) });
    } else {
      return null;
    }
  }
  return tokens;
}

const TIME_FIELDS = new Set(['modifiedTime', 'createdTime']);
const COMPARISONS = new Set(['<', '<=', '=', '!=', '>', '>=']);

class Parser {
  #at = 0;

  constructor(
    private readonly tokens: Token[],
    private readonly isAppDataFolder: (id: string) => boolean,
  ) {}

  done(): boolean {
    return this.#at === this.tokens.length;
  }

  orExpression(): Filter {
    const terms = [this.andExpression()];
    while (this.#word('or')) terms.push(this.andExpression());
    return terms.length === 1 ? terms[0]! : (f) => terms.some((t) => t(f));
  }

  andExpression(): Filter {
    const terms = [this.unary()];
    while (this.#word('and')) terms.push(this.unary());
    return terms.length === 1 ? terms[0]! : (f) => terms.every((t) => t(f));
  }

  unary(): Filter {
    if (this.#word('not')) {
      const inner = this.unary();
      return (f) => !inner(f);
    }
    if (this.#punct('(')) {
      const inner = this.orExpression();
      this.#expectPunct(')');
      return inner;
    }
    return this.term();
  }

  term(): Filter {
    const first = this.#next();
    if (first.kind === 'string') {
      // 'X' in parents
      if (!this.#word('in') || !this.#word('parents')) throw new QueryError();
      // Only the application data folder is emulated; other folders are refused, not guessed at.
      if (!this.isAppDataFolder(first.value)) throw new QueryError();
      return (f) => f.space === 'appDataFolder';
    }
    if (first.kind !== 'word') throw new QueryError();
    const field = first.value;
    if (field === 'name' || field === 'mimeType') {
      const op = this.#next();
      const isContains = op.kind === 'word' && op.value === 'contains';
      if (!isContains && (op.kind !== 'op' || (op.value !== '=' && op.value !== '!=')))
        throw new QueryError();
      const value = this.#string();
      if (isContains) return (f) => f[field].startsWith(value);
      return op.value === '=' ? (f) => f[field] === value : (f) => f[field] !== value;
    }
    if (TIME_FIELDS.has(field)) {
      const op = this.#next();
      if (op.kind !== 'op' || !COMPARISONS.has(op.value)) throw new QueryError();
      const at = parseRfc3339(this.#string());
      if (at === null) throw new QueryError();
      const key = field as 'modifiedTime' | 'createdTime';
      return (f) => compare(Date.parse(f[key]), op.value, at);
    }
    if (field === 'appProperties' || field === 'properties') {
      if (!this.#word('has')) throw new QueryError();
      this.#expectPunct('{');
      if (!this.#word('key')) throw new QueryError();
      this.#expectOp('=');
      const key = this.#string();
      if (!this.#word('and') || !this.#word('value')) throw new QueryError();
      this.#expectOp('=');
      const value = this.#string();
      this.#expectPunct('}');
      return (f) => f[field][key] === value;
    }
    if (field === 'trashed' || field === 'starred') {
      this.#expectOp('=');
      const value = this.#next();
      if (value.kind !== 'word' || (value.value !== 'true' && value.value !== 'false'))
        throw new QueryError();
      return value.value === 'false' ? () => true : () => false;
    }
    throw new QueryError();
  }

  #next(): Token {
    const token = this.tokens[this.#at];
    if (token === undefined) throw new QueryError();
    this.#at++;
    return token;
  }

  #word(value: string): boolean {
    const token = this.tokens[this.#at];
    if (token?.kind === 'word' && token.value.toLowerCase() === value) {
      this.#at++;
      return true;
    }
    return false;
  }

  #punct(value: string): boolean {
    const token = this.tokens[this.#at];
    if (token?.kind === 'punct' && token.value === value) {
      this.#at++;
      return true;
    }
    return false;
  }

  #expectPunct(value: string): void {
    if (!this.#punct(value)) throw new QueryError();
  }

  #expectOp(value: string): void {
    const token = this.#next();
    if (token.kind !== 'op' || token.value !== value) throw new QueryError();
  }

  #string(): string {
    const token = this.#next();
    if (token.kind !== 'string') throw new QueryError();
    return token.value;
  }
}

function compare(a: number, op: string, b: number): boolean {
  switch (op) {
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '>':
      return a > b;
    default:
      return a >= b;
  }
}

/** RFC 3339 date-time; without an offset it is UTC (ref-search-terms: "the default time zone is UTC"). */
export function parseRfc3339(value: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$/i.exec(value);
  if (m === null) return null;
  const millis = (m[7] ?? '.000').slice(0, 4).padEnd(4, '0');
  const text = `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${millis}${(m[8] ?? 'Z').toUpperCase()}`;
  const time = Date.parse(text);
  return Number.isNaN(time) ? null : time;
}

/**
 * `orderBy`: comma-separated keys, each ascending unless followed by `desc`
 * (https://developers.google.com/drive/api/reference/rest/v3/files/list). Every documented key is
 * accepted; one that is not documented is refused (null), as Drive refuses it.
 */
export function parseOrderBy(value: string): ((a: DriveFile, b: DriveFile) => number) | null {
  const keys: Array<{ compare: (a: DriveFile, b: DriveFile) => number; desc: boolean }> = [];
  for (const part of value.split(',')) {
    const m = /^\s*([A-Za-z_]+)(?:\s+(desc))?\s*$/.exec(part);
    const compare = m === null ? undefined : ORDER_KEYS[m[1]!];
    if (m === null || compare === undefined) return null;
    keys.push({ compare, desc: m[2] !== undefined });
  }
  return (a, b) => {
    for (const key of keys) {
      const order = key.compare(a, b);
      if (order !== 0) return key.desc ? -order : order;
    }
    return 0;
  };
}

const byTime = (field: 'createdTime' | 'modifiedTime') => (a: DriveFile, b: DriveFile) =>
  Date.parse(a[field]) - Date.parse(b[field]);
const natural = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const alphabetical = new Intl.Collator('en', { sensitivity: 'base' });
const none = () => 0;

/**
 * The documented keys. The app is the only one who modifies its files here, so `modifiedByMeTime`
 * and `recency` follow `modifiedTime`; nothing is ever starred, shared with the user or viewed in
 * the Drive UI, so those keys leave the order as it is.
 */
const ORDER_KEYS: Record<string, ((a: DriveFile, b: DriveFile) => number) | undefined> = {
  createdTime: byTime('createdTime'),
  modifiedTime: byTime('modifiedTime'),
  modifiedByMeTime: byTime('modifiedTime'),
  recency: byTime('modifiedTime'),
  name: (a, b) => alphabetical.compare(a.name, b.name),
  name_natural: (a, b) => natural.compare(a.name, b.name),
  folder: (a, b) => Number(b.mimeType === FOLDER) - Number(a.mimeType === FOLDER),
  quotaBytesUsed: (a, b) => a.content.length - b.content.length,
  starred: none,
  sharedWithMeTime: none,
  viewedByMeTime: none,
};
const FOLDER = 'application/vnd.google-apps.folder';
