// The credential every request to the Twin server carries, and only requests to the Twin server.
//
// An API key lives in localStorage (`twin.credential`): a reload, or a wall restarting overnight, stays
// signed in. An OIDC access token lives in sessionStorage: it is short-lived and ends with the tab. A token
// wins over a key when both are there; signing in with one forgets the other. The credential goes only to
// this page's own origin, never to another one (a `?scenes=` URL, a camera's snapshot link, an identity
// provider): the server is the only party it is meant for.

export type Credential = { scheme: 'key' | 'bearer'; value: string };

export const KEY_STORAGE = 'twin.credential';
export const TOKEN_STORAGE = 'twin.token';

function read(storage: () => Storage, name: string): string | null {
  try {
    return storage().getItem(name);
  } catch {
    return null; // storage disabled (a locked-down browser profile): signed out, not broken
  }
}

function write(storage: () => Storage, name: string, value: string | null): void {
  try {
    if (value === null) storage().removeItem(name);
    else storage().setItem(name, value);
  } catch { /* see `read` */ }
}

const local = () => window.localStorage;
const session = () => window.sessionStorage;

/** The credential in use now (read at each request, so a sign-in applies to the next tile at once). */
export function currentCredential(): Credential | null {
  const token = read(session, TOKEN_STORAGE);
  if (token) return { scheme: 'bearer', value: token };
  const key = read(local, KEY_STORAGE);
  return key ? { scheme: 'key', value: key } : null;
}

export function saveKey(key: string): void {
  write(session, TOKEN_STORAGE, null);
  write(local, KEY_STORAGE, key);
}

export function saveToken(token: string): void {
  write(local, KEY_STORAGE, null);
  write(session, TOKEN_STORAGE, token);
}

export function forgetCredential(): void {
  write(local, KEY_STORAGE, null);
  write(session, TOKEN_STORAGE, null);
}

export function sameOrigin(url: string): boolean {
  try {
    return new URL(url, window.location.href).origin === window.location.origin;
  } catch {
    return false;
  }
}

/** The header that carries `credential` to `url`: none when there is no credential or `url` is another origin's. */
export function credentialHeaders(url: string, credential: Credential | null = currentCredential()): Record<string, string> {
  if (!credential || !sameOrigin(url)) return {};
  return credential.scheme === 'key' ? { 'X-API-Key': credential.value } : { Authorization: `Bearer ${credential.value}` };
}

/** MapLibre's `transformRequest`: styles, TileJSON, tiles, GeoJSON data and glyphs of our origin get the header. */
export function transformRequest(url: string): { url: string; headers?: Record<string, string> } | undefined {
  const headers = credentialHeaders(url);
  return Object.keys(headers).length ? { url, headers } : undefined;
}

/**
 * A key given in the page's fragment (`/wall#key=…`, how a wall is configured without typing): kept in
 * localStorage and taken out of the address bar at once, so it is not left in the history, a screenshot of
 * the URL or a bookmark. A fragment is never sent to the server, so the key is in no access log either.
 * The value is form-decoded: a key with `+`, `&` or `%` in it is given percent-encoded (`twin keys add`
 * keys never have them). Returns whether one was there.
 */
export function adoptKeyFromFragment(name = 'key'): boolean {
  const params = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const key = params.get(name);
  if (key === null) return false;
  params.delete(name);
  const rest = params.toString();
  history.replaceState(history.state, '', `${window.location.pathname}${window.location.search}${rest ? `#${rest}` : ''}`);
  if (key.trim()) saveKey(key.trim());
  return key.trim() !== '';
}
