// Flags on `window.__twin` that browser tests and the benchmark wait on; never read by the app itself.

export interface Readiness {
  view: 'planner' | 'wall';
  styleLoaded: boolean;
  mapIdle: boolean;
  idleCount: number;
  deckRendered: boolean;
  firstIdleMs: number | null;
  tiles: boolean;
  layers: string[];
  /** Who the page is signed in as (`/auth/me`'s principal), set once the map shows what that principal may read. */
  principal: string | null;
  lastDraw: { ring: [number, number][]; results: Record<string, (number | string)[]>; counts: Record<string, number | null> } | null;
  lastSearch: { query: string; results: { layer: string; label: string }[] } | null;
  kpis: Record<string, unknown> | null;
  scene: string | null;
  errors: string[];
}

declare global {
  interface Window {
    __twin: Readiness;
  }
}

export function readiness(view: 'planner' | 'wall'): Readiness {
  window.__twin = {
    view, styleLoaded: false, mapIdle: false, idleCount: 0, deckRendered: false, firstIdleMs: null, tiles: false,
    layers: [], principal: null, lastDraw: null, lastSearch: null, kpis: null, scene: null, errors: [],
  };
  return window.__twin;
}
