// Find an address point, a parcel or a ward by text, diacritics-insensitive ("quy nhon" finds "Quy Nhơn").
//
// Wards (a few dozen) are matched here against their folded names; address points are asked of the
// server with CQL2's ACCENTI(CASEI(…)) LIKE, which folds marks, đ and case in the database (both
// SpatiaLite and PostGIS); parcels are found by "thửa N tờ M" or "N/M".
import { allItems, Feature, items } from '../api';
import { literal } from '../cql2';
import { h } from '../dom';
import { t } from '../i18n';
import type { Readiness } from '../readiness';
import { fold, likeEscape } from '../text';
import type { TwinMap } from '../twinmap';
import { zoomToFeature } from './table';

interface Hit {
  layer: string;
  label: string;
  feature: Feature;
}

export class SearchBox {
  readonly element = h('div', { class: 'search' });
  private input = h('input', { type: 'search', placeholder: t('search'), 'data-test': 'search', autocomplete: 'off' });
  private list = h('ul', { class: 'search-results', hidden: true });
  private timer: number | undefined;
  private wards: Feature[] | null = null;
  private seq = 0;

  constructor(private readonly twin: TwinMap, private readonly state: Readiness) {
    this.input.addEventListener('input', () => {
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => void this.search(this.input.value), 300);
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') (this.list.querySelector('li') as HTMLElement | null)?.click();
      if (e.key === 'Escape') this.list.hidden = true;
    });
    this.element.append(this.input, this.list);
  }

  /** Forgotten for a new credential: the wards and results were read with the previous one. */
  reset(): void {
    this.seq += 1;
    this.wards = null;
    this.input.value = '';
    this.list.replaceChildren();
    this.list.hidden = true;
    this.state.lastSearch = null;
  }

  async search(query: string): Promise<Hit[]> {
    const seq = ++this.seq;
    const q = fold(query);
    if (q.length < 2) {
      this.list.hidden = true;
      return [];
    }
    const layers = new Set(this.twin.infos.map((i) => i.collection.id));
    const parts = await Promise.all([
      layers.has('wards') ? this.searchWards(q) : [],
      layers.has('address_points') ? this.searchAddresses(query) : [],
      layers.has('parcels') ? this.searchParcels(q) : [],
    ]);
    if (seq !== this.seq) return [];
    const hits = parts.flat().slice(0, 20);
    this.state.lastSearch = { query, results: hits.map((hit) => ({ layer: hit.layer, label: hit.label })) };
    this.list.replaceChildren(...(hits.length ? hits.map((hit) => h('li', {
      'data-layer': hit.layer,
      onclick: () => {
        this.list.hidden = true;
        this.input.value = hit.label;
        if (!this.twin.visible.has(hit.layer)) this.twin.setVisible(hit.layer, true);
        zoomToFeature(this.twin, hit.feature);
      },
    }, h('span', { class: 'hit-layer' }, this.twin.collection(hit.layer)?.title ?? hit.layer), ' ', hit.label))
      : [h('li', { class: 'empty' }, t('noResults'))]));
    this.list.hidden = false;
    return hits;
  }

  private async searchWards(q: string): Promise<Hit[]> {
    this.wards ??= await allItems('wards', { limit: 1000 }, 5000).catch(() => []);
    return this.wards
      .filter((f) => fold(String(f.properties.name ?? '')).includes(q))
      .slice(0, 5)
      .map((f) => ({ layer: 'wards', label: `${f.properties.ward_type ?? ''} ${f.properties.name}`.trim(), feature: f }));
  }

  private async searchAddresses(raw: string): Promise<Hit[]> {
    const words = raw.trim().split(/\s+/).filter(Boolean).map(likeEscape);
    if (!words.length) return [];
    const pattern = literal(`%${words.join('%')}%`);
    const filter = `ACCENTI(CASEI(full_address)) LIKE ACCENTI(CASEI(${pattern}))`;
    const page = await items('address_points', { filter, limit: 10 }).catch(() => null);
    return (page?.features ?? [])
      .slice(0, 10)
      .map((f) => ({ layer: 'address_points', label: String(f.properties.full_address), feature: f }));
  }

  private async searchParcels(q: string): Promise<Hit[]> {
    const m = q.match(/thua\s*(\w+).*?to\s*(\w+)/) ?? q.match(/^(\w+)\s*\/\s*(\w+)$/);
    const m2 = q.match(/to\s*(\w+).*?thua\s*(\w+)/);
    const [parcel, sheet] = m ? [m[1], m[2]] : m2 ? [m2[2], m2[1]] : [null, null];
    if (!parcel || !sheet) return [];
    const filter = `parcel_no = ${literal(parcel)} AND map_sheet = ${literal(sheet)}`;
    const page = await items('parcels', { filter, limit: 10 }).catch(() => null);
    return (page?.features ?? []).map((f) => ({
      layer: 'parcels', label: `Thửa ${f.properties.parcel_no}, tờ ${f.properties.map_sheet} — ${f.properties.ward ?? ''}`, feature: f,
    }));
  }
}
