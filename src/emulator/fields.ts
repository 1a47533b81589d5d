/**
 * Google's partial-response `fields` syntax: `id,name`, `nextPageToken,files(id,name)`,
 * `files/name`, `*`. Returns null for a malformed selector (Drive answers 400 to those).
 */
export type FieldTree = Map<string, FieldTree | true>;

export function parseFields(selector: string): FieldTree | null {
  const tree: FieldTree = new Map();
  let i = 0;
  const parseList = (into: FieldTree, closing: string | undefined): boolean => {
    for (;;) {
      const start = i;
      while (i < selector.length && /[A-Za-z0-9_*/]/.test(selector[i]!)) i++;
      const name = selector.slice(start, i).trim();
      if (name === '') return false;
      const path = name.split('/');
      let node = into;
      for (const [index, part] of path.entries()) {
        if (part === '') return false;
        const last = index === path.length - 1;
        if (last && selector[i] !== '(') {
          if (!node.has(part)) node.set(part, true);
        } else {
          let child = node.get(part);
          if (child === undefined || child === true) {
            child = new Map();
            node.set(part, child);
          }
          node = child;
        }
      }
      if (selector[i] === '(') {
        i++;
        if (!parseList(node, ')')) return false;
        if (selector[i] !== ')') return false;
        i++;
      }
      while (selector[i] === ' ') i++;
      if (selector[i] === ',') {
        i++;
        while (selector[i] === ' ') i++;
        continue;
      }
      return closing === undefined ? i === selector.length : selector[i] === closing;
    }
  };
  return parseList(tree, undefined) ? tree : null;
}

export function applyFields(value: unknown, tree: FieldTree | true): unknown {
  if (tree === true || tree.has('*')) return value;
  if (Array.isArray(value)) return value.map((item) => applyFields(item, tree));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of tree) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) out[key] = applyFields(v, sub);
  }
  return out;
}
