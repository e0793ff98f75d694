// Sign-in with the organisation's identity provider: OAuth 2.0 authorization code with PKCE (RFC 7636), the
// flow for a public client (the page holds no secret). The verifier and state wait in sessionStorage while
// the browser is at the provider; the access token it brings back is kept there too (credential.ts).
//
// The code is exchanged at the provider's token endpoint, another origin: the page's Content-Security-Policy
// (`connect-src`) lists that origin when TWIN_OIDC_TOKEN_URL is set (twin/gate.py, content_security_policy).
import type { OidcConfig } from './api';
import { saveToken } from './credential';

const PENDING = 'twin.oidc.pending';
const RETURN_PARAMS = ['code', 'state', 'error', 'error_description', 'session_state', 'iss'];

interface Pending {
  verifier: string;
  state: string;
  hash: string;
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(bytes: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** Where the provider sends the browser back: this page, without its query (registered with the provider). */
function redirectUri(): string {
  return `${window.location.origin}${window.location.pathname}`;
}

/** Off to the provider's sign-in page. */
export async function startOidcSignIn(config: OidcConfig): Promise<void> {
  if (!crypto.subtle) throw new Error('PKCE needs a secure context (https, or localhost)');
  const verifier = random(32);
  const state = random(16);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const pending: Pending = { verifier, state, hash: window.location.hash };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const url = new URL(config.authorization_endpoint);
  for (const [k, v] of Object.entries({
    response_type: 'code', client_id: config.client_id, redirect_uri: redirectUri(), scope: 'openid',
    state, code_challenge: challenge, code_challenge_method: 'S256',
  })) url.searchParams.set(k, v);
  window.location.assign(url.toString());
}

/**
 * Back from the provider (`?code=…&state=…`): the code exchanged for an access token, which is kept.
 * False when this load is not a return from the provider; throws when the sign-in did not work.
 */
export async function completeOidcSignIn(config: OidcConfig | null): Promise<boolean> {
  const params = new URLSearchParams(window.location.search);
  if (!params.has('code') && !params.has('error')) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as Pending | null;
  sessionStorage.removeItem(PENDING);
  // The code is single-use and the address bar should not keep it: the page's own URL back, with its view.
  const rest = new URLSearchParams(params);
  for (const name of RETURN_PARAMS) rest.delete(name);
  history.replaceState(null, '', `${window.location.pathname}${rest.size ? `?${rest}` : ''}${pending?.hash ?? window.location.hash}`);
  if (params.has('error')) throw new Error(params.get('error_description') ?? params.get('error')!);
  if (!config || !pending || params.get('state') !== pending.state) throw new Error('the sign-in answer does not match the request (state)');
  const response = await fetch(config.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: params.get('code')!, redirect_uri: redirectUri(),
      client_id: config.client_id, code_verifier: pending.verifier,
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok || typeof body.access_token !== 'string') {
    throw new Error(body.error_description ?? body.error ?? `${response.status} ${response.statusText}`);
  }
  saveToken(body.access_token);
  return true;
}
