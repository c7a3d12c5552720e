"""What a name may contain: people's names (the registry, enrollment) and channel names.

A name is shown on pages, printed on the desk's screen, written to the audit log and signed into
the e-card. Characters that change how the text *around* them is shown, or that are not seen at
all, have no place in it:

* C0 and C1 control characters (ESC starts terminal escape sequences, BEL rings, CR/LF split a
  log line), line and paragraph separators;
* bidirectional controls (U+202A..U+202E embeddings and overrides, U+2066..U+2069 isolates,
  U+200E/U+200F/U+061C marks): ``"\\u202eLi Lei"`` shows reversed and can hide a different name;
* other invisible format characters (zero-width space U+200B, word joiner U+2060, BOM U+FEFF,
  soft hyphen, tag characters) and the invisible Hangul fillers;
* private-use, unassigned and lone surrogate code points.

Zero-width (non-)joiners U+200C/U+200D are kept where scripts need them (between two letters of
Arabic, Syriac, Mongolian, N'Ko or an Indic script) and refused anywhere else.

A person's name is NFC-normalised and may hold letters of any script, combining marks after a
letter, spaces (runs of any Unicode space become one ASCII space) and the punctuation names use:
hyphen ``-``/``‐``, apostrophe ``'``/``’``, full stop ``.`` and the middle dot ``·`` (U+00B7,
which separates the parts of transliterated minority and foreign names: ``阿依古丽·买买提``).
Look-alike dots (``・``, ``･``, ``‧``, ``•``, ``∙``, ``⋅``) are normalised to U+00B7. Digits and
symbols are refused. Every refusal is :class:`~ecard.errors.InvalidNameError` (``invalid_name``,
HTTP 422) with a message naming the character and why.
"""

from __future__ import annotations

import unicodedata

from ecard.errors import InvalidNameError

#: Longest name accepted, in characters (after normalisation).
MAX_NAME_LENGTH = 100
#: Punctuation a person's name may contain besides letters, marks and spaces.
NAME_PUNCTUATION = frozenset("-\u2010'\u2019.\u00b7")
#: Middle-dot look-alikes typed in place of U+00B7 (katakana and halfwidth middle dots,
#: hyphenation point, bullet, bullet operator, dot operator).
_MIDDLE_DOTS = str.maketrans(dict.fromkeys("\u30fb\uff65\u2027\u2022\u2219\u22c5", "\u00b7"))
#: Most combining marks accepted on one letter (Vietnamese needs two; more is "Zalgo" text).
MAX_MARKS = 4
_JOINERS = frozenset("\u200c\u200d")
#: Scripts that use ZWNJ/ZWJ inside words (first word of the Unicode character name).
_JOINING_SCRIPTS = frozenset(
    {
        "ARABIC", "SYRIAC", "MONGOLIAN", "NKO", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI",
        "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "TIBETAN", "MYANMAR",
        "KHMER",
    }
)  # fmt: skip
#: Letters (category Lo) that show as nothing.
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _cp(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return ""


def _joiner_ok(text: str, i: int) -> bool:
    """A ZWNJ/ZWJ at ``text[i]`` sits between two letters (or mark, letter) of one joining
    script."""
    if i == 0 or i + 1 >= len(text):
        return False
    before, after = text[i - 1], text[i + 1]
    if unicodedata.category(before)[0] not in "LM" or unicodedata.category(after)[0] != "L":
        return False
    script = _script(before)
    return script in _JOINING_SCRIPTS and _script(after) == script


def _refuse_invisible(text: str, what: str) -> None:
    """Refuse control, format (bidi, zero-width), separator, private-use, unassigned and
    surrogate code points: the checks every name shares."""
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if cat == "Cc":
            raise InvalidNameError(f"The {what} contains a control character ({_cp(ch)}).")
        if ch in _BIDI:
            raise InvalidNameError(
                f"The {what} contains a bidirectional control character ({_cp(ch)}), which "
                "makes text show in another order than it is stored."
            )
        if cat == "Cf" and not (ch in _JOINERS and _joiner_ok(text, i)):
            raise InvalidNameError(
                f"The {what} contains an invisible formatting character ({_cp(ch)})."
            )
        if cat in ("Zl", "Zp"):
            raise InvalidNameError(f"The {what} contains a line or paragraph separator.")
        if cat == "Co":
            raise InvalidNameError(f"The {what} contains a private-use character ({_cp(ch)}).")
        if cat in ("Cn", "Cs"):
            raise InvalidNameError(f"The {what} contains an unassigned code point ({_cp(ch)}).")
        if ch in _INVISIBLE_LETTERS:
            raise InvalidNameError(f"The {what} contains an invisible character ({_cp(ch)}).")


def _normalise(value: object, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"The {what} must be text.")
    text = unicodedata.normalize("NFC", value)
    _refuse_invisible(text, what)
    text = " ".join(text.split())  # any run of Unicode spaces: one ASCII space
    if not text:
        raise InvalidNameError(f"The {what} is empty.")
    if len(text) > max_length:
        raise InvalidNameError(f"The {what} is longer than {max_length} characters.")
    return text


def check_name(value: object) -> str:
    """A person's name, NFC-normalised with single spaces, or :class:`InvalidNameError`.

    Accepts letters of any script with their combining marks, spaces, ``-`` ``‐`` ``'`` ``’``
    ``.`` and the middle dot ``·`` (look-alike dots become U+00B7); at most
    :data:`MAX_NAME_LENGTH` characters. Refuses control, bidi and invisible characters, digits
    and symbols, with a message that names the character. Call it wherever a name enters: the
    registry (``add_citizen``, the CSV import), the channel's ``authorize``, the web models.
    """
    text = _normalise(value, "name", MAX_NAME_LENGTH).translate(_MIDDLE_DOTS)
    marks = 0
    previous = " "
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] == "M":
            marks += 1
            if unicodedata.category(previous)[0] not in "LM":
                raise InvalidNameError(f"The name has a combining mark ({_cp(ch)}) on no letter.")
            if marks > MAX_MARKS:
                raise InvalidNameError("The name has too many combining marks on one letter.")
        else:
            marks = 0
        if cat[0] not in "LM" and ch != " " and ch not in NAME_PUNCTUATION and ch not in _JOINERS:
            kind = "a digit" if cat[0] == "N" else "a character names do not use"
            raise InvalidNameError(f"The name contains {kind}: {ch!r} ({_cp(ch)}).")
        previous = ch
    if not any(unicodedata.category(ch)[0] == "L" for ch in text):
        raise InvalidNameError("The name has no letters.")
    return text


def check_label(value: object, *, what: str = "channel name", max_length: int = 100) -> str:
    """A display name that is not a person's (a channel, a hospital): any visible character,
    digits and symbols included, NFC-normalised with single spaces; control, bidi and invisible
    characters refused as in :func:`check_name`."""
    return _normalise(value, what, max_length)
