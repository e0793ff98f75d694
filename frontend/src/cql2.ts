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
const WGS84_A = 6378137;
const WGS84_F = 1 / 298.257223563;
const WGS84_B = WGS84_A * (1 - WGS84_F);

/** The point `distanceM` metres from `from` at `bearingDeg`, on the WGS84 ellipsoid (Vincenty's direct formula). */
export function destination(from: Position, bearingDeg: number, distanceM: number): Position {
  const rad = Math.PI / 180;
  const alpha1 = bearingDeg * rad;
  const sinAlpha1 = Math.sin(alpha1);
  const cosAlpha1 = Math.cos(alpha1);
  const tanU1 = (1 - WGS84_F) * Math.tan(from[1] * rad);
  const cosU1 = 1 / Math.sqrt(1 + tanU1 * tanU1);
  const sinU1 = tanU1 * cosU1;
  const sigma1 = Math.atan2(tanU1, cosAlpha1);
  const sinAlpha = cosU1 * sinAlpha1;
  const cosSqAlpha = 1 - sinAlpha * sinAlpha;
  const uSq = (cosSqAlpha * (WGS84_A * WGS84_A - WGS84_B * WGS84_B)) / (WGS84_B * WGS84_B);
  const A = 1 + (uSq / 16384) * (4096 + uSq * (-768 + uSq * (320 - 175 * uSq)));
  const B = (uSq / 1024) * (256 + uSq * (-128 + uSq * (74 - 47 * uSq)));
  let sigma = distanceM / (WGS84_B * A);
  let cos2SigmaM = 0;
  let sinSigma = 0;
  let cosSigma = 0;
  for (let i = 0; i < 100; i++) {
    cos2SigmaM = Math.cos(2 * sigma1 + sigma);
    sinSigma = Math.sin(sigma);
    cosSigma = Math.cos(sigma);
    const deltaSigma = B * sinSigma * (cos2SigmaM + (B / 4) * (cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)
      - (B / 6) * cos2SigmaM * (-3 + 4 * sinSigma * sinSigma) * (-3 + 4 * cos2SigmaM * cos2SigmaM)));
    const next = distanceM / (WGS84_B * A) + deltaSigma;
    if (Math.abs(next - sigma) < 1e-12) {
      sigma = next;
      break;
    }
    sigma = next;
  }
  cos2SigmaM = Math.cos(2 * sigma1 + sigma);
  sinSigma = Math.sin(sigma);
  cosSigma = Math.cos(sigma);
  const x = sinU1 * sinSigma - cosU1 * cosSigma * cosAlpha1;
  const lat2 = Math.atan2(sinU1 * cosSigma + cosU1 * sinSigma * cosAlpha1, (1 - WGS84_F) * Math.sqrt(sinAlpha * sinAlpha + x * x));
  const lambda = Math.atan2(sinSigma * sinAlpha1, cosU1 * cosSigma - sinU1 * sinSigma * cosAlpha1);
  const C = (WGS84_F / 16) * cosSqAlpha * (4 + WGS84_F * (4 - 3 * cosSqAlpha));
  const L = lambda - (1 - C) * WGS84_F * sinAlpha
    * (sigma + C * sinSigma * (cos2SigmaM + C * cosSigma * (-1 + 2 * cos2SigmaM * cos2SigmaM)));
  return [from[0] + L / rad, lat2 / rad];
}

/** A circle of `radiusM` metres on the WGS84 ellipsoid, as a closed ring of `steps` vertices. */
export function geodesicCircle(center: Position, radiusM: number, steps = 64): Position[] {
  const ring: Position[] = [];
  for (let i = 0; i < steps; i++) ring.push(destination(center, (360 * i) / steps, radiusM));
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
