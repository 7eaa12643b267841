"""Multilingual ROUGE / chrF / BLEU: tokenizer, hand-computed scores, offline `evaluate` loading, input errors."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

from xlm_swcm_hf.metrics import (
    METRIC_PATH,
    MultilingualTokenizer,
    compute_generation_metrics,
    load_metric,
    multilingual_tokenize,
)


FVS1, FVS4, MVS, ZWNJ, ZWJ = "\u180b", "\u180f", "\u180e", "\u200c", "\u200d"

SAMPLES = {
    "bo": "བོད་ཀྱི་སྐད་ཡིག་ནི་རྒྱ་ཆེ།",
    "ug": "ئۇيغۇر تىلى ناھايىتى گۈزەل.",
    "kk": "Қазақ тілі — мемлекеттік тіл.",
    "mn-Cyrl": "Монгол хэл бол үндэсний хэл.",
    "mn-Mong": f"ᠮᠣᠩᠭ{FVS1}ᠣᠯ ᠬᠡᠯᠡ ᠪᠢᠴᠢᠭ᠃",
    "zh": "我爱北京天安门。",
    "en": "The quick brown fox jumps over the lazy dog.",
}
ROUGE_KEYS = [f"{t}{s}" for t in ("rouge1", "rouge2", "rougeL") for s in ("", "_precision", "_recall")]


@pytest.fixture(scope="module")
def metric():
    return load_metric()


# --- tokenizer -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        # tsheg U+0F0B and shad U+0F0D are dropped; subjoined ya (U+0FB1) and vowel signs stay in the syllable
        ("བོད་ཀྱི་སྐད་ཡིག།", ["བོད", "ཀྱི", "སྐད", "ཡིག"]),
        # non-breaking tsheg U+0F0C, tsheg before shad, double shad U+0F0E, gter tsheg U+0F14
        ("ང༌ཡིན་། ཀ༎ཁ༔ག", ["ང", "ཡིན", "ཀ", "ཁ", "ག"]),
        # Chinese: one token per character, punctuation dropped, Latin run casefolded
        ("XLM模型，很好！", ["xlm", "模", "型", "很", "好"]),
        ("日本語のテスト・한국어", ["日", "本", "語", "の", "テ", "ス", "ト", "한", "국", "어"]),
        # Uyghur (Arabic script): whitespace/punctuation-delimited runs; Arabic comma U+060C splits
        ("ئۇيغۇر تىلى، ياخشى!", ["ئۇيغۇر", "تىلى", "ياخشى"]),
        ("Қазақ тілі — тамаша.", ["қазақ", "тілі", "тамаша"]),
        ("Монгол Улс", ["монгол", "улс"]),
        ("ҚАЗАҚ Straße", ["қазақ", "strasse"]),
        ("Hello, world! don't 3.14", ["hello", "world", "don", "t", "3", "14"]),
    ],
)
def test_tokenize(text, expected):
    assert multilingual_tokenize(text) == expected
    assert MultilingualTokenizer().tokenize(text) == expected


def test_tokenize_keeps_combining_marks_and_mongolian_format_characters_inside_words():
    assert multilingual_tokenize("x\u0301y z") == ["x\u0301y", "z"]  # no precomposed form: the mark stays
    assert multilingual_tokenize("كِتَابٌ جَدِيدٌ") == ["كِتَابٌ", "جَدِيدٌ"]  # Arabic harakat (Mn)
    assert multilingual_tokenize(f"ᠮᠣᠩᠭ{FVS1}ᠣᠯ") == [f"ᠮᠣᠩᠭ{FVS1}ᠣᠯ"]
    assert multilingual_tokenize(f"ᠭ{FVS4}ᠠ ᠬᠠᠷ{MVS}ᠠ") == [f"ᠭ{FVS4}ᠠ", f"ᠬᠠᠷ{MVS}ᠠ"]
    assert multilingual_tokenize(f"ab{ZWNJ}cd e{ZWJ}f") == [f"ab{ZWNJ}cd", f"e{ZWJ}f"]
    # joiners only between word characters; invisible format characters (RLM, soft hyphen) are dropped
    assert multilingual_tokenize(f"{ZWJ}ᠠ{ZWJ} ab\u00adcd\u200f") == ["ᠠ", "abcd"]
    # splitters: Mongolian full stop U+1803, narrow no-break space U+202F before a suffix, zero width space
    assert multilingual_tokenize("ᠠ᠃ᠮᠣᠩᠭᠣᠯ\u202fᠤᠨ x\u200by") == ["ᠠ", "ᠮᠣᠩᠭᠣᠯ", "ᠤᠨ", "x", "y"]


def test_tokenize_normalizes_and_handles_empty_text():
    assert multilingual_tokenize("cafe\u0301") == multilingual_tokenize("café") == ["café"]  # NFKC
    assert multilingual_tokenize("ＡＢＣ１２") == ["abc12"]  # full-width forms
    assert multilingual_tokenize("") == multilingual_tokenize(" ，。་། ") == []
    assert pickle.loads(pickle.dumps(MultilingualTokenizer())).tokenize("ཀ་ཁ") == ["ཀ", "ཁ"]


# --- why this exists: the stock rouge_score tokenizer -------------------------------------------------------


@pytest.mark.parametrize("lang", ["bo", "ug", "kk", "mn-Cyrl", "mn-Mong", "zh"])
def test_stock_rouge_score_gives_zero_for_identical_non_latin_text(lang):
    text = SAMPLES[lang]
    stock = rouge_scorer.RougeScorer(["rouge1", "rougeL"]).score(text, text)
    assert stock["rouge1"].fmeasure == stock["rougeL"].fmeasure == 0.0  # [a-z0-9] only: no tokens at all
    ours = rouge_scorer.RougeScorer(["rouge1", "rougeL"], tokenizer=MultilingualTokenizer()).score(text, text)
    assert ours["rouge1"].fmeasure == ours["rougeL"].fmeasure == 1.0


# --- ROUGE values ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", list(SAMPLES))
def test_identical_strings_score_one(metric, lang):
    scores = metric.compute(predictions=[SAMPLES[lang]], references=[SAMPLES[lang]], bleu_tokenize="char")
    assert {key: scores[key] for key in ROUGE_KEYS} == pytest.approx(dict.fromkeys(ROUGE_KEYS, 1.0))
    assert scores["chrf"] == pytest.approx(100.0)
    assert scores["bleu"] == pytest.approx(100.0)


def test_hand_computed_chinese(metric):
    # pred 北京我爱 -> [北 京 我 爱], ref 我爱北京 -> [我 爱 北 京]
    # ROUGE-1: all 4 unigrams match -> P = R = F = 4/4 = 1
    # ROUGE-2: pred {北京, 京我, 我爱}, ref {我爱, 爱北, 北京}: 2 match -> P = R = F = 2/3
    # ROUGE-L: LCS = 2 (北京 or 我爱) -> P = R = F = 2/4 = 0.5
    scores = metric.compute(predictions=["北京我爱"], references=["我爱北京"], translation_metrics=False)
    expected = {"rouge1": 1.0, "rouge2": 2 / 3, "rougeL": 0.5}
    for rouge_type, value in expected.items():
        for suffix in ("", "_precision", "_recall"):
            assert scores[rouge_type + suffix] == pytest.approx(value)


def test_hand_computed_kazakh_cyrillic(metric):
    # pred -> [мен тілін қазақ көремін] (4), ref -> [мен қазақ тілін жақсы көремін] (5); casefolded
    # ROUGE-1: 4 matches -> P = 4/4 = 1, R = 4/5, F = 2*1*0.8/1.8 = 8/9
    # ROUGE-2: pred {мен тілін, тілін қазақ, қазақ көремін}, ref {мен қазақ, қазақ тілін, тілін жақсы,
    #          жақсы көремін}: no match -> 0
    # ROUGE-L: LCS = 3 (мен қазақ көремін) -> P = 3/4, R = 3/5, F = 2*0.75*0.6/1.35 = 2/3
    scores = metric.compute(
        predictions=["Мен тілін қазақ көремін"],
        references=["Мен қазақ тілін жақсы көремін."],
        translation_metrics=False,
    )
    expected = {
        "rouge1": 8 / 9, "rouge1_precision": 1.0, "rouge1_recall": 0.8,
        "rouge2": 0.0, "rouge2_precision": 0.0, "rouge2_recall": 0.0,
        "rougeL": 2 / 3, "rougeL_precision": 0.75, "rougeL_recall": 0.6,
    }  # fmt: skip
    assert scores == pytest.approx(expected)


def test_hand_computed_tibetan_mean_and_per_example(metric):
    # ex 1: pred [བོད སྐད], ref [བོད ཀྱི སྐད ཡིག]: R1 P = 2/2, R = 2/4, F = 2/3; R2: (བོད སྐད) unmatched -> 0;
    #       RL: LCS 2 -> same as R1.   ex 2: identical -> all 1.   Mean: R1/RL F = (2/3 + 1)/2 = 5/6, R = 0.75
    predictions = ["བོད་སྐད།", "སྐད་ཡིག"]
    references = ["བོད་ཀྱི་སྐད་ཡིག།", "སྐད་ཡིག"]
    per_example = metric.compute(
        predictions=predictions, references=references, use_aggregator=False, translation_metrics=False
    )
    assert per_example["rouge1"] == pytest.approx([2 / 3, 1.0])
    assert per_example["rouge1_recall"] == pytest.approx([0.5, 1.0])
    assert per_example["rouge2"] == pytest.approx([0.0, 1.0])
    assert per_example["rougeL_precision"] == pytest.approx([1.0, 1.0])
    mean = metric.compute(predictions=predictions, references=references, translation_metrics=False)
    assert mean["rouge1"] == mean["rougeL"] == pytest.approx(5 / 6)
    assert mean["rougeL_recall"] == pytest.approx(0.75)
    assert mean["rouge2"] == pytest.approx(0.5)


def test_multiple_references_and_options(metric):
    # ROUGE takes the best reference per type; "rougeLsum" and a custom callable tokenizer are accepted
    scores = metric.compute(predictions=["a b c"], references=[["x y", "a b c"]], rouge_types=["rouge1", "rougeLsum"])
    assert scores["rouge1"] == scores["rougeLsum"] == 1.0 and "rouge2" not in scores
    assert scores["chrf"] == pytest.approx(100.0)
    # custom tokenizer (callable): str.split is case-sensitive, [a, b] vs [a, B] -> 1 of 2 -> 0.5; ours casefolds
    assert metric.compute(predictions=["a b"], references=["a B"], tokenizer=str.split)["rouge1"] == 0.5
    assert metric.compute(predictions=["a b"], references=["a B"])["rouge1"] == 1.0


# --- chrF and BLEU --------------------------------------------------------------------------------------------


def test_chrf_and_bleu(metric):
    english = [SAMPLES["en"], "A second sentence that is long enough for four-grams."]
    same = metric.compute(predictions=english, references=english)
    assert same["chrf"] == pytest.approx(100.0) and same["bleu"] == pytest.approx(100.0)

    partial = metric.compute(predictions=["The quick brown fox jumps over a lazy cat."], references=[SAMPLES["en"]])
    assert 0.0 < partial["bleu"] < 100.0 and 0.0 < partial["chrf"] < 100.0
    direct = BLEU(tokenize="13a").corpus_score(["The quick brown fox jumps over a lazy cat."], [[SAMPLES["en"]]])
    assert partial["bleu"] == pytest.approx(direct.score)

    # 13a leaves unsegmented Chinese as one "word" (+ the full stop): identical text still gets BLEU 0,
    # hence bleu_tokenize="char"/"zh" for Chinese and "multilingual" (ROUGE tokens) for Tibetan.
    zh = [SAMPLES["zh"]]
    assert metric.compute(predictions=zh, references=zh)["bleu"] == 0.0
    assert metric.compute(predictions=zh, references=zh, bleu_tokenize="zh")["bleu"] == pytest.approx(100.0)
    bo = [SAMPLES["bo"]]
    assert metric.compute(predictions=bo, references=bo, bleu_tokenize="multilingual")["bleu"] == pytest.approx(100.0)
    assert "chrf" not in metric.compute(predictions=zh, references=zh, translation_metrics=False)


def test_compute_generation_metrics_reports_percent():
    scores = compute_generation_metrics(["Мен тілін қазақ көремін"], ["Мен қазақ тілін жақсы көремін."])
    assert set(scores) == {*ROUGE_KEYS, "chrf", "bleu"}
    assert all(isinstance(value, float) for value in scores.values())
    assert (scores["rouge1"], scores["rouge1_recall"], scores["rougeL"], scores["rouge2"]) == (88.89, 80.0, 66.67, 0.0)
    assert 0.0 < scores["chrf"] < 100.0
    same = compute_generation_metrics([SAMPLES["zh"]], [SAMPLES["zh"]], bleu_tokenize="char")
    assert same == dict.fromkeys([*ROUGE_KEYS, "chrf", "bleu"], 100.0)


# --- input errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "predictions, references, message",
    [
        ([], [], "must not be empty"),
        (["a"], [], "must not be empty"),
        (["a", "b"], ["a"], "Mismatch in the number of predictions"),
    ],
)
def test_bad_inputs_raise_value_error(metric, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        metric.compute(predictions=predictions, references=references)
    with pytest.raises(ValueError, match=message):
        compute_generation_metrics(predictions, references)


def test_other_invalid_arguments():
    with pytest.raises(ValueError, match="not a single string"):
        compute_generation_metrics("abc", "abc")
    with pytest.raises(ValueError, match="Invalid rouge_types"):
        compute_generation_metrics(["a"], ["a"], rouge_types=["rougeX"])
    with pytest.raises(ValueError, match="same number of references"):
        compute_generation_metrics(["a", "b"], [["a"], ["b", "c"]])


# --- offline loading by `evaluate` ----------------------------------------------------------------------------


def test_evaluate_load_offline_from_a_copied_folder(tmp_path):
    # A cold evaluate cache, Hub offline and a dead proxy: evaluate.load(<folder>) must not need the network.
    # The folder is copied elsewhere to show it is self-contained (no import of the xlm_swcm_hf package).
    folder = shutil.copytree(METRIC_PATH, tmp_path / "multilingual_rouge", ignore=shutil.ignore_patterns("__pycache__"))
    script = textwrap.dedent(
        f"""
        import json, sys
        import evaluate
        metric = evaluate.load({str(folder)!r})
        scores = metric.compute(predictions=[{SAMPLES["bo"]!r}], references=[{SAMPLES["bo"]!r}])
        print(json.dumps({{"name": metric.name, "scores": scores, "package": "xlm_swcm_hf" in sys.modules}}))
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["name"] == "multilingual_rouge"
    assert result["scores"]["rougeL"] == result["scores"]["rougeL_precision"] == 1.0
    assert result["scores"]["chrf"] == pytest.approx(100.0)
    assert result["package"] is False
    assert (tmp_path / "modules" / "evaluate_modules" / "metrics" / "multilingual_rouge").is_dir()


