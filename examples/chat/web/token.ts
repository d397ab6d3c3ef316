// The pages' credential, from `GET /token?name=`: a JWT that lasts `--token-ttl` when the chat's tokens
// expire, else the user name itself. The SDK asks for it before each connection and before each in-band
// refresh.

/** A token for `name`; rejects when the server refuses the name. */
export async function tokenFor(name: string): Promise<string> {
  const response = await fetch(`/token?name=${encodeURIComponent(name)}`);
  const text = await response.text();
  if (!response.ok) throw new Error(text || `HTTP ${response.status}`);
  return text;
}

/** The socket's URL on the page's own host, without a token (the SDK adds it). */
export function socketUrl(): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}
