// KPIs per ward, computed here from OGC items queries until the server has a KPI endpoint
// (proposed: GET /kpis/wards). Each query asks only the properties it needs.
import { allItems, Collection, Feature } from '../api';
import { t } from '../i18n';

export interface WardKpi {
  ward: string;
  open: number;
  overdue: number;
  sensorsOver: number;
}

export interface Kpis {
  wards: WardKpi[];
  totals: { open: number | null; overdue: number | null; sensorsOver: number | null; vesselsAtSea: number | null };
  at: Date;
}

export async function computeKpis(collections: Collection[], wardNames: string[], now = new Date()): Promise<Kpis> {
  const has = (id: string) => collections.some((c) => c.id === id);
  const table = new Map<string, WardKpi>(wardNames.map((w) => [w, { ward: w, open: 0, overdue: 0, sensorsOver: 0 }]));
  const row = (w: unknown) => {
    const key = w === null || w === undefined || w === '' ? t('outsideWards') : String(w);
    if (!table.has(key)) table.set(key, { ward: key, open: 0, overdue: 0, sensorsOver: 0 });
    return table.get(key)!;
  };
  const [incidents, sensors, vessels] = await Promise.all([
    has('incidents')
      ? allItems('incidents', { filter: "status IN ('new', 'in_progress')", properties: ['ward', 'due_at'], limit: 5000 }, 20000)
      : null,
    has('sensors') ? allItems('sensors', { properties: ['ward', 'last_value', 'threshold'], limit: 5000 }, 20000) : null,
    has('vessels') ? allItems('vessels', { filter: "status <> 'anchored'", properties: [], limit: 5000 }, 20000) : null,
  ]);
  let overdue = 0;
  for (const f of incidents ?? []) {
    const r = row(f.properties.ward);
    r.open++;
    if (isOverdue(f, now)) (r.overdue++, overdue++);
  }
  let over = 0;
  for (const f of sensors ?? []) {
    const value = Number(f.properties.last_value);
    const threshold = Number(f.properties.threshold);
    if (Number.isFinite(value) && Number.isFinite(threshold) && value > threshold) (row(f.properties.ward).sensorsOver++, over++);
  }
  return {
    wards: [...table.values()].sort((a, b) => b.open - a.open || b.sensorsOver - a.sensorsOver || a.ward.localeCompare(b.ward, 'vi')),
    totals: {
      open: incidents ? incidents.length : null,
      overdue: incidents ? overdue : null,
      sensorsOver: sensors ? over : null,
      vesselsAtSea: vessels ? vessels.length : null,
    },
    at: now,
  };
}

function isOverdue(f: Feature, now: Date): boolean {
  const due = f.properties.due_at;
  return typeof due === 'string' && new Date(due).getTime() < now.getTime();
}
