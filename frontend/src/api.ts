// Twin's HTTP API as the client uses it: OGC API Features (present), Tiles/Styles/Rasters (probed, optional),
// and who is signed in (/auth). Every request carries the credential (see credential.ts).
import { Credential, credentialHeaders, currentCredential } from './credential';

export type LayerKind =
  | 'admin_area' | 'address_point' | 'address' | 'parcel' | 'infrastructure'
  | 'camera' | 'sensor' | 'vessel' | 'incident' | 'generic';

export interface Collection {
  id: string;
  title: string;
  description?: string;
  'twin:kind'?: LayerKind;
  extent?: { spatial?: { bbox?: number[][] } };
  links: { href: string; rel: string; type?: string }[];
}

export interface QueryableProperty {
  type?: string;
  title?: string;
  format?: string;
  enum?: (string | number)[];
}

export interface Queryables {
  properties: Record<string, QueryableProperty>;
  geometryType: string | null;
}

export type Geometry = { type: string; coordinates: any };

export interface Feature {
  type: 'Feature';
  id: number | string;
  geometry: Geometry | null;
  properties: Record<string, unknown>;
}

export interface FeaturePage {
  features: Feature[];
  numberMatched?: number;
  numberReturned: number;
  next?: string;
}

export interface ItemsQuery {
  filter?: string;
  bbox?: [number, number, number, number];
  limit?: number;
  properties?: string[];
}

export class HttpError extends Error {
  /** `detail` is the problem's own explanation (RFC 9457), shown to the user as it is. */
  constructor(readonly status: number, message: string, readonly detail: string = message) {
    super(message);
  }
}

/** A fetch to the Twin server with the credential (`credential` given: that one instead, or none when null). */
export async function request(url: string, init: RequestInit = {}, credential: Credential | null = currentCredential()): Promise<Response> {
  const headers = { ...(init.headers as Record<string, string> | undefined), ...credentialHeaders(url, credential) };
  const response = await fetch(url, { ...init, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const problem = await response.json();
      detail = problem.detail ?? problem.title ?? detail;
    } catch { /* not JSON */ }
    throw new HttpError(response.status, `${response.status} ${detail}`, detail);
  }
  return response;
}

/** Fetch JSON; a network failure or a 5xx is a thrown error, a 404 too (callers probing use `probe`). */
export async function getJson<T>(url: string, timeoutMs = 20000, credential: Credential | null = currentCredential()): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await request(url, { headers: { Accept: 'application/json' }, signal: controller.signal }, credential);
    return (await response.json()) as T;
  } finally {
    clearTimeout(timer);
  }
}

/** A resource the server may not offer yet (tiles, styles, rasters): null on 404/405/501 or bad JSON. */
export async function probe<T>(url: string): Promise<T | null> {
  try {
    return await getJson<T>(url, 8000);
  } catch (error) {
    if (error instanceof HttpError && error.status < 500) return null;
    if (error instanceof SyntaxError) return null;
    throw error;
  }
}

export function absolute(path: string): string {
  return new URL(path, window.location.origin).toString();
}

export async function listCollections(): Promise<Collection[]> {
  const body = await getJson<{ collections: Collection[] }>('/collections');
  return body.collections;
}

const queryablesCache = new Map<string, Promise<Queryables>>();

/** After a sign-in or out: what a layer offers (its sensitive fields, say) depends on who asks. */
export function forgetCachedAnswers(): void {
  queryablesCache.clear();
}

export function queryables(collectionId: string): Promise<Queryables> {
  let cached = queryablesCache.get(collectionId);
  if (!cached) {
    cached = getJson<{ properties: Record<string, QueryableProperty> }>(
      `/collections/${encodeURIComponent(collectionId)}/queryables`,
    ).then((body) => {
      const properties: Record<string, QueryableProperty> = {};
      let geometryType: string | null = null;
      for (const [name, schema] of Object.entries(body.properties ?? {})) {
        if (schema.format?.startsWith('geometry')) geometryType = schema.format.replace('geometry-', '');
        else properties[name] = schema;
      }
      return { properties, geometryType };
    });
    cached.catch(() => queryablesCache.delete(collectionId));
    queryablesCache.set(collectionId, cached);
  }
  return cached;
}

