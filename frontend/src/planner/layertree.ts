// The layer tree: layers grouped by kind, each with visibility, opacity and its legend.
import { h } from '../dom';
import { t, MessageKey } from '../i18n';
import { legendOf } from '../style';
import type { TwinMap } from '../twinmap';

const KIND_ORDER = ['admin_area', 'address_point', 'address', 'parcel', 'infrastructure', 'camera', 'sensor', 'vessel', 'incident', 'generic'];

export class LayerTree {
  readonly element = h('div', { class: 'layer-tree' });

  constructor(private readonly twin: TwinMap, private readonly onChange: () => void) {
    this.render();
  }

  render(): void {
    const groups = new Map<string, typeof this.twin.infos>();
    for (const info of this.twin.infos) {
      const kind = info.collection['twin:kind'] ?? 'generic';
      if (!groups.has(kind)) groups.set(kind, []);
      groups.get(kind)!.push(info);
    }
    const kinds = [...groups.keys()].sort((a, b) => rank(a) - rank(b));
    this.element.replaceChildren(
      h('h2', {}, t('layers')),
      ...kinds.map((kind) => h('details', { class: 'kind', open: true, 'data-kind': kind },
        h('summary', {}, t(`kind_${kind}` as MessageKey) ?? kind),
        ...groups.get(kind)!.map((info) => this.row(info.collection.id, info.collection.title)))),
    );
  }

  private row(id: string, title: string): HTMLElement {
    const checkbox = h('input', {
      type: 'checkbox', checked: this.twin.visible.has(id), 'data-layer': id,
      onchange: (e: Event) => {
        this.twin.setVisible(id, (e.target as HTMLInputElement).checked);
        this.onChange();
      },
    });
    const opacity = h('input', {
      type: 'range', min: 0, max: 1, step: 0.05, value: '1', title: t('opacity'), class: 'opacity', 'data-opacity': id,
      oninput: (e: Event) => this.twin.setOpacity(id, Number((e.target as HTMLInputElement).value)),
    });
    return h('div', { class: 'layer-row' },
      h('label', { class: 'layer-name' }, checkbox, ' ', title),
      opacity,
      this.legend(id),
    );
  }

  private legend(id: string): HTMLElement {
    const entries = (this.twin.map.getStyle()?.layers ?? [])
      .filter((l) => (l.metadata as any)?.['twin:layer'] === id && !['label', 'casing', 'count'].includes((l.metadata as any)?.['twin:role']))
      .flatMap((l) => legendOf(l));
    const seen = new Set<string>();
    const unique = entries.filter((e) => (seen.has(e.label + e.color) ? false : (seen.add(e.label + e.color), true)));
    return h('div', { class: 'legend' }, ...unique.slice(0, 16).map((e) => h('span', { class: 'legend-entry', title: e.label },
      h('i', { class: `swatch ${e.shape}`, style: `--c:${e.color}` }), e.label ? ` ${e.label}` : '')));
  }
}

function rank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i < 0 ? KIND_ORDER.length : i;
}
