// Click a feature → a popup with its attributes labelled by the queryables' (Vietnamese) titles.
import { LngLatLike, MapMouseEvent, Popup } from 'maplibre-gl';
import { Feature, item, queryables } from '../api';
import { h } from '../dom';
import { formatNumber, formatValue, t } from '../i18n';
import type { TwinMap } from '../twinmap';

export class FeaturePopup {
  private popup = new Popup({ maxWidth: '380px', className: 'twin-popup' });
  enabled = true;

  constructor(private readonly twin: TwinMap) {
    twin.map.on('click', (e) => void this.onClick(e));
    twin.map.on('mousemove', (e) => {
      if (!this.enabled) return;
      const hit = twin.map.queryRenderedFeatures(e.point, { layers: twin.interactiveLayers().filter((id) => twin.map.getLayer(id)) });
      twin.map.getCanvas().style.cursor = hit.length ? 'pointer' : '';
    });
  }

  private async onClick(e: MapMouseEvent): Promise<void> {
    if (!this.enabled) return;
    const layers = this.twin.interactiveLayers().filter((id) => this.twin.map.getLayer(id));
    const box: [[number, number], [number, number]] = [[e.point.x - 4, e.point.y - 4], [e.point.x + 4, e.point.y + 4]];
    const hits = this.twin.map.queryRenderedFeatures(box, { layers });
    // Points over lines over areas: the smallest thing under the cursor is what the user meant.
    const order = { circle: 0, line: 1, 'fill-extrusion': 2, fill: 3 } as Record<string, number>;
    hits.sort((a, b) => (order[a.layer.type] ?? 9) - (order[b.layer.type] ?? 9));
    const hit = hits[0];
    if (!hit) return;
    const layerId = (hit.layer.metadata as any)?.['twin:layer'] as string;
    const title = this.twin.collection(layerId)?.title ?? layerId;
    if (hit.properties && '_count' in hit.properties) {
      this.show(e.lngLat, h('div', { class: 'popup-body', 'data-layer': layerId },
        h('h3', {}, title), h('p', {}, `${t('count')}: ${formatNumber(Number(hit.properties._count))}`)));
      return;
    }
    this.show(e.lngLat, h('div', { class: 'popup-body' }, h('h3', {}, title), h('p', {}, t('loading'))));
    let feature: Feature;
    try {
      feature = hit.id !== undefined ? await item(layerId, hit.id) : { type: 'Feature', id: '', geometry: null, properties: hit.properties };
    } catch {
      feature = { type: 'Feature', id: hit.id ?? '', geometry: null, properties: hit.properties };
    }
    this.show(e.lngLat, await renderFeature(layerId, title, feature));
  }

  /** Closed, its content dropped (a sign-out must not leave what the previous principal read on screen). */
  close(): void {
    this.popup.remove();
    this.popup.setDOMContent(document.createElement('div'));
  }

  private show(lngLat: LngLatLike, content: HTMLElement): void {
    this.popup.setLngLat(lngLat).setDOMContent(content);
    if (!this.popup.isOpen()) this.popup.addTo(this.twin.map);
  }
}

const LINK_FIELDS = /(_url|^url|link|href)$/i;

/**
 * The value as a link target when it is an absolute http(s) URL, else null. Layer data is written by
 * others: a `javascript:` URL in a camera's snapshot_url would run in this page, with its credential,
 * when clicked; `data:`, `rtsp:` and anything unparseable are shown as text. The parser decides, not a
 * pattern (it strips the tabs, newlines and spaces that hide a scheme from a regular expression).
 */
export function webUrl(value: string): string | null {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

export async function renderFeature(layerId: string, title: string, feature: Feature): Promise<HTMLElement> {
  const schema = await queryables(layerId).catch(() => ({ properties: {} as Record<string, any> }));
  const rows: HTMLElement[] = [];
  const links: HTMLElement[] = [];
  for (const [name, value] of Object.entries(feature.properties ?? {})) {
    const prop = schema.properties[name] ?? {};
    const label = prop.title ?? name;
    const href = typeof value === 'string' && LINK_FIELDS.test(name) ? webUrl(value) : null;
    if (href) {
      const text = /snapshot/i.test(name) ? t('snapshot') : /stream/i.test(name) ? t('stream') : label;
      // Links only: nothing is fetched from the camera until the user asks (no request leaves unasked).
      links.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'popup-link', 'data-field': name }, `${text} ↗`));
    }
    rows.push(h('tr', { 'data-field': name }, h('th', {}, label), h('td', {}, formatValue(value, prop.type, prop.format))));
  }
  return h('div', { class: 'popup-body', 'data-layer': layerId, 'data-fid': String(feature.id) },
    h('h3', {}, title),
    h('table', { class: 'attributes' }, h('tbody', {}, ...rows)),
    links.length ? h('div', { class: 'popup-links' }, ...links) : null);
}
