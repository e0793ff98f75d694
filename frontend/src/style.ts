// The map style: the server's `/styles/default` when it has one, otherwise one built here from /collections.
//
// Both follow one contract (source id = layer id; style layer ids `<layer>-fill|line|circle|extrusion|count`;
// `metadata["twin:layer"]` and `["twin:kind"]`), so the layer tree, legend, popups and queries never care
// which one is in use. The basemap is Twin's own layers: sea as the background, wards as land, roads, parcels.
import type { LayerSpecification, SourceSpecification, StyleSpecification } from 'maplibre-gl';
import { absolute, Collection, items, probe, tileJsonUrl, TileJson } from './api';

export type Theme = 'light' | 'dark';

const EMPTY_POINTS: SourceSpecification = { type: 'geojson', data: { type: 'FeatureCollection', features: [] } };

export const GLYPHS_URL = '/assets/glyphs/{fontstack}/{range}.pbf';
export const FONT = ['DejaVu Sans Book'];
export const FONT_BOLD = ['DejaVu Sans Bold'];

const PALETTE = {
  light: { sea: '#a9cfe5', land: '#f3efe4', ward: '#8a6d9e', label: '#3b3340', halo: '#ffffff', road: '#ffffff', roadCase: '#c2b59b' },
  dark: { sea: '#07111f', land: '#142235', ward: '#5fa8d3', label: '#d6e6f5', halo: '#07111f', road: '#3d5a80', roadCase: '#0b1a2c' },
};

const LAYER_COLORS: Record<string, string> = {
  street_lights: '#f5b700',
  drainage: '#3a86c8',
  cameras: '#d7263d',
  sensors: '#2a9d8f',
  vessels: '#1d4e89',
  vessel_tracks: '#5c8dbd',
  address_points: '#6c757d',
  incidents: '#e76f51',
};

const KIND_COLORS: Record<string, string> = {
  admin_area: '#8a6d9e',
  address_point: '#6c757d',
  address: '#6c757d',
  parcel: '#e5d8c3',
  infrastructure: '#6d597a',
  camera: '#d7263d',
  sensor: '#2a9d8f',
  vessel: '#1d4e89',
  incident: '#e76f51',
  generic: '#7b2cbf',
};

export const LAND_USE_COLORS: [string, string][] = [
  ['ODT', '#f4c7a1'], ['ONT', '#f6d5b5'], ['TMD', '#f2a3a3'], ['SKC', '#c9b1d9'], ['DGT', '#d4d4d4'],
  ['DYT', '#f7d56b'], ['DGD', '#f0e08b'], ['TSC', '#c7c7e8'], ['DVH', '#e8b7d4'], ['TON', '#d9c2a7'],
  ['CLN', '#cfe6a8'], ['LUC', '#e2efb0'], ['BHK', '#d8e8a0'], ['NTS', '#a8d8e6'], ['RSX', '#9cc98b'],
];

/** Layers shown at first load (the rest are one click away in the layer tree). */
export const DEFAULT_VISIBLE = ['wards', 'roads', 'parcels', 'cameras', 'sensors', 'vessels'];

export interface LayerSourceInfo {
  collection: Collection;
  geometryType: string | null;
  tiles: TileJson | null;
  /** GeoJSON fallback: the whole layer (small), or only the view at street zoom (large). */
  fallback: 'all' | 'viewport' | null;
}

const GEOMETRY_OF_FORMAT: Record<string, string> = {
  point: 'Point', multipoint: 'Point', linestring: 'LineString', multilinestring: 'LineString',
  polygon: 'Polygon', multipolygon: 'Polygon',
};

export function geometryFamily(format: string | null): 'Point' | 'LineString' | 'Polygon' {
  return (GEOMETRY_OF_FORMAT[(format ?? '').toLowerCase()] ?? 'Point') as 'Point' | 'LineString' | 'Polygon';
}

