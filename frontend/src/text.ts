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

/** Text for a CQL2 LIKE pattern, its wildcards `%` and `_` (and the escape `\\`) taken literally. */
export function likeEscape(text: string): string {
  return text.replace(/[\\%_]/g, (ch) => `\\${ch}`);
}
