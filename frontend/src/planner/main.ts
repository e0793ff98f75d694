// The planner view (`/`): sign-in, layer tree, 3D map, popups, attribute table with CQL2 filters, drawing, search.
import '../styles.css';
import { NavigationControl, ScaleControl } from 'maplibre-gl';
import { HttpError } from '../api';
import { currentCredential } from '../credential';
import { h } from '../dom';
import { lang, setLang, t } from '../i18n';
import { readiness } from '../readiness';
import { DEFAULT_VISIBLE } from '../style';
import { HOME, TwinMap } from '../twinmap';
import { DrawTool } from './draw';
import { readHash, writeHash } from './hash';
import { LayerTree } from './layertree';
import { FeaturePopup } from './popup';
import { SearchBox } from './search';
import { SignIn, startingPrincipal } from './signin';
import { AttributeTable } from './table';

const CATALOG_REFRESH_MS = 30000;

async function main(): Promise<void> {
  const state = readiness('planner');
  const initial = readHash();
  setLang(initial.lang ?? 'vi');
  document.title = t('appTitle');
  let terrain = initial.terrain ?? true;

  const mapEl = h('div', { id: 'map' });
  const side = h('aside', { class: 'sidebar' });
  const header = h('header', { class: 'topbar' });
  document.getElementById('app')!.replaceChildren(header, h('div', { class: 'body' }, side, mapEl));

  // Who we are decides what the map lists: asked before the catalogue is read.
  const start = await startingPrincipal();
  const twin = await TwinMap.create({
    container: mapEl, theme: 'light', state, terrain, useServerStyle: new URLSearchParams(location.search).get('style') === 'server',
    visible: new Set(initial.layers ?? DEFAULT_VISIBLE), view: initial.view ?? HOME,
  });
  (window as any).__twinApp = { twin };
  twin.map.addControl(new NavigationControl({ visualizePitch: true }), 'top-right');
  twin.map.addControl(new ScaleControl({ unit: 'metric' }), 'bottom-left');

  const popup = new FeaturePopup(twin);
  const draw = new DrawTool(twin, popup, state);
  const table = new AttributeTable(twin);
  const search = new SearchBox(twin, state);
  const tree = new LayerTree(twin, () => {
    saveHash();
    if (!table.element.hidden) table.refreshLayers();
  });
  const signin = new SignIn(start.me, start.config, async (me) => {
    // Everything read with the previous credential goes; the map reads the catalogue again first, so the
    // tree, the table's layers and the layers to query are the ones the new principal may read.
    await twin.reload();
    popup.close();
    search.reset();
    draw.reset();
    table.reset();
    tree.render();
    saveHash();
    state.principal = me.principal;
  });
  if (start.problem) signin.showError(start.problem);
  Object.assign((window as any).__twinApp, { draw, table, search, tree, signin });
  twin.map.once('load', () => tree.render()); // legends read the loaded style

  const terrainBox = h('input', { type: 'checkbox', checked: terrain, 'data-test': 'terrain', onchange: (e: Event) => {
    terrain = (e.target as HTMLInputElement).checked;
    twin.setTerrain(terrain);
    saveHash();
  } });
  header.append(
    h('h1', {}, 'Twin'),
    search.element,
    h('button', { 'data-test': 'open-table', onclick: () => table.toggle() }, t('table')),
    h('button', { 'data-test': 'open-draw', onclick: () => draw.toggle() }, t('draw')),
    h('label', { class: 'terrain-toggle' }, terrainBox, ' ', t('terrain')),
    h('button', { 'data-test': 'lang', class: 'lang', onclick: () => {
      setLang(lang() === 'vi' ? 'en' : 'vi');
      saveHash();
      window.location.reload();
    } }, t('language')),
  );
  side.append(signin.element);
  if (!state.tiles) side.append(h('p', { class: 'notice' }, t('noTiles')));
  side.append(tree.element);
  mapEl.append(draw.element, table.element);

  function saveHash(): void {
    const c = twin.map.getCenter();
    writeHash({
      view: { center: [c.lng, c.lat], zoom: twin.map.getZoom(), pitch: twin.map.getPitch(), bearing: twin.map.getBearing() },
      layers: twin.infos.map((i) => i.collection.id).filter((id) => twin.visible.has(id)),
      lang: lang(),
      terrain,
    });
  }
  twin.map.on('moveend', saveHash);
  state.principal = start.me.principal;
  window.addEventListener('hashchange', () => {
    const next = readHash();
    if (next.view) twin.map.jumpTo(next.view);
    if (next.layers) {
      twin.applyVisibility(new Set(next.layers));
      tree.render();
    }
  });

  window.setInterval(async () => {
    try {
      if ((await twin.refreshCatalog('light')).length) {
        tree.render();
        state.layers = twin.infos.map((i) => i.collection.id);
      }
    } catch (error) {
      // A 401 with a credential: it was revoked or has expired since the sign-in. Anything else: the
      // server is away; try at the next tick.
      if (error instanceof HttpError && error.status === 401 && currentCredential()) await signin.refused(error.detail);
    }
  }, CATALOG_REFRESH_MS);
}

main().catch((error) => {
  console.error(error);
  window.__twin?.errors.push(String(error));
  document.getElementById('app')!.append(h('p', { class: 'fatal' }, `${t('error')}: ${String(error)}`));
});
