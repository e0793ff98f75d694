// CQL2 text built from the UI: literals, comparisons, and the geometries drawn on the map.

export type Position = [number, number];

export function literal(value: string | number | boolean, type?: string): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (type === 'number' || type === 'integer') {
    const n = Number(value);
    if (Number.isFinite(n) && value.trim() !== '') return String(n);
  }
  if (type === 'date-time') return `TIMESTAMP('${new Date(value).toISOString().replace('.000Z', 'Z')}')`;
  if (type === 'date') return `DATE('${value}')`;
  return `'${value.replace(/'/g, "''")}'`;
}

export function ident(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export type Operator = '=' | '<>' | '<' | '<=' | '>' | '>=' | 'LIKE' | 'IN' | 'IS NULL' | 'IS NOT NULL';

export const OPERATORS: Operator[] = ['=', '<>', '<', '<=', '>', '>=', 'LIKE', 'IN', 'IS NULL', 'IS NOT NULL'];

export interface Condition {
  property: string;
  op: Operator;
  value: string;
  type?: string;
}

export function condition(c: Condition): string {
  const name = ident(c.property);
  if (c.op === 'IS NULL' || c.op === 'IS NOT NULL') return `${name} ${c.op}`;
  if (c.op === 'IN') {
    const values = c.value.split(',').map((v) => v.trim()).filter(Boolean);
    return `${name} IN (${values.map((v) => literal(v, c.type)).join(', ')})`;
  }
  if (c.op === 'LIKE') {
    const pattern = c.value.includes('%') || c.value.includes('_') ? c.value : `%${c.value}%`;
    return `${name} LIKE ${literal(pattern)}`;
  }
  return `${name} ${c.op} ${literal(c.value, c.type)}`;
}

export function combine(parts: string[], joiner: 'AND' | 'OR' = 'AND'): string {
  const kept = parts.filter(Boolean);
  if (kept.length <= 1) return kept[0] ?? '';
  return kept.map((p) => `(${p})`).join(` ${joiner} `);
}

const num = (v: number) => Number(v.toFixed(7)).toString();

export function polygonWkt(ring: Position[]): string {
  const closed = ring[0][0] === ring[ring.length - 1][0] && ring[0][1] === ring[ring.length - 1][1]
    ? ring : [...ring, ring[0]];
  return `POLYGON((${closed.map(([x, y]) => `${num(x)} ${num(y)}`).join(', ')}))`;
}

export function intersects(ring: Position[], geometryProperty = 'geometry'): string {
  return `S_INTERSECTS(${ident(geometryProperty)}, ${polygonWkt(ring)})`;
}

const EARTH_RADIUS_M = 6371008.8;

/** A circle of `radiusM` metres on the sphere as a closed ring of `steps` vertices (destination formula). */
export function geodesicCircle(center: Position, radiusM: number, steps = 64): Position[] {
  const [lon, lat] = center.map((d) => (d * Math.PI) / 180);
  const delta = radiusM / EARTH_RADIUS_M;
  const ring: Position[] = [];
  for (let i = 0; i < steps; i++) {
    const bearing = (2 * Math.PI * i) / steps;
    const lat2 = Math.asin(Math.sin(lat) * Math.cos(delta) + Math.cos(lat) * Math.sin(delta) * Math.cos(bearing));
    const lon2 = lon + Math.atan2(
      Math.sin(bearing) * Math.sin(delta) * Math.cos(lat),
      Math.cos(delta) - Math.sin(lat) * Math.sin(lat2),
    );
    ring.push([(lon2 * 180) / Math.PI, (lat2 * 180) / Math.PI]);
  }
  ring.push(ring[0]);
  return ring;
}

/** Great-circle distance in metres. */
export function distanceM(a: Position, b: Position): number {
  const toRad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * toRad;
  const dLon = (b[0] - a[0]) * toRad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a[1] * toRad) * Math.cos(b[1] * toRad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.sqrt(h));
}
