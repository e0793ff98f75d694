// One map for both views: catalogue → sources → style → MapLibre map with a deck.gl overlay.
import { Map as MapLibreMap, setWorkerUrl, StyleSpecification } from 'maplibre-gl';
import workerUrl from 'maplibre-gl/dist/maplibre-gl-worker.mjs?url';
import { MapLibreOverlay } from '@deck.gl/maplibre';
import type { Layer } from '@deck.gl/core';
import 'maplibre-gl/dist/maplibre-gl.css';
import { allItems, Collection, forgetCachedAnswers, items, listCollections, listRasters, probe, queryables } from './api';
import { transformRequest } from './credential';
import { adoptServerStyle, applyVisibility, buildStyle, describeSource, labelPoint, LayerSourceInfo, sourceFor, Theme } from './style';
import { Readiness } from './readiness';

setWorkerUrl(workerUrl);

export const HOME = { center: [109.225, 13.775] as [number, number], zoom: 11.9, pitch: 0, bearing: 0 };
const VIEWPORT_MINZOOM = 15;

export interface TwinMapOptions {
  container: HTMLElement;
  theme: Theme;
  visible: Set<string>;
  view?: { center: [number, number]; zoom: number; pitch: number; bearing: number };
  interactive?: boolean;
  terrain?: boolean;
  useServerStyle?: boolean;
  /** Device pixels per CSS pixel (the wall renders at its 1080p layout, scaled up sharp). */
  pixelRatio?: number;
  state: Readiness;
}

export class TwinMap {
  readonly map: MapLibreMap;
  readonly overlay: MapLibreOverlay;
  infos: LayerSourceInfo[] = [];
  visible: Set<string>;
  hasDem = false;
  private deckLayers = new Map<string, Layer>();
  private viewportTimer: number | undefined;
  private demUrl: string | null = null;
  private terrainOn = true;
  private reloading: Promise<void> | null = null;

  private constructor(map: MapLibreMap, overlay: MapLibreOverlay, visible: Set<string>, private readonly options: TwinMapOptions) {
    this.map = map;
    this.overlay = overlay;
    this.visible = visible;
  }

  static async create(options: TwinMapOptions): Promise<TwinMap> {
    const started = performance.now();
    const state = options.state;
    const { infos, style } = await catalogStyle(options, options.visible);
    state.tiles = infos.some((i) => i.tiles !== null);
    const view = options.view ?? HOME;
    const map = new MapLibreMap({
      container: options.container,
      style,
      // The credential on the map's own requests (TileJSON, tiles, GeoJSON, glyphs), to our origin only.
      transformRequest,
      center: view.center,
      zoom: view.zoom,
      pitch: view.pitch,
      bearing: view.bearing,
      maxPitch: 80,
      interactive: options.interactive !== false,
      ...(options.pixelRatio ? { pixelRatio: options.pixelRatio } : {}),
      attributionControl: false,
      canvasContextAttributes: { preserveDrawingBuffer: false, antialias: true },
    } as any);
    const overlay = new MapLibreOverlay({
      interleaved: true,
      layers: [],
      onAfterRender: () => {
        state.deckRendered = true;
      },
    });
    map.addControl(overlay as any);
    const twin = new TwinMap(map, overlay, options.visible, options);
    twin.infos = infos;
    state.layers = infos.map((i) => i.collection.id);
    map.on('style.load', () => (state.styleLoaded = true));
    map.on('dataloading', () => (state.mapIdle = false));
    map.on('movestart', () => (state.mapIdle = false));
    map.on('idle', () => {
      state.mapIdle = true;
      state.idleCount += 1;
      if (state.firstIdleMs === null) state.firstIdleMs = performance.now() - started;
    });
    map.on('error', (event: any) => {
      const message = String(event?.error?.message ?? event?.error ?? 'map error');
      if (state.errors.length < 50) state.errors.push(message);
    });
    map.on('moveend', () => twin.scheduleViewportLoad());
    map.once('load', () => {
      twin.scheduleViewportLoad();
      void twin.loadLabelPoints(infos);
    });
    if (options.terrain !== false) void twin.addTerrain();
    return twin;
  }

  collection(id: string): Collection | undefined {
    return this.infos.find((i) => i.collection.id === id)?.collection;
  }

  styleLayersOf(layerId: string): string[] {
    return (this.map.getStyle()?.layers ?? [])
      .filter((l) => (l.metadata as any)?.['twin:layer'] === layerId)
      .map((l) => l.id);
  }

