// Draw a polygon or a circle (radius in metres) → the features inside, asked of the server with CQL2
// S_INTERSECTS (a circle is sent as its geodesic polygon), counted per layer, exportable.
import { GeoJsonLayer, PolygonLayer, ScatterplotLayer } from '@deck.gl/layers';
import { allItems, Feature, items } from '../api';
import { distanceM, geodesicCircle, intersects, Position } from '../cql2';
import { download, h } from '../dom';
import { formatNumber, t } from '../i18n';
import type { Readiness } from '../readiness';
import type { TwinMap } from '../twinmap';
import type { FeaturePopup } from './popup';

type Mode = 'idle' | 'polygon' | 'circle';

const LIST_LIMIT = 50;
const ID_CAP = 50000;

export interface LayerResult {
  layer: string;
  ids: (number | string)[];
  count: number;
  capped: boolean;
  sample: Feature[];
}

export class DrawTool {
  readonly element = h('div', { class: 'draw-panel panel', hidden: true });
  private mode: Mode = 'idle';
  private vertices: Position[] = [];
  private ring: Position[] | null = null;
  private results: LayerResult[] = [];
  private radiusInput = h('input', { type: 'number', min: 1, step: 1, value: '500', class: 'radius', 'data-test': 'radius' });
  private layerBoxes = h('div', { class: 'query-layers' });
  private resultBox = h('div', { class: 'draw-results' });
  private hint = h('p', { class: 'hint' });
  /** Bumped by `reset`: results asked for with the previous credential are not shown after it. */
  private epoch = 0;

  constructor(private readonly twin: TwinMap, private readonly popup: FeaturePopup, private readonly state: Readiness) {
    twin.map.on('click', (e) => this.onClick([e.lngLat.lng, e.lngLat.lat]));
    twin.map.on('dblclick', (e) => {
      if (this.mode === 'polygon') {
        e.preventDefault();
        void this.finishPolygon();
      }
    });
    this.render();
  }

  toggle(): void {
    this.element.hidden = !this.element.hidden;
    if (!this.element.hidden) this.renderLayerChoices();
    else this.setMode('idle');
  }

  private render(): void {
    this.element.replaceChildren(
      h('div', { class: 'panel-head' }, h('h2', {}, t('draw')), h('button', { class: 'close', onclick: () => this.toggle(), title: t('close') }, '×')),
      h('div', { class: 'draw-buttons' },
        h('button', { 'data-test': 'draw-polygon', onclick: () => this.setMode('polygon') }, t('drawPolygon')),
        h('button', { 'data-test': 'draw-circle', onclick: () => this.setMode('circle') }, t('drawCircle')),
        h('label', {}, t('radius'), ' ', this.radiusInput),
        h('button', { 'data-test': 'draw-finish', onclick: () => void this.finishPolygon() }, t('finish')),
        h('button', { 'data-test': 'draw-clear', onclick: () => this.clear() }, t('clear'))),
      this.hint,
      h('h3', {}, t('layersToQuery')),
      this.layerBoxes,
      this.resultBox,
    );
    this.renderLayerChoices();
  }

  /** For a new credential: the drawn results go, the layers to query are the ones now readable. */
  reset(): void {
    this.epoch += 1;
    this.clear();
    this.state.lastDraw = null;
    this.layerBoxes.replaceChildren();
    this.renderLayerChoices();
  }

  private renderLayerChoices(): void {
    const chosen = new Set(this.chosenLayers());
    const first = this.layerBoxes.childElementCount === 0;
    this.layerBoxes.replaceChildren(...this.twin.infos
      .filter((i) => i.collection['twin:kind'] !== 'admin_area')
      .map((i) => h('label', { class: 'query-layer' },
        h('input', { type: 'checkbox', value: i.collection.id, 'data-query-layer': i.collection.id,
          checked: first ? this.twin.visible.has(i.collection.id) : chosen.has(i.collection.id) }),
        ' ', i.collection.title)));
  }

