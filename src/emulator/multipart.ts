/**
 * Parses a `multipart/related` body (RFC 2387; Drive's multipart upload,
 * https://developers.google.com/drive/api/guides/manage-uploads#multipart): the first part is JSON
 * metadata, the second the media. Written here because common multipart libraries handle
 * multipart/form-data only. Returns null when the body is not well-formed.
 */
export function parseMultipartRelated(
  contentType: string,
  body: Buffer,
): { metadata: unknown; media: Buffer; mediaType: string } | null {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const value = boundary?.[1] ?? boundary?.[2];
  if (value === undefined || value.length > 200) return null;
  const delimiter = Buffer.from(`--${value}`);
  const parts: Buffer[] = [];
  let position = body.indexOf(delimiter);
  if (position === -1) return null;
  for (;;) {
    const start = position + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next === -1) return null;
    // A part runs from after the delimiter's line break to before the next delimiter's line break.
    let partStart = start;
    if (body[partStart] === 0x0d && body[partStart + 1] === 0x0a) partStart += 2;
    else if (body[partStart] === 0x0a) partStart += 1;
    let partEnd = next;
    if (body[partEnd - 2] === 0x0d && body[partEnd - 1] === 0x0a) partEnd -= 2;
    else if (body[partEnd - 1] === 0x0a) partEnd -= 1;
    parts.push(body.subarray(partStart, partEnd));
    position = next;
    if (parts.length > 2) return null;
  }
  if (parts.length !== 2) return null;
  const [metaPart, mediaPart] = parts.map(splitPart) as [
    ReturnType<typeof splitPart>,
    ReturnType<typeof splitPart>,
  ];
  if (metaPart === null || mediaPart === null) return null;
  let metadata: unknown;
  try {
    metadata = JSON.parse(metaPart.body.toString('utf8'));
  } catch {
    return null;
  }
  return {
    metadata,
    media: mediaPart.body,
    mediaType: mediaPart.headers['content-type'] ?? 'application/octet-stream',
  };
}

function splitPart(part: Buffer): { headers: Record<string, string>; body: Buffer } | null {
  let end = part.indexOf('\r\n\r\n');
  let skip = 4;
  if (end === -1) {
    end = part.indexOf('\n\n');
    skip = 2;
  }
  if (end === -1) return null;
  const headers: Record<string, string> = {};
  for (const line of part.subarray(0, end).toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body: part.subarray(end + skip) };
}
