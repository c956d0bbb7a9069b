/** A response body read up to a size cap; the rest is not downloaded. */
export interface CappedBody {
  text: string;
  /** True when the body was longer than the cap and was cut. */
  truncated: boolean;
}

/**
 * Reads at most `maxBytes` of `response`'s body and cancels the rest, so a huge or endless answer
 * cannot fill the triggerer's memory. Decodes as UTF-8.
 */
export async function readCappedBody(response: Response, maxBytes: number): Promise<CappedBody> {
  if (!response.body) return { text: '', truncated: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.byteLength > maxBytes) {
        chunks.push(value.subarray(0, maxBytes - size));
        size = maxBytes;
        truncated = true;
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
  } finally {
    if (truncated) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  return { text: new TextDecoder().decode(Buffer.concat(chunks)), truncated };
}

/** The first `maxChars` characters of `text`, whitespace collapsed: for error messages. */
export function excerpt(text: string, maxChars = 500): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > maxChars ? `${flat.slice(0, maxChars)}…` : flat;
}
