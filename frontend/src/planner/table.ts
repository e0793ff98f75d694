// The attribute table of one layer, filtered by conditions the user builds; the filter is CQL2 text that
// the server evaluates (the browser never filters rows itself), paged through the server's `next` links.
import { Feature, FeaturePage, items, itemsUrl, nextPage, queryables, Queryables, request } from '../api';
import { combine, condition, Condition, Operator, OPERATORS } from '../cql2';
import { download, h } from '../dom';
import { formatNumber, formatValue, t } from '../i18n';
import type { TwinMap } from '../twinmap';

const PAGE = 100;

export class AttributeTable {
  readonly element = h('div', { class: 'table-panel panel', hidden: true });
  private layerSelect = h('select', { 'data-test': 'table-layer' });
  private conditions = h('div', { class: 'conditions' });
  private joiner = h('select', { 'data-test': 'joiner' }, h('option', { value: 'AND' }, t('all')), h('option', { value: 'OR' }, t('any')));
  private inView = h('input', { type: 'checkbox', 'data-test': 'in-view' });
  private cql = h('code', { class: 'cql', 'data-test': 'cql' });
  private status = h('span', { class: 'status' });
  private body = h('tbody');
  private head = h('thead');
  private moreButton = h('button', { onclick: () => void this.more(), hidden: true }, t('more'));
  // A button, not a link: a link's request cannot carry the credential header, a fetch can.
  private csvLink = h('button', { class: 'csv-link', 'data-test': 'export-table-csv', onclick: () => void this.exportCsv() }, t('exportCsv'));
  private csvUrl: string | null = null;
  private schema: Queryables | null = null;
  private next: string | undefined;
  // The latest layer choice and the latest load win: an answer to an older one (a layer switched away from,
  // a load overtaken by another, anything asked before a sign-out) is dropped, never appended.
  private selecting = 0;
  private loading = 0;

  constructor(private readonly twin: TwinMap) {
    this.layerSelect.addEventListener('change', () => void this.selectLayer(this.layerSelect.value));
    this.element.append(
      h('div', { class: 'panel-head' }, h('h2', {}, t('table')), this.layerSelect,
        h('button', { class: 'close', onclick: () => this.toggle(), title: t('close') }, '×')),
      h('div', { class: 'filter-builder' },
        h('strong', {}, t('filter')), ' ', this.joiner, ' ',
        h('label', {}, this.inView, ' ', t('onlyInView')),
        this.conditions,
        h('button', { 'data-test': 'add-condition', onclick: () => this.addCondition() }, `+ ${t('addCondition')}`), ' ',
        h('button', { 'data-test': 'apply-filter', class: 'primary', onclick: () => void this.load() }, t('apply')),
        h('div', {}, 'CQL2: ', this.cql)),
      h('div', { class: 'table-status' }, this.status, ' ', this.csvLink),
      h('div', { class: 'table-scroll' }, h('table', { class: 'attributes-table' }, this.head, this.body)),
      this.moreButton,
    );
  }

  toggle(): void {
    this.element.hidden = !this.element.hidden;
    if (!this.element.hidden) this.refreshLayers();
  }

  refreshLayers(): void {
    const current = this.layerSelect.value;
    const visible = this.twin.infos.filter((i) => this.twin.visible.has(i.collection.id));
    const options = (visible.length ? visible : this.twin.infos).map((i) => h('option', { value: i.collection.id }, i.collection.title));
    this.layerSelect.replaceChildren(...options);
    const keep = options.some((o) => o.value === current) ? current : options[0]?.value;
    if (keep) {
      this.layerSelect.value = keep;
      if (keep !== current || !this.schema) void this.selectLayer(keep);
    }
  }

  /** Emptied for a new credential: the rows, columns and filters were the previous principal's. */
  reset(): void {
    this.selecting += 1;
    this.loading += 1;
    this.schema = null;
    this.next = undefined;
    this.csvUrl = null;
    this.conditions.replaceChildren();
    this.head.replaceChildren();
    this.body.replaceChildren();
    this.status.textContent = '';
    delete this.status.dataset.matched;
    this.moreButton.hidden = true;
    this.layerSelect.replaceChildren();
    if (!this.element.hidden) this.refreshLayers();
  }

  async open(layer: string): Promise<void> {
    this.element.hidden = false;
    this.refreshLayers();
    if (![...this.layerSelect.options].some((o) => o.value === layer)) {
      this.layerSelect.append(h('option', { value: layer }, this.twin.collection(layer)?.title ?? layer));
    }
    this.layerSelect.value = layer;
    await this.selectLayer(layer);
  }

  private async selectLayer(layer: string): Promise<void> {
    const asked = ++this.selecting;
    const schema = await queryables(layer);
    if (asked !== this.selecting) return;
    this.schema = schema;
    this.conditions.replaceChildren();
    this.head.replaceChildren(h('tr', {}, h('th', {}, 'id'),
      ...Object.entries(this.schema.properties).map(([name, p]) => h('th', { title: name }, p.title ?? name))));
    await this.load();
  }