  private chosenLayers(): string[] {
    return [...this.layerBoxes.querySelectorAll<HTMLInputElement>('input:checked')].map((el) => el.value);
  }

  setMode(mode: Mode): void {
    this.mode = mode;
    this.vertices = [];
    this.popup.enabled = mode === 'idle';
    if (mode === 'polygon') this.twin.map.doubleClickZoom.disable();
    else this.twin.map.doubleClickZoom.enable();
    this.hint.textContent = mode === 'polygon' ? t('polygonHint') : mode === 'circle' ? t('circleHint') : '';
    this.twin.map.getCanvas().style.cursor = mode === 'idle' ? '' : 'crosshair';
    this.drawShape();
  }

  private onClick(p: Position): void {
    if (this.mode === 'polygon') {
      this.vertices.push(p);
      this.drawShape();
    } else if (this.mode === 'circle') {
      const radius = Number(this.radiusInput.value);
      if (!(radius > 0)) return;
      void this.runCircle(p, radius);
    }
  }

  /** Public for tests and the URL: a circle around `center` of `radius` metres. */
  async runCircle(center: Position, radius: number): Promise<LayerResult[]> {
    this.setMode('idle');
    return this.run(geodesicCircle(center, radius));
  }

  private async finishPolygon(): Promise<void> {
    if (this.mode !== 'polygon') return;
    // A double click adds the same vertex twice; drop near-duplicates.
    const ring = this.vertices.filter((p, i, all) => i === 0 || distanceM(p, all[i - 1]) > 0.5);
    this.setMode('idle');
    if (ring.length < 3) return;
    await this.run([...ring, ring[0]]);
  }

  clear(): void {
    this.ring = null;
    this.results = [];
    this.resultBox.replaceChildren();
    this.setMode('idle');
    this.twin.setDeckLayer('draw-results', null);
  }

  async run(ring: Position[]): Promise<LayerResult[]> {
    this.ring = ring;
    this.drawShape();
    const layers = this.chosenLayers();
    this.resultBox.replaceChildren(h('p', {}, t('loading')));
    const filter = intersects(ring);
    const epoch = this.epoch;
    const results = await Promise.all(layers.map(async (layer) => {
      const [sample, all] = await Promise.all([
        items(layer, { filter, limit: LIST_LIMIT }),
        allItems(layer, { filter, limit: 5000, properties: [] }, ID_CAP),
      ]);
      return { layer, ids: all.map((f) => f.id), count: all.length, capped: all.length >= ID_CAP, sample: sample.features };
    }));
    if (epoch !== this.epoch) return [];
    this.results = results;
    this.state.lastDraw = {
      ring,
      results: Object.fromEntries(this.results.map((r) => [r.layer, r.ids])),
      counts: Object.fromEntries(this.results.map((r) => [r.layer, r.capped ? null : r.count])),
    };
    this.renderResults();
    this.twin.setDeckLayer('draw-results', new GeoJsonLayer({
      id: 'draw-results',
      data: { type: 'FeatureCollection', features: this.results.flatMap((r) => r.sample) } as any,
      pointRadiusUnits: 'pixels', getPointRadius: 7, getFillColor: [255, 200, 0, 160], getLineColor: [230, 120, 0, 255],
      lineWidthUnits: 'pixels', getLineWidth: 3, stroked: true, filled: true,
    }));
    return this.results;
  }

  private renderResults(): void {
    const titleOf = (id: string) => this.twin.collection(id)?.title ?? id;
    this.resultBox.replaceChildren(
      h('h3', {}, t('featuresInside')),
      h('table', { class: 'counts' }, h('tbody', {}, ...this.results.map((r) => h('tr', { 'data-layer': r.layer },
        h('th', {}, titleOf(r.layer)), h('td', { class: 'count' }, `${r.capped ? '≥ ' : ''}${formatNumber(r.count)}`))))),
      h('div', { class: 'export' },
        h('button', { 'data-test': 'export-geojson', onclick: () => void this.export('geojson') }, t('exportGeojson')),
        h('button', { 'data-test': 'export-csv', onclick: () => void this.export('csv') }, t('exportCsv'))),
      ...this.results.filter((r) => r.sample.length).map((r) => h('details', {},
        h('summary', {}, titleOf(r.layer)),
        h('ul', {}, ...r.sample.map((f) => h('li', {}, labelOf(f)))))),
    );
  }

