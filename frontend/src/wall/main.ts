// The video-wall view (`/wall`): dark, full screen, no controls; the city map, KPI panels per ward and a
// rotation of saved scenes (public/assets/wall-scenes.json, or ?scenes=URL). It refreshes itself and rides
// out a server restart: every failure is retried with backoff, and sources are reloaded when it is back.
//
// Its key is part of its configuration: `/wall#key=…` once (kept in localStorage, then taken out of the
// address bar), or the one kept from before. Without one, or with one the server refuses, it shows the
// public layers.
import '../styles.css';
import { ColumnLayer } from '@deck.gl/layers';
import { allItems, Feature, getJson, HttpError, listCollections, whoAmI } from '../api';
import { adoptKeyFromFragment, currentCredential, forgetCredential } from '../credential';
import { h } from '../dom';
import { formatDateTime, formatNumber, setLang, t } from '../i18n';
import { readiness } from '../readiness';
import { TwinMap } from '../twinmap';
import { computeKpis, Kpis } from './kpi';

interface Scene {
  name: string;
  center: [number, number];
  zoom: number;
  pitch?: number;
  bearing?: number;
  layers: string[];
  seconds?: number;
}

interface WallConfig {
  refresh_seconds?: number;
  reload_hours?: number;
  scenes: Scene[];
}

const state = readiness('wall');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retry `task` until it works: 1 s, 2 s, 4 s … up to 60 s between tries; an error `giveUp` names is thrown. */
async function withBackoff<T>(task: () => Promise<T>, onFail?: (e: unknown) => void, giveUp?: (e: unknown) => boolean): Promise<T> {
  for (let delay = 1000; ; delay = Math.min(delay * 2, 60000)) {
    try {
      return await task();
    } catch (error) {
      if (giveUp?.(error)) throw error;
      onFail?.(error);
      await sleep(delay);
    }
  }
}

/** The wall's principal: a refused key is forgotten (the wall goes on with the public layers) and said so. */
async function signIn(onFail: () => void): Promise<{ principal: string; refused: string | null }> {
  adoptKeyFromFragment();
  try {
    return { principal: (await withBackoff(() => whoAmI(), onFail, isRefusal)).principal, refused: null };
  } catch (error) {
    forgetCredential(); // only a refusal gets here
    const me = await withBackoff(() => whoAmI(), onFail);
    return { principal: me.principal, refused: (error as HttpError).detail };
  }
}