/** How each layer will be fed: vector tiles where the server has them, GeoJSON otherwise. */
export async function describeSource(collection: Collection, geometryType: string | null): Promise<LayerSourceInfo> {
  const tiles = await probe<TileJson>(tileJsonUrl(collection.id)).catch(() => null);
  if (tiles) return { collection, geometryType, tiles, fallback: null };
  // numberMatched is given when the count is cheap (<= 2,000 here); without it the layer is large.
  const first = await items(collection.id, { limit: 1, properties: [] }).catch(() => null);
  const small = first?.numberMatched !== undefined && first.numberMatched <= 5000;
  return { collection, geometryType, tiles: null, fallback: small ? 'all' : 'viewport' };
}

export function sourceFor(info: LayerSourceInfo): SourceSpecification {
  const id = info.collection.id;
  if (info.tiles) return { type: 'vector', url: absolute(tileJsonUrl(id)) };
  const data = info.fallback === 'all'
    ? absolute(`/collections/${encodeURIComponent(id)}/items?limit=5000`)
    : { type: 'FeatureCollection', features: [] };
  return { type: 'geojson', data: data as any };
}

function meta(id: string, kind: string, role?: string): Record<string, string> {
  return role ? { 'twin:layer': id, 'twin:kind': kind, 'twin:role': role } : { 'twin:layer': id, 'twin:kind': kind };
}

function colorOf(id: string, kind: string): string {
  return LAYER_COLORS[id] ?? KIND_COLORS[kind] ?? KIND_COLORS.generic;
}

function pointPaint(id: string, kind: string, theme: Theme): Record<string, unknown> {
  const stroke = theme === 'dark' ? '#07111f' : '#ffffff';
  const base = { 'circle-stroke-color': stroke, 'circle-stroke-width': 1 };
  if (id === 'incidents' || kind === 'incident') {
    return { ...base, 'circle-radius': 5, 'circle-color': ['match', ['get', 'status'],
      'new', '#e63946', 'in_progress', '#f4a261', 'resolved', '#8d99ae', 'closed', '#adb5bd', '#e76f51'] };
  }
  if (id === 'sensors' || kind === 'sensor') {
    return { ...base, 'circle-radius': 6, 'circle-color': ['case',
      ['>', ['to-number', ['get', 'last_value'], 0], ['to-number', ['get', 'threshold'], 1e12]], '#e63946', '#2a9d8f'] };
  }
  if (id === 'address_points') return { ...base, 'circle-radius': 2.5, 'circle-stroke-width': 0.5, 'circle-color': colorOf(id, kind) };
  if (id === 'street_lights') return { ...base, 'circle-radius': 2.5, 'circle-stroke-width': 0.5, 'circle-color': colorOf(id, kind) };
  if (kind === 'vessel') return { ...base, 'circle-radius': 4.5, 'circle-color': theme === 'dark' ? '#48cae4' : colorOf(id, kind) };
  return { ...base, 'circle-radius': 5, 'circle-color': colorOf(id, kind) };
}