  /** Style layer ids that answer clicks (not labels, casings or aggregates). */
  interactiveLayers(): string[] {
    return (this.map.getStyle()?.layers ?? [])
      .filter((l) => {
        const m = l.metadata as any;
        return m?.['twin:layer'] && !['label', 'casing'].includes(m['twin:role']) && this.visible.has(m['twin:layer']);
      })
      .map((l) => l.id);
  }

  setVisible(layerId: string, on: boolean): void {
    if (on) this.visible.add(layerId);
    else this.visible.delete(layerId);
    for (const id of this.styleLayersOf(layerId)) this.map.setLayoutProperty(id, 'visibility', on ? 'visible' : 'none');
    this.scheduleViewportLoad();
  }

  setOpacity(layerId: string, opacity: number): void {
    for (const id of this.styleLayersOf(layerId)) {
      const type = this.map.getLayer(id)?.type;
      const props: Record<string, string[]> = {
        fill: ['fill-opacity'], line: ['line-opacity'], circle: ['circle-opacity', 'circle-stroke-opacity'],
        'fill-extrusion': ['fill-extrusion-opacity'], symbol: ['text-opacity'],
      };
      for (const prop of props[type ?? ''] ?? []) this.map.setPaintProperty(id, prop as any, opacity);
    }
  }

  setDeckLayer(id: string, layer: Layer | null): void {
    if (layer) this.deckLayers.set(id, layer);
    else this.deckLayers.delete(id);
    this.overlay.setProps({ layers: [...this.deckLayers.values()] });
  }

  /** Area names at one point per area (see `labelPoint`), from a small OGC items query per admin layer. */
  async loadLabelPoints(infos: LayerSourceInfo[]): Promise<void> {
    await Promise.all(infos.filter((i) => i.collection['twin:kind'] === 'admin_area').map(async (info) => {
      const source = this.map.getSource(`${info.collection.id}-labels`) as any;
      if (!source?.setData) return;
      const features = await allItems(info.collection.id, { limit: 2000 }, 2000).catch(() => []);
      source.setData({ type: 'FeatureCollection', features: features.flatMap((f) => {
        const at = labelPoint(f.geometry);
        return at ? [{ type: 'Feature', id: f.id, properties: f.properties, geometry: { type: 'Point', coordinates: at } }] : [];
      }) });
    }));
  }

  /**
   * Everything again for a new credential (a sign-in or out): the catalogue, each layer's queryables and
   * the whole style. `diff: false` drops every source and its tiles, so nothing read with the previous
   * credential is drawn, or kept in memory, after it; the deck.gl layers come back on `styledata`.
   */
  reload(): Promise<void> {
    // One after the other: a sign-out right after a sign-in must end with the signed-out catalogue.
    const run = (this.reloading ?? Promise.resolve()).catch(() => undefined).then(() => this.reloadNow());
    this.reloading = run;
    const done = () => {
      if (this.reloading === run) this.reloading = null;
    };
    run.then(done, done);
    return run;
  }

  private async reloadNow(): Promise<void> {
    forgetCachedAnswers();
    const { infos, style } = await catalogStyle(this.options, this.visible);
    const loaded = new Promise<void>((resolve) => this.map.once('style.load', () => resolve()));
    this.map.setStyle(style, { diff: false });
    this.infos = infos;
    const state = this.options.state;
    state.tiles = infos.some((i) => i.tiles !== null);
    state.layers = infos.map((i) => i.collection.id);
    await loaded;
    this.addDem();
    this.scheduleViewportLoad();
    void this.loadLabelPoints(infos);
  }

  /**
   * Layers added on the server since the page loaded: sources and style layers appended, no reload.
   * Their look comes from the server's style (the layer's own style hints) when it has one.
   */
  async refreshCatalog(theme: Theme): Promise<LayerSourceInfo[]> {
    if (this.reloading) return []; // the reload reads the catalogue itself
    const known = new Set(this.infos.map((i) => i.collection.id));
    const fresh = (await listCollections()).filter((c) => !known.has(c.id));
    if (!fresh.length || this.reloading) return [];
    const added = await loadInfos(fresh);
    if (this.reloading) return [];
    let style = buildStyle(added, theme, this.visible);
    const server = await probe<StyleSpecification>('/styles/default').catch(() => null);
    if (server?.version === 8 && added.every((i) => i.tiles)) {
      const ids = new Set(added.map((i) => i.collection.id));
      style = adoptServerStyle({ ...server, layers: server.layers.filter((l) => ids.has((l.metadata as any)?.['twin:layer'])) },
        added, theme, this.visible);
    }
    for (const [id, source] of Object.entries(style.sources)) if (!this.map.getSource(id)) this.map.addSource(id, source);
    const firstLabel = this.map.getStyle().layers.find((l) => l.type === 'symbol')?.id;
    for (const layer of style.layers) {
      if (layer.type === 'background' || this.map.getLayer(layer.id)) continue;
      this.map.addLayer(layer, layer.type === 'symbol' ? undefined : firstLabel);
    }
    this.infos.push(...added);
    void this.loadLabelPoints(added);
    return added;
  }