export function itemsUrl(collectionId: string, query: ItemsQuery, format?: 'csv'): string {
  const params = new URLSearchParams();
  params.set('limit', String(query.limit ?? 100));
  if (query.filter) {
    params.set('filter', query.filter);
    params.set('filter-lang', 'cql2-text');
  }
  if (query.bbox) params.set('bbox', query.bbox.map((v) => v.toFixed(6)).join(','));
  if (query.properties) params.set('properties', query.properties.join(','));
  if (format) params.set('f', format);
  return `/collections/${encodeURIComponent(collectionId)}/items?${params}`;
}

interface RawPage {
  features: Feature[];
  numberMatched?: number;
  numberReturned: number;
  links?: { rel: string; href: string }[];
}

function toPage(body: RawPage): FeaturePage {
  const next = body.links?.find((link) => link.rel === 'next')?.href;
  return { features: body.features, numberMatched: body.numberMatched, numberReturned: body.numberReturned, next };
}

export async function items(collectionId: string, query: ItemsQuery): Promise<FeaturePage> {
  return toPage(await getJson<RawPage>(itemsUrl(collectionId, query)));
}

/** Follow a `next` link (the server writes absolute URLs; keep our origin in case it is proxied). */
export async function nextPage(next: string): Promise<FeaturePage> {
  const url = new URL(next);
  return toPage(await getJson<RawPage>(url.pathname + url.search));
}

/** Every feature of a query, page by page (pages of at most 5,000), up to `cap` features. */
export async function allItems(collectionId: string, query: ItemsQuery, cap = 50000): Promise<Feature[]> {
  let page = await items(collectionId, { ...query, limit: Math.min(query.limit ?? 5000, 5000) });
  const out = [...page.features];
  while (page.next && out.length < cap) {
    page = await nextPage(page.next);
    out.push(...page.features);
  }
  return out.slice(0, cap);
}

export async function item(collectionId: string, fid: string | number): Promise<Feature> {
  return getJson<Feature>(`/collections/${encodeURIComponent(collectionId)}/items/${encodeURIComponent(String(fid))}`);
}

export interface TileJson {
  tilejson?: string;
  tiles: string[];
  minzoom?: number;
  maxzoom?: number;
  bounds?: number[];
  encoding?: string;
  vector_layers?: { id: string }[];
}

export function tileJsonUrl(collectionId: string): string {
  return `/collections/${encodeURIComponent(collectionId)}/tiles/WebMercatorQuad/tilejson.json`;
}

export interface RasterInfo {
  id: string;
  title?: string;
  kind?: string;
}

/** The rasters the server offers, or [] while `/rasters` does not exist. */
export async function listRasters(): Promise<RasterInfo[]> {
  const body = await probe<{ rasters?: RasterInfo[] } | RasterInfo[]>('/rasters');
  if (!body) return [];
  return Array.isArray(body) ? body : body.rasters ?? [];
}

/** Who the server takes the request to be: `/auth/me`. */
export interface Principal {
  principal: string;
  roles: string[];
  areas: string[];
  signed_in: boolean;
  admin: boolean;
  layers: string[];
}

export interface OidcConfig {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  client_id: string;
}

export interface AuthConfig {
  api_key: boolean;
  oidc: OidcConfig | null;
  roles: string[];
}

/** The principal of the current credential, or of `credential` (a key being tried before it is kept). */
export function whoAmI(credential: Credential | null = currentCredential()): Promise<Principal> {
  return getJson<Principal>('/auth/me', 10000, credential);
}

/** How to sign in; asked without a credential, which a stored but revoked one would make a 401. */
export function authConfig(): Promise<AuthConfig> {
  return getJson<AuthConfig>('/auth/config', 10000, null);
}