function layersFor(info: LayerSourceInfo, theme: Theme): LayerSpecification[] {
  const id = info.collection.id;
  const kind = info.collection['twin:kind'] ?? 'generic';
  const family = geometryFamily(info.geometryType);
  const common = { source: id, ...(info.tiles ? { 'source-layer': id } : {}) };
  const p = PALETTE[theme];
  const out: any[] = [];
  if (family === 'Polygon') {
    if (kind === 'admin_area') {
      out.push({ id: `${id}-fill`, type: 'fill', ...common, metadata: meta(id, kind), paint: { 'fill-color': p.land, 'fill-opacity': 1 } });
      out.push({ id: `${id}-line`, type: 'line', ...common, metadata: meta(id, kind),
        paint: { 'line-color': p.ward, 'line-width': 1.5, 'line-dasharray': [3, 2] } });
    } else {
      const color = kind === 'parcel'
        ? ['match', ['get', 'land_use'], ...LAND_USE_COLORS.flat(), KIND_COLORS.parcel] : colorOf(id, kind);
      out.push({ id: `${id}-fill`, type: 'fill', ...common, metadata: meta(id, kind), minzoom: kind === 'parcel' ? 12 : 0,
        paint: { 'fill-color': color, 'fill-opacity': theme === 'dark' ? 0.35 : 0.8, 'fill-outline-color': theme === 'dark' ? '#1f3b5a' : '#b8a98f' } });
      if (kind === 'parcel') {
        out.push({ id: `${id}-extrusion`, type: 'fill-extrusion', ...common, metadata: meta(id, kind), minzoom: 15,
          filter: ['>', ['to-number', ['get', 'height_m'], 0], 0],
          paint: { 'fill-extrusion-color': color, 'fill-extrusion-opacity': 0.9,
            'fill-extrusion-height': ['to-number', ['get', 'height_m'], 0], 'fill-extrusion-base': 0 } });
      }
    }
  } else if (family === 'LineString') {
    if (id === 'roads') {
      const width = ['interpolate', ['linear'], ['zoom'], 11,
        ['match', ['get', 'road_class'], 'primary', 1.5, 'secondary', 1, 0.5], 17,
        ['match', ['get', 'road_class'], 'primary', 12, 'secondary', 9, 5]];
      out.push({ id: `${id}-casing`, type: 'line', ...common, metadata: meta(id, kind, 'casing'),
        layout: { 'line-cap': 'round', 'line-join': 'round' },
        paint: { 'line-color': p.roadCase, 'line-gap-width': width, 'line-width': 1 } });
      out.push({ id: `${id}-line`, type: 'line', ...common, metadata: meta(id, kind),
        layout: { 'line-cap': 'round', 'line-join': 'round' }, paint: { 'line-color': p.road, 'line-width': width } });
    } else {
      out.push({ id: `${id}-line`, type: 'line', ...common, metadata: meta(id, kind),
        paint: { 'line-color': colorOf(id, kind), 'line-width': kind === 'vessel' ? 1 : 2,
          ...(kind === 'vessel' ? { 'line-dasharray': [2, 2], 'line-opacity': 0.7 } : {}) } });
    }
  } else {
    out.push({ id: `${id}-circle`, type: 'circle', ...common, metadata: meta(id, kind),
      filter: ['!', ['has', '_count']], paint: pointPaint(id, kind, theme) });
    out.push({ id: `${id}-count`, type: 'circle', ...common, metadata: meta(id, kind, 'count'),
      filter: ['has', '_count'], paint: { 'circle-color': colorOf(id, kind), 'circle-opacity': 0.6,
        'circle-radius': ['interpolate', ['linear'], ['sqrt', ['get', '_count']], 1, 6, 30, 24],
        'circle-stroke-color': '#ffffff', 'circle-stroke-width': 1 } });
  }
  return out as LayerSpecification[];
}

function labelLayers(infos: LayerSourceInfo[], theme: Theme): LayerSpecification[] {
  const p = PALETTE[theme];
  const out: any[] = [];
  const byId = new Map(infos.map((i) => [i.collection.id, i]));
  const roads = byId.get('roads');
  if (roads) {
    out.push({ id: 'roads-label', type: 'symbol', source: 'roads', ...(roads.tiles ? { 'source-layer': 'roads' } : {}),
      minzoom: 14, metadata: meta('roads', 'infrastructure', 'label'),
      layout: { 'symbol-placement': 'line', 'text-field': ['get', 'name'], 'text-font': FONT, 'text-size': 11 },
      paint: { 'text-color': p.label, 'text-halo-color': p.halo, 'text-halo-width': 1.5 } });
  }
  for (const info of infos) {
    if (info.collection['twin:kind'] !== 'admin_area') continue;
    const id = info.collection.id;
    // One label per area from a point source (`labelPoints`): polygon labels from tiles repeat in every tile.
    out.push({ id: `${id}-label`, type: 'symbol', source: `${id}-labels`,
      metadata: meta(id, 'admin_area', 'label'),
      layout: { 'text-field': ['get', 'name'], 'text-font': FONT_BOLD, 'text-size': theme === 'dark' ? 16 : 13,
        'symbol-placement': 'point', 'text-max-width': 8 },
      paint: { 'text-color': p.label, 'text-halo-color': p.halo, 'text-halo-width': 1.5 } });
  }
  return out as LayerSpecification[];
}

