// Vietnamese text without diacritics, for search: "Quy Nhơn" and "quy nhon" compare equal.

export function fold(text: string): string {
  return text
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

const VARIABLE_LETTERS = /[aăâeêioôơuưydđ]/i;

/**
 * CQL2 LIKE patterns that catch the accented spellings of an unaccented query.
 *
 * The server's CQL2 has no ACCENTI/CASEI yet, so every letter that Vietnamese decorates (vowels, d/đ)
 * becomes the one-character wildcard `_`, in lower case and in Title Case (PostGIS LIKE is
 * case-sensitive). The caller filters the answers again with `fold` to drop false friends
 * ("nhan" would also match "nh_n").
 */
export function likePatterns(query: string): string[] {
  const folded = fold(query).replace(/[%_'\\]/g, '');
  if (!folded) return [];
  const wild = (word: string) => [...word].map((ch) => (VARIABLE_LETTERS.test(ch) ? '_' : ch)).join('');
  const words = folded.split(' ');
  const lower = words.map(wild).join(' ');
  const title = words.map((w) => wild(w.charAt(0).toUpperCase() + w.slice(1))).join(' ');
  return [...new Set([`%${lower}%`, `%${title}%`])];
}
