/** Header lines of `curl -D -` output, lower-cased names, the status line first. */
export function parseHeaders(raw: string): { status: number; headers: Map<string, string> } {
  const lines = raw.trim().split(/\r?\n/);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(lines[0]?.split(' ')[1]), headers };
}
