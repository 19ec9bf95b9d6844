"""Unicode script tables for the language checker.

Where the script decides the language (Han, kana, Hangul, Cyrillic, Arabic, ...) no statistical detector is
needed: a word's characters say it. Only Latin-script text needs a detector (English vs French vs German).

``TOKEN_PATTERN`` scans cleaned text in one left-to-right pass. Each match is one of:

- ``brk``: a sentence break (``. ! ? ;``, a newline, CJK full stops), where Latin segments may end;
- ``latin``: a stretch of Latin-script words joined by spaces, commas, quotes, brackets or dashes, i.e. a
  clause that a detector can read as a whole;
- a script name from ``SCRIPTS``: a run of characters of that script;
- ``skip``: a run of anything else (symbols, digits, blanks), consumed in one match because a position where
  no alternative matches costs a try of every alternative.

The character classes are disjoint and the repetitions possessive, so the scan is linear: no backtracking
blow-up on long garbage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LATIN_LETTERS", "SCRIPTS", "SCRIPTS_BY_NAME", "TOKEN_PATTERN", "Script", "script_of_language"]


@dataclass(frozen=True)
class Script:
    """A writing system whose characters decide the language of a word."""

    name: str
    ranges: str
    language: str
    languages: frozenset[str]
    per_char: bool = False
    """No spaces between words (Han, kana, Thai, ...): every character counts as one word."""
    min_letters: int = 2
    """Shorter runs are symbols, not words (a lone π or θ in a formula)."""


def _script(
    name: str, ranges: str, language: str, *others: str, per_char: bool = False, min_letters: int = 2
) -> Script:
    return Script(name, ranges, language, frozenset((language, *others)), per_char, min_letters)


SCRIPTS: tuple[Script, ...] = (
    _script("han", "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f", "zh", "ja", per_char=True),
    _script("kana", "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f", "ja", per_char=True),
    _script("hangul", "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f", "ko", min_letters=1),
    _script("cyrillic", "\u0400-\u052f", "ru", "uk", "be", "bg", "sr", "mk", "kk", "ky", "mn", "tg", "tt", "ba"),
    _script("greek", "\u0370-\u03ff\u1f00-\u1fff", "el"),
    _script("arabic", "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff", "ar", "fa", "ur", "ps"),
    _script("hebrew", "\u0590-\u05ff", "he", "yi"),
    _script("devanagari", "\u0900-\u097f", "hi", "mr", "ne", "sa"),
    _script("bengali", "\u0980-\u09ff", "bn", "as"),
    _script("gurmukhi", "\u0a00-\u0a7f", "pa"),
    _script("gujarati", "\u0a80-\u0aff", "gu"),
    _script("tamil", "\u0b80-\u0bff", "ta"),
    _script("telugu", "\u0c00-\u0c7f", "te"),
    _script("kannada", "\u0c80-\u0cff", "kn"),
    _script("malayalam", "\u0d00-\u0d7f", "ml"),
    _script("sinhala", "\u0d80-\u0dff", "si"),
    _script("thai", "\u0e00-\u0e7f", "th", per_char=True),
    _script("lao", "\u0e80-\u0eff", "lo", per_char=True),
    _script("myanmar", "\u1000-\u109f", "my", per_char=True),
    _script("georgian", "\u10a0-\u10ff", "ka"),
    _script("ethiopic", "\u1200-\u137f", "am"),
    _script("khmer", "\u1780-\u17ff", "km", per_char=True),
    _script("armenian", "\u0530-\u058f", "hy"),
)
SCRIPTS_BY_NAME: dict[str, Script] = {script.name: script for script in SCRIPTS}

LATIN_LETTERS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_LATIN_WORD = f"[{LATIN_LETTERS}][{LATIN_LETTERS}\u0300-\u036f]*+"
_LATIN_JOINERS = " \t,'\"\u2019\u2018\u201c\u201d\u00ab\u00bb()\\-\u2013\u2014/&"
_BREAKS = ".!?;\n\u3002\uff01\uff1f\uff1b\u2026"

TOKEN_PATTERN = re.compile(
    "|".join(
        [
            f"(?P<brk>[{_BREAKS}]+)",
            f"(?P<latin>{_LATIN_WORD}(?:[{_LATIN_JOINERS}]++{_LATIN_WORD})*+)",
            *(f"(?P<{script.name}>[{script.ranges}]+)" for script in SCRIPTS),
            f"(?P<skip>[^{_BREAKS}{LATIN_LETTERS}{''.join(script.ranges for script in SCRIPTS)}]+)",
        ]
    )
)


def script_of_language(code: str) -> str:
    """The script a language is written in: a name from ``SCRIPTS``, or ``latin`` for the rest."""
    for script in SCRIPTS:
        if code in script.languages:
            return script.name
    return "latin"