  private async export(format: 'geojson' | 'csv'): Promise<void> {
    if (!this.ring) return;
    const filter = intersects(this.ring);
    const features: Feature[] = [];
    for (const r of this.results) {
      for (const f of await allItems(r.layer, { filter, limit: 5000 }, ID_CAP)) {
        features.push({ ...f, properties: { layer: r.layer, ...f.properties } });
      }
    }
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    if (format === 'geojson') {
      download(`twin-vung-${stamp}.geojson`, JSON.stringify({ type: 'FeatureCollection', features }), 'application/geo+json');
    } else {
      download(`twin-vung-${stamp}.csv`, await toCsv(features), 'text/csv;charset=utf-8');
    }
  }

  private drawShape(): void {
    const layers = [];
    const ring = this.mode === 'polygon' ? this.vertices : this.ring;
    if (ring && ring.length >= 2) {
      layers.push(new PolygonLayer({
        id: 'draw-shape', data: [{ ring }], getPolygon: (d: any) => d.ring, filled: true, stroked: true,
        getFillColor: [30, 120, 220, 50], getLineColor: [30, 120, 220, 255], lineWidthUnits: 'pixels', getLineWidth: 2,
      }));
    }
    if (this.mode === 'polygon' && this.vertices.length) {
      layers.push(new ScatterplotLayer({ id: 'draw-vertices', data: this.vertices, getPosition: (d: any) => d,
        radiusUnits: 'pixels', getRadius: 4, getFillColor: [30, 120, 220, 255] }));
    }
    this.twin.setDeckLayer('draw-shape', layers[0] ?? null);
    this.twin.setDeckLayer('draw-vertices', layers[1] ?? null);
  }
}

export function labelOf(f: Feature): string {
  const p = f.properties ?? {};
  const preferred = ['full_address', 'name', 'title', 'camera_id', 'sensor_id', 'incident_id', 'parcel_no', 'registration_no', 'light_id', 'drain_id'];
  for (const key of preferred) if (typeof p[key] === 'string' && p[key]) return String(p[key]);
  const first = Object.values(p).find((v) => typeof v === 'string');
  return first ? String(first) : `#${f.id}`;
}

/** CSV with field names as headers, like the server's own f=csv; a BOM so spreadsheet tools read UTF-8. */
async function toCsv(features: Feature[]): Promise<string> {
  const columns = ['layer', 'id', 'lon', 'lat'];
  const seen = new Set(columns);
  for (const f of features) for (const k of Object.keys(f.properties)) if (!seen.has(k)) (seen.add(k), columns.push(k));
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [columns.join(',')];
  for (const f of features) {
    const c = centroidOf(f);
    const row: Record<string, unknown> = { ...f.properties, id: f.id, lon: c?.[0], lat: c?.[1] };
    lines.push(columns.map((k) => cell(row[k])).join(','));
  }
  return '\ufeff' + lines.join('\n');
}

function centroidOf(f: Feature): Position | null {
  const coords: Position[] = [];
  const walk = (c: any) => (typeof c[0] === 'number' ? coords.push(c as Position) : c.forEach(walk));
  if (f.geometry) walk(f.geometry.coordinates);
  if (!coords.length) return null;
  const sum = coords.reduce((a, c) => [a[0] + c[0], a[1] + c[1]], [0, 0]);
  return [Number((sum[0] / coords.length).toFixed(7)), Number((sum[1] / coords.length).toFixed(7))];
}