/** Draw order: land, parcels, lines, boundaries, points, labels. */
function rank(layer: LayerSpecification, kindOf: (id: string) => string): number {
  const kind = kindOf((layer.metadata as any)?.['twin:layer'] ?? '');
  const role = (layer.metadata as any)?.['twin:role'];
  if (layer.type === 'background') return 0;
  if (layer.type === 'hillshade') return 1;
  if (kind === 'admin_area' && layer.type === 'fill') return 2;
  if (layer.type === 'fill') return 3;
  if (layer.type === 'line' && kind === 'admin_area') return 6;
  if (layer.type === 'line') return role === 'casing' ? 4 : 5;
  if (layer.type === 'fill-extrusion') return 7;
  if (layer.type === 'circle') return 8;
  return 9;
}

export function buildStyle(infos: LayerSourceInfo[], theme: Theme, visible: Set<string>): StyleSpecification {
  const sources: Record<string, SourceSpecification> = {};
  let layers: LayerSpecification[] = [];
  for (const info of infos) {
    sources[info.collection.id] = sourceFor(info);
    layers.push(...layersFor(info, theme));
  }
  layers.push(...labelLayers(infos, theme));
  for (const info of infos) {
    if (info.collection['twin:kind'] === 'admin_area') sources[`${info.collection.id}-labels`] = EMPTY_POINTS;
  }
  const kinds = new Map(infos.map((i) => [i.collection.id, i.collection['twin:kind'] ?? 'generic']));
  layers = layers
    .map((layer, index) => ({ layer, index }))
    .sort((a, b) => rank(a.layer, (id) => kinds.get(id) ?? '') - rank(b.layer, (id) => kinds.get(id) ?? '') || a.index - b.index)
    .map(({ layer }) => layer);
  applyVisibility(layers, visible);
  return {
    version: 8,
    name: `Twin ${theme}`,
    glyphs: absolute(GLYPHS_URL).replace('%7Bfontstack%7D', '{fontstack}').replace('%7Brange%7D', '{range}'),
    sources,
    layers: [{ id: 'background', type: 'background', paint: { 'background-color': PALETTE[theme].sea } }, ...layers],
  };
}

/** The server's style, made to fit this client: local glyphs, our labels and background if it has none. */
export function adoptServerStyle(server: StyleSpecification, infos: LayerSourceInfo[], theme: Theme, visible: Set<string>): StyleSpecification {
  const style: StyleSpecification = JSON.parse(JSON.stringify(server));
  for (const source of Object.values(style.sources)) {
    const s = source as any;
    if (typeof s.url === 'string' && s.url.startsWith('/')) s.url = absolute(s.url);
    if (Array.isArray(s.tiles)) s.tiles = s.tiles.map((u: string) => (u.startsWith('/') ? absolute(u) : u));
    if (typeof s.data === 'string' && s.data.startsWith('/')) s.data = absolute(s.data);
  }
  if (!style.glyphs) {
    style.glyphs = absolute(GLYPHS_URL).replace('%7Bfontstack%7D', '{fontstack}').replace('%7Brange%7D', '{range}');
    const labelled = infos.filter((i) => style.sources[i.collection.id]);
    style.layers.push(...labelLayers(labelled, theme));
    for (const info of labelled) {
      if (info.collection['twin:kind'] === 'admin_area') style.sources[`${info.collection.id}-labels`] = EMPTY_POINTS;
    }
  }
  if (!style.layers.some((l) => l.type === 'background')) {
    style.layers.unshift({ id: 'background', type: 'background', paint: { 'background-color': PALETTE[theme].sea } });
  }
  applyVisibility(style.layers, visible);
  return style;
}

