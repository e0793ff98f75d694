// Builds MapLibre glyph PBFs (signed distance fields) from the DejaVu TTFs in node_modules, offline.
//
// MapLibre draws labels from SDF glyph ranges fetched at `glyphs` URLs; Twin must not fetch them from
// a CDN, so the client ships its own. The SDF is computed from the vector outline (exact distance to
// the flattened contours, nonzero winding for inside), which needs no canvas and no native module.
// Ranges: Basic Latin + Latin-1, Latin Extended-A/B (ă đ ơ ư), combining marks, Latin Extended
// Additional (ạ ả ấ … ỹ: the Vietnamese tone marks), general punctuation (– … ‰ ₫).
import { mkdirSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import opentype from 'opentype.js';
import { PbfWriter } from 'pbf';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const fontDir = join(root, 'node_modules', 'dejavu-fonts-ttf', 'ttf');
const outDir = join(root, 'public', 'assets', 'glyphs');

export const FONTS = { 'DejaVu Sans Book': 'DejaVuSans.ttf', 'DejaVu Sans Bold': 'DejaVuSans-Bold.ttf' };
const RANGE_STARTS = [0, 256, 512, 768, 7680, 8192];
const SIZE = 24; // MapLibre's glyph size in pixels
const BUFFER = 3; // GLYPH_PBF_BORDER
const RADIUS = 8;
const CUTOFF = 0.25;

function flatten(commands) {
  // Contours as lists of [x, y] in pixels (y down), curves split into short segments.
  const contours = [];
  let current = null;
  let x = 0;
  let y = 0;
  const steps = 8;
  for (const c of commands) {
    if (c.type === 'M') {
      current = [[c.x, c.y]];
      contours.push(current);
    } else if (c.type === 'L') {
      current.push([c.x, c.y]);
    } else if (c.type === 'Q') {
      for (let i = 1; i <= steps; i++) {
        const t = i / steps;
        const u = 1 - t;
        current.push([u * u * x + 2 * u * t * c.x1 + t * t * c.x, u * u * y + 2 * u * t * c.y1 + t * t * c.y]);
      }
    } else if (c.type === 'C') {
      for (let i = 1; i <= steps; i++) {
        const t = i / steps;
        const u = 1 - t;
        current.push([
          u * u * u * x + 3 * u * u * t * c.x1 + 3 * u * t * t * c.x2 + t * t * t * c.x,
          u * u * u * y + 3 * u * u * t * c.y1 + 3 * u * t * t * c.y2 + t * t * t * c.y,
        ]);
      }
    } else if (c.type === 'Z') {
      if (current && current.length) current.push(current[0]);
      continue;
    }
    x = c.x;
    y = c.y;
  }
  return contours;
}

function segmentDistance2(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
  t = Math.max(0, Math.min(1, t));
  const ex = ax + t * dx - px;
  const ey = ay + t * dy - py;
  return ex * ex + ey * ey;
}

function sdf(contours, left, topY, width, height) {
  const w = width + 2 * BUFFER;
  const h = height + 2 * BUFFER;
  const data = new Uint8Array(w * h);
  for (let j = 0; j < h; j++) {
    const py = topY - BUFFER + j + 0.5;
    for (let i = 0; i < w; i++) {
      const px = left - BUFFER + i + 0.5;
      let best = Infinity;
      let winding = 0;
      for (const contour of contours) {
        for (let k = 1; k < contour.length; k++) {
          const [ax, ay] = contour[k - 1];
          const [bx, by] = contour[k];
          const d2 = segmentDistance2(px, py, ax, ay, bx, by);
          if (d2 < best) best = d2;
          if (ay <= py) {
            if (by > py && (bx - ax) * (py - ay) - (px - ax) * (by - ay) > 0) winding++;
          } else if (by <= py && (bx - ax) * (py - ay) - (px - ax) * (by - ay) < 0) winding--;
        }
      }
      const d = Math.sqrt(best) * (winding !== 0 ? -1 : 1);
      data[j * w + i] = Math.max(0, Math.min(255, Math.round(255 - 255 * (d / RADIUS + CUTOFF))));
    }
  }
  return data;
}

function glyphOf(font, code, ascender) {
  const glyph = font.charToGlyph(String.fromCodePoint(code));
  if (!glyph || glyph.index === 0) return null;
  const advance = Math.round((glyph.advanceWidth ?? 0) * (SIZE / font.unitsPerEm));
  const path = glyph.getPath(0, 0, SIZE);
  const contours = flatten(path.commands);
  if (!contours.length) return { id: code, width: 0, height: 0, left: 0, top: -ascender, advance, bitmap: null };
  const box = path.getBoundingBox();
  const left = Math.floor(box.x1);
  const topY = Math.floor(box.y1); // y down: the top edge, above the baseline when negative
  const width = Math.ceil(box.x2) - left;
  const height = Math.ceil(box.y2) - topY;
  const bitmap = sdf(contours, left, topY, width, height);
  return { id: code, width, height, left, top: -topY - ascender, advance, bitmap };
}

function writeGlyph(g, pbf) {
  pbf.writeVarintField(1, g.id);
  if (g.bitmap) pbf.writeBytesField(2, g.bitmap);
  pbf.writeVarintField(3, g.width);
  pbf.writeVarintField(4, g.height);
  pbf.writeSVarintField(5, g.left);
  pbf.writeSVarintField(6, g.top);
  pbf.writeVarintField(7, g.advance);
}

function encodeRange(name, start, glyphs) {
  const pbf = new PbfWriter();
  pbf.writeMessage(1, (stack, p) => {
    p.writeStringField(1, stack.name);
    p.writeStringField(2, `${start}-${start + 255}`);
    for (const g of stack.glyphs) p.writeMessage(3, writeGlyph, g);
  }, { name, glyphs });
  return pbf.finish();
}

function build() {
  const started = Date.now();
  let files = 0;
  for (const [name, file] of Object.entries(FONTS)) {
    const fontPath = join(fontDir, file);
    const dir = join(outDir, name);
    const marker = join(dir, '0-255.pbf');
    if (existsSync(marker) && statSync(marker).mtimeMs > statSync(fontPath).mtimeMs
        && statSync(marker).mtimeMs > statSync(fileURLToPath(import.meta.url)).mtimeMs) continue;
    const buffer = readFileSync(fontPath);
    const font = opentype.parse(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength));
    const ascender = Math.round(font.tables.hhea.ascender * (SIZE / font.unitsPerEm));
    mkdirSync(dir, { recursive: true });
    for (const start of RANGE_STARTS) {
      const glyphs = [];
      for (let code = start; code < start + 256; code++) {
        const g = glyphOf(font, code, ascender);
        if (g) glyphs.push(g);
      }
      writeFileSync(join(dir, `${start}-${start + 255}.pbf`), encodeRange(name, start, glyphs));
      files++;
    }
  }
  console.log(`glyphs: ${files} range files in ${((Date.now() - started) / 1000).toFixed(1)} s -> ${outDir}`);
}

build();
