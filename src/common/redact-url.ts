/*
 * What a log line or an error may show of an HTTP URL: scheme, host, port and path. Credentials
 * (`user:pass@`) and the query string (`?token=…`, `?api_key=…`) are where secrets travel, and the
 * fragment is nobody's business; none of them is ever shown.
 */

/** The text that replaces a secret value found in a message. */
export const REDACTED = '[redacted]';

/** `scheme://host:port/path` of `url`: no userinfo, no query, no fragment. Text that is not a URL is cut the same way. */
export function redactUrl(url: URL | string): string {
  if (typeof url === 'string') {
    if (!URL.canParse(url)) return redactUnparsed(url);
    url = new URL(url);
  }
  return `${url.protocol}//${url.host}${url.pathname}`;
}

/** `text` with every http(s) URL in it redacted (an error message from `fetch`, a response body). */
export function redactUrlsInText(text: string): string {
  return text.replace(/\bhttps?:\/\/[^\s"'<>`]+/gi, (found) => redactUrl(found));
}

/**
 * A function that redacts URLs in a text and replaces every occurrence of `secrets` (values shorter
 * than 4 characters are ignored: they would blank out ordinary words) with `[redacted]`: for a
 * message that may quote them back, as a server's error body quoting the request does.
 */
export function redactor(secrets: Iterable<string>): (text: string) => string {
  const values = new Set<string>();
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    values.add(secret);
    values.add(encodeURIComponent(secret));
  }
  // Longest first, so a secret that contains another is replaced whole.
  const ordered = [...values].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = redactUrlsInText(text);
    for (const value of ordered) out = out.split(value).join(REDACTED);
    return out;
  };
}

/** A URL-ish string `URL` cannot parse: drop anything up to an `@` after the scheme, and from `?` or `#` on. */
function redactUnparsed(text: string): string {
  const noQuery = text.replace(/[?#].*$/s, '');
  return noQuery.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/@]*@/i, '$1');
}
