// KPIs per ward, counted by the server (GET /collections/{id}/counts: one GROUP BY per figure), so the
// wall never downloads features to count them. Sensors over threshold compare two properties of each
// sensor, which CQL2 filters here cannot yet express: the 200 sensors' two numbers are read instead.
import { allItems, Collection, getJson, absolute } from '../api';
import { t } from '../i18n';

interface Counts {
  counts: { value: unknown; count: number }[];
  total: number;
}

async function counts(collectionId: string, groupBy: string, filter?: string): Promise<Counts> {
  const params = new URLSearchParams({ groupBy });
  if (filter) params.set('filter', filter);
  return getJson<Counts>(absolute(`/collections/${encodeURIComponent(collectionId)}/counts?${params}`));
}

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
  const open = "status IN ('new', 'in_progress')";
  const [openByWard, overdueByWard, sensors, vessels] = await Promise.all([
    has('incidents') ? counts('incidents', 'ward', open) : null,
    has('incidents') ? counts('incidents', 'ward', `${open} AND due_at < TIMESTAMP('${now.toISOString()}')`) : null,
    has('sensors') ? allItems('sensors', { properties: ['ward', 'last_value', 'threshold'], limit: 5000 }, 20000) : null,
    has('vessels') ? counts('vessels', 'status', "status <> 'anchored'") : null,
  ]);
  for (const { value, count } of openByWard?.counts ?? []) row(value).open += count;
  for (const { value, count } of overdueByWard?.counts ?? []) row(value).overdue += count;
  let over = 0;
  for (const f of sensors ?? []) {
    const value = Number(f.properties.last_value);
    const threshold = Number(f.properties.threshold);
    if (Number.isFinite(value) && Number.isFinite(threshold) && value > threshold) (row(f.properties.ward).sensorsOver++, over++);
  }
  return {
    wards: [...table.values()].sort((a, b) => b.open - a.open || b.sensorsOver - a.sensorsOver || a.ward.localeCompare(b.ward, 'vi')),
    totals: {
      open: openByWard ? openByWard.total : null,
      overdue: overdueByWard ? overdueByWard.total : null,
      sensorsOver: sensors ? over : null,
      vesselsAtSea: vessels ? vessels.total : null,
    },
    at: now,
  };
}
