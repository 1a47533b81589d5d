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
  // JSON.parse folds duplicate keys into one: more keys in the text than in the object means a
  // duplicate. Counting is one pass over the text, with no allocation (this is on the hot path).
  return countTopLevelKeys(text) === Object.keys(value).length
    ? (value as Record<string, unknown>)
    : undefined;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

function isEscaped(text: string, quote: number): boolean {
  let backslashes = 0;
  while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
  return backslashes % 2 === 1;
}

/** Keys of the top-level object in valid JSON text (JSON.parse has already checked it). */
function countTopLevelKeys(text: string): number {
  let keys = 0;
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // To the closing quote: the next quote not escaped (an odd run of backslashes before it).
      // indexOf skips the string's characters natively; most of a token's text is strings.
      let j = text.indexOf('"', i + 1);
      while (isEscaped(text, j)) j = text.indexOf('"', j + 1);
      if (depth === 1 && expectKey) {
        keys++;
        expectKey = false;
      }
      i = j;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    } else if (c === COMMA && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}
