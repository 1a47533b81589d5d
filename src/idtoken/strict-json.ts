/**
 * JSON.parse silently keeps the last of two duplicate keys, so `{"aud":"mine","aud":"theirs"}`
 * means different things to different parsers. A token whose header or payload repeats a key is
 * refused. This checks only the top level's keys (JWT claims and headers are flat where it
 * matters), by scanning the text once with a small state machine; JSON.parse still does the parse.
 */
export function parseJsonObjectStrict(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return hasDuplicateTopLevelKey(text) ? undefined : (value as Record<string, unknown>);
}

function hasDuplicateTopLevelKey(text: string): boolean {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      // Read the whole string (valid JSON, already checked by JSON.parse).
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (seen.has(key)) return true;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return false;
}