  /** Reload every source (the wall after a server restart, or to show fresh data). */
  reloadSources(): void {
    for (const info of this.infos) {
      const source = this.map.getSource(info.collection.id) as any;
      if (!source) continue;
      if (info.tiles && typeof source.setUrl === 'function') source.setUrl((sourceFor(info) as any).url);
      else if (info.fallback === 'all' && typeof source.setData === 'function') source.setData((sourceFor(info) as any).data);
    }
    this.scheduleViewportLoad();
  }

  applyVisibility(visible: Set<string>): void {
    this.visible = visible;
    const layers = this.map.getStyle().layers;
    applyVisibility(layers, visible);
    for (const layer of layers) {
      const v = (layer as any).layout?.visibility;
      if (v && (layer.metadata as any)?.['twin:layer']) this.map.setLayoutProperty(layer.id, 'visibility', v);
    }
    this.scheduleViewportLoad();
  }

  private async addTerrain(): Promise<void> {
    const rasters = await listRasters().catch(() => []);
    if (!rasters.some((r) => r.id === 'dem')) return;
    this.demUrl = new URL('/rasters/dem/terrain/WebMercatorQuad/tilejson.json', location.origin).toString();
    if (this.map.isStyleLoaded()) this.addDem();
    else this.map.once('load', () => this.addDem());
  }

  /** The elevation sources and hillshade, into the current style (again after a `reload`). */
  private addDem(): void {
    const url = this.demUrl;
    if (!url || this.map.getSource('dem')) return;
    this.map.addSource('dem', { type: 'raster-dem', url, encoding: 'terrarium' } as any);
    this.map.addSource('dem-hillshade', { type: 'raster-dem', url, encoding: 'terrarium' } as any);
    const firstLine = this.map.getStyle().layers.find((l) => l.type === 'line')?.id;
    this.map.addLayer({ id: 'dem-hillshade', type: 'hillshade', source: 'dem-hillshade',
      paint: { 'hillshade-exaggeration': 0.4, 'hillshade-shadow-color': '#5a4a3a' } }, firstLine);
    if (this.terrainOn) this.map.setTerrain({ source: 'dem', exaggeration: 1.3 });
    this.hasDem = true;
  }

  setTerrain(on: boolean): void {
    this.terrainOn = on;
    if (!this.map.getSource('dem')) return;
    this.map.setTerrain(on ? { source: 'dem', exaggeration: 1.3 } : null);
  }

  private scheduleViewportLoad(): void {
    window.clearTimeout(this.viewportTimer);
    this.viewportTimer = window.setTimeout(() => void this.loadViewport(), 150);
  }

  /** Large layers without tiles: only the features in view, and only at street zoom (never a whole 60k layer). */
  private async loadViewport(): Promise<void> {
    const zoom = this.map.getZoom();
    const b = this.map.getBounds();
    const bbox: [number, number, number, number] = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
    await Promise.all(this.infos.filter((i) => i.fallback === 'viewport').map(async (info) => {
      const source = this.map.getSource(info.collection.id) as any;
      if (!source?.setData) return;
      if (zoom < VIEWPORT_MINZOOM || !this.visible.has(info.collection.id)) {
        source.setData({ type: 'FeatureCollection', features: [] });
        return;
      }
      try {
        const page = await items(info.collection.id, { bbox, limit: 5000 });
        source.setData({ type: 'FeatureCollection', features: page.features });
      } catch { /* the next move tries again */ }
    }));
  }
}

/** The layers this credential may read, and the style that draws them. */
async function catalogStyle(options: TwinMapOptions, visible: Set<string>): Promise<{ infos: LayerSourceInfo[]; style: StyleSpecification }> {
  const infos = await loadInfos(await listCollections());
  let style = buildStyle(infos, options.theme, visible);
  if (options.useServerStyle) {
    const server = await probe<StyleSpecification>('/styles/default').catch(() => null);
    if (server && server.version === 8) style = adoptServerStyle(server, infos, options.theme, visible);
  }
  return { infos, style };
}

async function loadInfos(collections: Collection[]): Promise<LayerSourceInfo[]> {
  return Promise.all(collections.map(async (c) => {
    const q = await queryables(c.id).catch(() => ({ properties: {}, geometryType: null }));
    return describeSource(c, q.geometryType);
  }));
}