/** A 401 to a request that carried a credential: the key is not (or no longer) valid; retrying will not help. */
function isRefusal(error: unknown): boolean {
  return error instanceof HttpError && error.status === 401 && currentCredential() !== null;
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  setLang(params.get('lang') === 'en' ? 'en' : 'vi');
  const offline = h('div', { class: 'offline', hidden: true }, t('offline'));
  const setOffline = (down: boolean) => (offline.hidden = !down);
  // A key revoked while the wall runs: start again, which forgets it and shows the public layers.
  const failed = (error: unknown) => (isRefusal(error) ? location.reload() : setOffline(true));
  const refusedNotice = h('div', { class: 'wall-notice', 'data-test': 'key-refused', hidden: true });
  const me = await signIn(() => setOffline(true));
  state.principal = me.principal;
  if (me.refused) {
    refusedNotice.textContent = `${t('keyRefused')} (${me.refused})`;
    refusedNotice.hidden = false;
  }
  const config = await withBackoff(() => getJson<WallConfig>(params.get('scenes') ?? '/assets/wall-scenes.json'), failed);
  const scenes = config.scenes.length ? config.scenes : [{ name: t('province'), center: [109.2, 13.79], zoom: 11.5, layers: ['wards', 'roads'] } as Scene];
  const first = scenes[0];

  // Scenes, text and symbols are designed for 1920×1080: larger walls show the same picture, sharper,
  // by laying the page out at 1080p and scaling it up (the map renders at the real device resolution).
  const scale = Math.max(1, Math.min(window.innerWidth / 1920, window.innerHeight / 1080));
  const app = document.getElementById('app')!;
  if (scale > 1) {
    Object.assign(app.style, { width: `${window.innerWidth / scale}px`, height: `${window.innerHeight / scale}px`,
      transform: `scale(${scale})`, transformOrigin: '0 0', position: 'absolute' });
    app.style.setProperty('--u', `${window.innerHeight / scale / 100}px`);
  }
  const mapEl = h('div', { id: 'map' });
  const sceneTitle = h('div', { class: 'scene-title' }, first.name);
  const clock = h('div', { class: 'clock' });
  const totals = h('div', { class: 'kpi-totals' });
  const wardTable = h('tbody');
  const updated = h('div', { class: 'updated' });
  app.replaceChildren(
    mapEl,
    h('div', { class: 'wall-header' }, h('div', { class: 'wall-brand' }, 'TRUNG TÂM GIÁM SÁT, ĐIỀU HÀNH THÔNG MINH — QUY NHƠN'), sceneTitle, clock),
    h('section', { class: 'kpi-panel' }, totals,
      h('h2', {}, t('kpiTitle')),
      h('table', { class: 'kpi-table' },
        h('thead', {}, h('tr', {}, h('th', {}, t('kpiWard')), h('th', {}, t('kpiOpen')), h('th', {}, t('kpiOverdue')), h('th', {}, t('kpiSensors')))),
        wardTable),
      updated),
    offline,
    refusedNotice,
  );
  const tick = () => (clock.textContent = formatDateTime(new Date()));
  tick();
  setInterval(tick, 15000);

  const twin = await withBackoff(() => TwinMap.create({
    container: mapEl, theme: 'dark', state, interactive: false, terrain: false, useServerStyle: false,
    pixelRatio: (window.devicePixelRatio || 1) * scale,
    visible: new Set(first.layers), view: { center: first.center, zoom: first.zoom, pitch: first.pitch ?? 0, bearing: first.bearing ?? 0 },
  }), failed);
  setOffline(false);
  // Keep the scene's centre in the part of the map that the KPI panel does not cover.
  twin.map.setPadding({ top: mapEl.clientHeight * 0.06, right: mapEl.clientWidth * 0.28, bottom: 0, left: 0 });
  twin.map.jumpTo({ center: first.center });
  state.scene = first.name;
  (window as any).__twinApp = { twin };

  const wards = await withBackoff(() => allItems('wards', { limit: 1000 }, 5000), failed).catch(() => [] as Feature[]);
  const centroids = new Map(wards.map((w) => [String(w.properties.name), centroid(w)]));

  let wasDown = false;
  const refresh = async () => {
    try {
      const collections = await listCollections();
      const kpis = await computeKpis(collections, [...centroids.keys()]);
      renderKpis(kpis);
      setOffline(false);
      if (wasDown) twin.reloadSources();
      wasDown = false;
      return true;
    } catch (error) {
      failed(error);
      wasDown = true;
      return false;
    }
  };

  const renderKpis = (kpis: Kpis) => {
    state.kpis = { totals: kpis.totals, wards: kpis.wards.length };
    const card = (label: string, value: number | null, cls: string) =>
      value === null ? null : h('div', { class: `kpi-card ${cls}` }, h('div', { class: 'kpi-value' }, formatNumber(value)), h('div', { class: 'kpi-label' }, label));
    totals.replaceChildren(...[
      card(t('kpiOpen'), kpis.totals.open, 'open'), card(t('kpiOverdue'), kpis.totals.overdue, 'overdue'),
      card(t('kpiSensors'), kpis.totals.sensorsOver, 'sensors'), card(t('kpiVessels'), kpis.totals.vesselsAtSea, 'vessels'),
    ].filter((c): c is HTMLDivElement => c !== null));
    wardTable.replaceChildren(...kpis.wards.slice(0, 21).map((w) => h('tr', {},
      h('td', {}, w.ward), h('td', {}, formatNumber(w.open)),
      h('td', { class: w.overdue ? 'bad' : '' }, formatNumber(w.overdue)), h('td', { class: w.sensorsOver ? 'bad' : '' }, formatNumber(w.sensorsOver)))));
    updated.textContent = `${t('updated')}: ${formatDateTime(kpis.at)}`;
    const columns = kpis.wards.filter((w) => centroids.has(w.ward)).map((w) => ({ ...w, position: centroids.get(w.ward)! }));
    twin.setDeckLayer('kpi-columns', new ColumnLayer({
      id: 'kpi-columns', data: columns, diskResolution: 12, radius: 260, extruded: true, elevationScale: 1,
      getPosition: (d: any) => d.position, getElevation: (d: any) => 60 * d.open,
      getFillColor: (d: any) => (d.overdue > 0 ? [239, 71, 111, 220] : [255, 209, 102, 210]),
      updateTriggers: { getElevation: kpis.at.getTime(), getFillColor: kpis.at.getTime() },
    }));
  };

  await refresh();
  const refreshMs = (config.refresh_seconds ?? 30) * 1000;
  const loop = async () => {
    const ok = await refresh();
    setTimeout(loop, ok ? refreshMs : Math.min(refreshMs, 5000));
  };
  setTimeout(loop, refreshMs);
  setInterval(() => { if (!wasDown) twin.reloadSources(); }, refreshMs * 4);
  setTimeout(() => location.reload(), (config.reload_hours ?? 6) * 3600 * 1000);

  // Scene rotation.
  let index = 0;
  const next = () => {
    if (scenes.length < 2) return;
    index = (index + 1) % scenes.length;
    const scene = scenes[index];
    sceneTitle.textContent = scene.name;
    state.scene = scene.name;
    twin.applyVisibility(new Set(scene.layers));
    twin.map.flyTo({ center: scene.center, zoom: scene.zoom, pitch: scene.pitch ?? 0, bearing: scene.bearing ?? 0, duration: 4000, essential: true });
    setTimeout(next, (scene.seconds ?? 40) * 1000);
  };
  if (params.get('rotate') !== '0') setTimeout(next, (first.seconds ?? 40) * 1000);
}

function centroid(f: Feature): [number, number] {
  let best: number[][] = [];
  const rings = f.geometry?.type === 'MultiPolygon' ? f.geometry.coordinates.map((p: any) => p[0]) : [f.geometry?.coordinates?.[0] ?? []];
  for (const ring of rings) if (ring.length > best.length) best = ring;
  const n = Math.max(best.length, 1);
  return [best.reduce((s, c) => s + c[0], 0) / n, best.reduce((s, c) => s + c[1], 0) / n];
}

main().catch((error) => {
  console.error(error);
  state.errors.push(String(error));
  setTimeout(() => location.reload(), 10000);
});
