"""Back-translation: monolingual rows -> a reverse model -> training pairs, through the block engine and the script."""

import json

import pytest
from conftest import load_folder, run_script, translating_model_folder, write_jsonl

from xlm_swcm_hf.back_translation import ORIGIN, PairCounts, back_translate_file, pair_rows
from xlm_swcm_hf.data import load_task_dataset
from xlm_swcm_hf.translation import model_identity, translate_texts


MONOLINGUAL = ["ab cd", "", "ef gh ij", "kl", "mn op qr st"]


def test_pair_rows_make_training_pairs_and_count_what_is_left_out():
    counts = PairCounts()
    rows = [({"text": "real", "origin": "maqal", "license": "MIT"}, "synthetic"), ("  ", "x"), ("real 2", " ")]
    pairs = list(pair_rows(rows, text_column="text", language="ug", source_language="en", model_id="m", counts=counts))
    assert pairs == [
        {
            "source": "ug: synthetic",
            "target": "real",
            "lang": "ug",
            "src_lang": "en",
            "origin": ORIGIN,
            "origin_model": "m",
            "license": "MIT",
            "target_origin": "maqal",
        }
    ]
    assert (counts.pairs, counts.blank, counts.empty_translation) == (1, 1, 1)


def test_back_translate_file_gives_pairs_the_trainer_reads(tmp_path):
    folder = translating_model_folder(tmp_path / "model")
    model, tokenizer = load_folder(folder)
    mono = write_jsonl(
        tmp_path / "mono.jsonl", [{"text": text, "lang": "xx", "license": "CC0"} for text in MONOLINGUAL]
    )
    output = tmp_path / "pairs.jsonl"
    _, counts = back_translate_file(
        model, tokenizer, mono, output, language="xx", source_language="en", block_size=2, max_new_tokens=6,
        progress=False, model_source=folder,
    )  # fmt: skip
    expected, _ = translate_texts(model, tokenizer, MONOLINGUAL, target_language="en", max_new_tokens=6, progress=False)
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    kept = [(text, synthetic) for text, synthetic in zip(MONOLINGUAL, expected) if text and synthetic]
    assert counts.pairs == len(rows) == len(kept) > 0
    assert [(row["target"], row["source"]) for row in rows] == [(text, f"xx: {synth}") for text, synth in kept]
    assert {row["origin"] for row in rows} == {ORIGIN}
    assert {row["origin_model"] for row in rows} == {model_identity(folder)}
    assert all(row["lang"] == "xx" and row["src_lang"] == "en" and row["license"] == "CC0" for row in rows)
    formatted = load_task_dataset(output, task="translation", split="train")
    assert formatted["target_text"] == [text for text, _ in kept]
    assert not (tmp_path / "pairs.jsonl.parts").exists()


def test_back_translate_script_writes_pairs_and_refuses_to_replace_them(tmp_path, capsys):
    folder = translating_model_folder(tmp_path / "model")
    mono = tmp_path / "mono.txt"
    mono.write_text("\n".join(MONOLINGUAL) + "\n", encoding="utf-8")
    output = tmp_path / "pairs.jsonl"
    argv = ["--model", folder, "--input", mono, "--output", output, "--language", "xx", "--source-language", "en"]
    argv += ["--max-new-tokens", "6", "--no-progress"]
    assert run_script("back_translate", argv) == 0
    assert "pairs" in capsys.readouterr().out
    written = output.read_bytes()
    assert written and all(json.loads(line)["origin"] == ORIGIN for line in written.splitlines())
    assert run_script("back_translate", argv) == 2  # finished output kept without --overwrite
    assert "pass --overwrite" in capsys.readouterr().err
    assert output.read_bytes() == written
    assert run_script("back_translate", [*argv, "--overwrite"]) == 0
    assert output.read_bytes() == written


@pytest.mark.parametrize("name", ["pairs.txt", "pairs"])
def test_pairs_output_must_be_rows(tmp_path, name):
    from xlm_swcm_hf.checks import InputError

    with pytest.raises(InputError, match="must be a .jsonl or .parquet"):
        back_translate_file(None, None, tmp_path / "in.txt", tmp_path / name, language="xx", source_language="en")


def test_back_translate_file_refuses_a_row_of_another_language_before_translating(tmp_path):
    from xlm_swcm_hf.checks import InputError

    folder = translating_model_folder(tmp_path / "model")
    model, tokenizer = load_folder(folder)
    mono = write_jsonl(tmp_path / "mono.jsonl", [{"text": "ab cd", "lang": "xx"}, {"text": "ef", "lang": "ug"}])
    with pytest.raises(InputError, match="line 2: field 'lang' is 'ug', not --language xx"):
        back_translate_file(model, tokenizer, mono, tmp_path / "pairs.jsonl", language="xx", source_language="en")
    assert not (tmp_path / "pairs.jsonl").exists() and not (tmp_path / "pairs.jsonl.parts").exists()