# --- script detection and the off-target rate ----------------------------------------------------------------
from xlm_swcm_hf.metrics import OFF_TARGET_THRESHOLD, off_target_rate, script_share, target_script  # noqa: E402


@pytest.mark.parametrize(
    "tag, script",
    [
        ("bo", "Tibetan"),
        ("ug", "Arabic"),
        ("kk", "Cyrillic"),
        ("kk_Arab", "Arabic"),
        ("mn", "Cyrillic"),
        ("mn_Mong", "Mongolian"),
        ("zh", "Han"),
        ("en", "Latin"),
    ],
)
def test_a_tag_s_script(tag, script):
    assert target_script(tag) == script


def test_unknown_tags_and_scripts_are_refused():
    with pytest.raises(ValueError, match="no script known"):
        target_script("fr")
    with pytest.raises(ValueError, match="unknown script 'Zzzz'"):
        target_script("kk_Zzzz")


# (text, tag, share): real text in each script, mixed text, and text with no letters
SHARES = [
    (SAMPLES["bo"], "bo", 1.0),  # subjoined letters and vowel signs are marks, not counted; tsheg and shad neither
    (SAMPLES["ug"], "ug", 1.0),
    ("ئۇيغۇرـــچە", "ug", 1.0),  # the tatweel is "Common" by Script, Arabic by Script_Extensions
    (SAMPLES["kk"], "kk", 1.0),
    (SAMPLES["kk"], "kk_Arab", 0.0),
    ("قازاق تىلى", "kk_Arab", 1.0),
    (SAMPLES["mn-Cyrl"], "mn", 1.0),
    (SAMPLES["mn-Mong"], "mn_Mong", 1.0),  # the free variation selector is a mark, not a letter
    (SAMPLES["mn-Mong"], "mn", 0.0),
    (SAMPLES["zh"], "zh", 1.0),
    ("々日本", "zh", 1.0),
    ("ひらがな", "zh", 0.0),  # kana is not Han
    ("USB 闪存盘", "zh", 0.5),  # three Latin letters, three Han
    ("西亚 Asia", "zh", 1 / 3),
    (SAMPLES["en"], "en", 1.0),
    (SAMPLES["en"], "ug", 0.0),
    ("Монгол Улс, 2024 он", "mn", 1.0),  # digits, comma and spaces are not letters
    ("།", "bo", 0.0),  # only punctuation: no letter is in the script
    ("123", "zh", 0.0),
    ("", "kk", 0.0),
]


@pytest.mark.parametrize("text, tag, share", SHARES)
def test_script_share_counts_letters_only(text, tag, share):
    assert script_share(text, tag) == pytest.approx(share)


def test_off_target_rate_counts_below_the_threshold_and_empty_outputs():
    assert OFF_TARGET_THRESHOLD == 0.5
    texts = ["我们学习语言", "We learn languages", "", "USB 闪存盘", "西亚 Asia"]
    # on target: the first, and the mixed one at exactly the threshold; off: Latin, empty, a third Han
    assert off_target_rate(texts, ["zh"] * 5) == 60.0
    assert off_target_rate(texts, ["zh"] * 5, threshold=0.3) == 40.0
    assert off_target_rate(["ᠮᠣᠩᠭᠣᠯ", "Монгол"], ["mn_Mong", "mn_Mong"]) == 50.0
    assert off_target_rate(["ᠮᠣᠩᠭᠣᠯ", "Монгол"], ["mn_Mong", "mn"]) == 0.0  # each text against its own tag
    with pytest.raises(ValueError, match="as many tags as texts"):
        off_target_rate(["a"], ["zh", "zh"])
    with pytest.raises(ValueError, match="as many tags as texts"):
        off_target_rate([], [])
