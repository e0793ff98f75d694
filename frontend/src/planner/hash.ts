// The view in the URL hash, so a view can be shared: #map=zoom/lat/lon/bearing/pitch&layers=a,b&lang=en&terrain=0
import type { Lang } from '../i18n';

export interface HashState {
  view?: { center: [number, number]; zoom: number; pitch: number; bearing: number };
  layers?: string[];
  lang?: Lang;
  terrain?: boolean;
}

export function readHash(hash = window.location.hash): HashState {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const out: HashState = {};
  const map = params.get('map')?.split('/').map(Number);
  if (map && map.length >= 3 && map.every((n) => Number.isFinite(n))) {
    out.view = { zoom: map[0], center: [map[2], map[1]], bearing: map[3] ?? 0, pitch: map[4] ?? 0 };
  }
  const layers = params.get('layers');
  if (layers !== null) out.layers = layers.split(',').filter(Boolean);
  const lang = params.get('lang');
  if (lang === 'en' || lang === 'vi') out.lang = lang;
  const terrain = params.get('terrain');
  if (terrain !== null) out.terrain = terrain !== '0';
  return out;
}

export function writeHash(state: Required<Pick<HashState, 'view' | 'layers' | 'lang'>> & { terrain: boolean }): void {
  const v = state.view;
  const parts = [
    `map=${v.zoom.toFixed(2)}/${v.center[1].toFixed(5)}/${v.center[0].toFixed(5)}/${v.bearing.toFixed(1)}/${v.pitch.toFixed(1)}`,
    `layers=${state.layers.join(',')}`,
  ];
  if (state.lang !== 'vi') parts.push(`lang=${state.lang}`);
  if (!state.terrain) parts.push('terrain=0');
  const hash = `#${parts.join('&')}`;
  if (hash !== window.location.hash) history.replaceState(null, '', hash);
}