export function applyVisibility(layers: LayerSpecification[], visible: Set<string>): void {
  for (const layer of layers) {
    const owner = (layer.metadata as any)?.['twin:layer'];
    if (!owner) continue;
    (layer as any).layout = { ...((layer as any).layout ?? {}), visibility: visible.has(owner) ? 'visible' : 'none' };
  }
}

export interface LegendEntry {
  label: string;
  color: string;
  shape: 'fill' | 'line' | 'circle';
}

/** Legend entries read from a style layer's paint: a plain colour, or the branches of a `match`. */
export function legendOf(layer: LayerSpecification): LegendEntry[] {
  const paint = (layer as any).paint ?? {};
  const shape = layer.type === 'line' ? 'line' : layer.type === 'circle' ? 'circle' : 'fill';
  const value = paint['fill-extrusion-color'] ?? paint['fill-color'] ?? paint['line-color'] ?? paint['circle-color'];
  if (typeof value === 'string') return [{ label: '', color: value, shape }];
  if (Array.isArray(value) && value[0] === 'match') {
    const entries: LegendEntry[] = [];
    for (let i = 2; i < value.length - 1; i += 2) {
      if (typeof value[i + 1] === 'string') entries.push({ label: String(value[i]), color: value[i + 1], shape });
    }
    return entries;
  }
  if (Array.isArray(value) && value[0] === 'case' && typeof value[2] === 'string') {
    return [{ label: '', color: value[value.length - 1], shape }, { label: '⚠', color: value[2], shape }];
  }
  return [];
}

export function themeColors(theme: Theme) {
  return PALETTE[theme];
}

/** A label point per area: the vertex mean of its largest ring, nudged inside when it falls outside. */
export function labelPoint(geometry: { type: string; coordinates: any } | null): [number, number] | null {
  if (!geometry) return null;
  const polygons: number[][][][] = geometry.type === 'MultiPolygon' ? geometry.coordinates : geometry.type === 'Polygon' ? [geometry.coordinates] : [];
  let best: number[][] = [];
  let bestArea = -1;
  for (const polygon of polygons) {
    const ring = polygon[0];
    let area = 0;
    for (let i = 1; i < ring.length; i++) area += ring[i - 1][0] * ring[i][1] - ring[i][0] * ring[i - 1][1];
    if (Math.abs(area) > bestArea) (bestArea = Math.abs(area), best = ring);
  }
  if (!best.length) return null;
  const c: [number, number] = [best.reduce((s, p) => s + p[0], 0) / best.length, best.reduce((s, p) => s + p[1], 0) / best.length];
  if (inside(c, best)) return c;
  // Concave area: the midpoint of the widest horizontal chord through the centre's latitude.
  const xs: number[] = [];
  for (let i = 1; i < best.length; i++) {
    const [a, b] = [best[i - 1], best[i]];
    if ((a[1] > c[1]) !== (b[1] > c[1])) xs.push(a[0] + ((c[1] - a[1]) * (b[0] - a[0])) / (b[1] - a[1]));
  }
  xs.sort((a, b) => a - b);
  let chord: [number, number] = c;
  let width = -1;
  for (let i = 0; i + 1 < xs.length; i += 2) if (xs[i + 1] - xs[i] > width) (width = xs[i + 1] - xs[i], chord = [(xs[i] + xs[i + 1]) / 2, c[1]]);
  return chord;
}

function inside(p: [number, number], ring: number[][]): boolean {
  let result = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) result = !result;
  }
  return result;
}