  addCondition(initial?: Partial<Condition>): void {
    if (!this.schema) return;
    const props = this.schema.properties;
    const field = h('select', { class: 'field' }, ...Object.entries(props).map(([name, p]) => h('option', { value: name }, p.title ?? name)));
    const op = h('select', { class: 'op' }, ...OPERATORS.map((o) => h('option', { value: o }, o)));
    const valueBox = h('span', { class: 'value-box' });
    const renderValue = () => {
      const p = props[field.value] ?? {};
      const input = p.enum && op.value !== 'LIKE'
        ? h('select', { class: 'value', multiple: op.value === 'IN' }, ...p.enum.map((v) => h('option', { value: String(v) }, String(v))))
        : h('input', { class: 'value', type: p.type === 'number' || p.type === 'integer' ? 'number' : p.format === 'date-time' ? 'datetime-local' : 'text' });
      valueBox.replaceChildren(input);
    };
    field.addEventListener('change', renderValue);
    op.addEventListener('change', renderValue);
    if (initial?.property) field.value = initial.property;
    if (initial?.op) op.value = initial.op;
    renderValue();
    if (initial?.value !== undefined) (valueBox.firstElementChild as HTMLInputElement).value = initial.value;
    const row = h('div', { class: 'condition' }, field, op, valueBox, h('button', { onclick: () => row.remove(), title: t('clear') }, '−'));
    this.conditions.append(row);
  }

  /** The filter as CQL2 text, from the condition rows. */
  cql2(): string {
    if (!this.schema) return '';
    const parts = [...this.conditions.querySelectorAll<HTMLElement>('.condition')].map((row) => {
      const property = row.querySelector<HTMLSelectElement>('.field')!.value;
      const op = row.querySelector<HTMLSelectElement>('.op')!.value as Operator;
      const input = row.querySelector<HTMLInputElement | HTMLSelectElement>('.value');
      let value = input?.value ?? '';
      if (input instanceof HTMLSelectElement && input.multiple) value = [...input.selectedOptions].map((o) => o.value).join(',');
      const p = this.schema!.properties[property] ?? {};
      if (value === '' && op !== 'IS NULL' && op !== 'IS NOT NULL') return '';
      return condition({ property, op, value, type: p.format === 'date-time' ? 'date-time' : p.type });
    });
    return combine(parts, this.joiner.value as 'AND' | 'OR');
  }

  async load(): Promise<void> {
    const layer = this.layerSelect.value;
    if (!layer || !this.schema) return;
    const filter = this.cql2();
    this.cql.textContent = filter || '—';
    const b = this.twin.map.getBounds();
    const bbox = this.inView.checked ? [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()] as [number, number, number, number] : undefined;
    this.status.textContent = t('loading');
    this.body.replaceChildren();
    const asked = ++this.loading;
    try {
      const page = await items(layer, { filter, bbox, limit: PAGE });
      if (asked !== this.loading) return;
      this.csvUrl = itemsUrl(layer, { filter, bbox, limit: 10000 }, 'csv');
      this.show(page, true);
    } catch (error) {
      if (asked === this.loading) this.status.textContent = `${t('error')}: ${(error as Error).message}`;
    }
  }

  private async exportCsv(): Promise<void> {
    if (!this.csvUrl) return;
    try {
      const response = await request(this.csvUrl, { headers: { Accept: 'text/csv' } });
      download(`twin-${this.layerSelect.value}.csv`, await response.blob(), 'text/csv;charset=utf-8');
    } catch (error) {
      this.status.textContent = `${t('error')}: ${(error as Error).message}`;
    }
  }

  private async more(): Promise<void> {
    const asked = this.loading;
    if (!this.next) return;
    const page = await nextPage(this.next);
    if (asked === this.loading) this.show(page, false);
  }

  private show(page: FeaturePage, first: boolean): void {
    const names = Object.keys(this.schema!.properties);
    this.body.append(...page.features.map((f) => this.row(f, names)));
    this.next = page.next;
    this.moreButton.hidden = !page.next;
    if (first) {
      const total = page.numberMatched !== undefined ? formatNumber(page.numberMatched) : page.next ? `> ${formatNumber(2000)}` : formatNumber(page.numberReturned);
      this.status.textContent = `${t('matched')}: ${total}`;
      this.status.dataset.matched = String(page.numberMatched ?? '');
    }
  }

  private row(f: Feature, names: string[]): HTMLElement {
    const props = this.schema!.properties;
    return h('tr', { 'data-fid': String(f.id), onclick: () => this.zoomTo(f) }, h('td', {}, String(f.id)),
      ...names.map((n) => h('td', {}, formatValue(f.properties[n], props[n]?.type, props[n]?.format))));
  }

  private zoomTo(f: Feature): void {
    zoomToFeature(this.twin, f);
  }
}

export function zoomToFeature(twin: TwinMap, f: Feature): void {
  if (!f.geometry) return;
  const coords: [number, number][] = [];
  const walk = (c: any) => (typeof c[0] === 'number' ? coords.push(c) : c.forEach(walk));
  walk(f.geometry.coordinates);
  if (coords.length === 1) {
    twin.map.flyTo({ center: coords[0], zoom: Math.max(twin.map.getZoom(), 17.5) });
    return;
  }
  const xs = coords.map((c) => c[0]);
  const ys = coords.map((c) => c[1]);
  twin.map.fitBounds([[Math.min(...xs), Math.min(...ys)], [Math.max(...xs), Math.max(...ys)]], { padding: 60, maxZoom: 18 });
}
