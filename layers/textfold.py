"""Case and accent folding for CQL2's CASEI and ACCENTI, the same in Python and in both databases.

"Quy Nhơn", "QUY NHƠN" and "quy nhon" must meet whichever database stores
them. Neither database folds text the same way: SQLite's ``lower()`` knows only
ASCII, PostgreSQL's follows the database's locale (only ASCII under ``C``), and
``unaccent`` is an extension a province's DBA may not allow. So Twin folds by
tables built here from Unicode's own data (``str.lower`` and the canonical
decomposition): SQLite calls these functions, PostgreSQL runs the same tables
through its built-in ``translate()``, and literals are folded in Python.

The tables cover Latin (with Vietnamese: ơ, ư, ạ … ỹ, and đ), Greek and
Cyrillic, one character to one character, which is what ``translate()`` does.
"""

from __future__ import annotations

import unicodedata

#: Code points folded: Latin-1 to Latin Extended-B, Greek and Cyrillic, Latin Extended Additional.
_RANGES = (range(0xC0, 0x250), range(0x370, 0x530), range(0x1E00, 0x1F00))

#: Letters with a stroke or other mark that is not a combining character in Unicode's decomposition.
_UNDECOMPOSABLE = {"đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ħ": "h", "Ħ": "H"}


def _tables() -> tuple[dict[str, str], dict[str, str]]:
    lower: dict[str, str] = {}
    bare: dict[str, str] = dict(_UNDECOMPOSABLE)
    for block in _RANGES:
        for code in block:
            char = chr(code)
            folded = char.lower()
            if len(folded) == 1 and folded != char:
                lower[char] = folded
            base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
            if len(base) == 1 and base != char:
                bare.setdefault(char, base)
    return lower, bare


_LOWER, _BARE = _tables()
#: Combining marks, deleted by accent folding: text stored decomposed (NFD: "o" + horn + acute) folds too.
_MARKS = "".join(chr(c) for c in range(0x300, 0x370))
_LOWER_TABLE = str.maketrans({**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}, **_LOWER})
_BARE_TABLE = str.maketrans({**_BARE, **dict.fromkeys(_MARKS)})

#: (from, to) strings for SQL ``translate()``: non-ASCII capitals to small letters (ASCII is left to ``lower()``).
CASE_TRANSLATION = ("".join(_LOWER), "".join(_LOWER.values()))
#: (from, to) strings for SQL ``translate()``: accented letters to their base letters; the combining
#: marks at the end of ``from`` have no counterpart in ``to``, so ``translate()`` deletes them.
ACCENT_TRANSLATION = ("".join(_BARE) + _MARKS, "".join(_BARE.values()))


def fold_case(text: str | None) -> str | None:
    """CASEI: small letters for capitals, as the databases will fold them."""
    return None if text is None else text.translate(_LOWER_TABLE)


def fold_accents(text: str | None) -> str | None:
    """ACCENTI: base letters for accented ones ("Quy Nhơn" → "Quy Nhon", "Đống Đa" → "Dong Da")."""
    return None if text is None else text.translate(_BARE_TABLE)
