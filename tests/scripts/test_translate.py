"""scripts/translate.py and xlm_swcm_hf.translation: per-sentence results in the input's order, JSONL round trip,
resume after a failure, truncation, empty lines, bad input (one error line, exit 2, nothing written)."""

import json
import shutil

import pytest
import torch
from conftest import load_folder, run_script, save_tiny_folder, tiny_model, translating_model_folder
from transformers import LogitsProcessor, LogitsProcessorList

from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.bulk_translation import scan_input, stream_rows, translate_file
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS
from xlm_swcm_hf.translation import make_batches, translate_texts


MAX_NEW_TOKENS = 6
LIMIT = 62  # max_position_embeddings 64 - pad_token_id 1 - 1


def sources():
    """Distinct texts of many lengths (whole sentences and their first words), one blank, one too long."""
    texts = list(TINY_MULTILINGUAL_TEXTS)
    texts += [" ".join(text.split()[:2]) for text in TINY_MULTILINGUAL_TEXTS if len(text.split()) > 2]
    texts.insert(3, "")
    texts.insert(7, "   ")
    texts.append(" ".join(TINY_MULTILINGUAL_TEXTS * 3))  # far beyond the position table
    return texts


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return translating_model_folder(tmp_path_factory.mktemp("translate") / "model")


@pytest.fixture(scope="module")
def loaded(folder):
    return load_folder(folder)


REFERENCES = {}


def reference(loaded, text, target_language=None, **generation):
    """`model.generate` for one source alone (truncated to the position table like the tool does); computed once."""
    key = (id(loaded[0]), text, target_language, tuple(sorted(generation.items())))
    if key not in REFERENCES:
        REFERENCES[key] = _reference(loaded, text, target_language, **generation)
    return REFERENCES[key]


def _reference(loaded, text, target_language=None, **generation):
    model, tokenizer = loaded
    if not text.strip():
        return ""
    text = f"{target_language}: {text.strip()}" if target_language else text.strip()
    batch = tokenizer([text], return_tensors="pt", truncation=True, max_length=LIMIT)
    with torch.no_grad():
        ids = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, **generation)[0]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def translate(folder, input_path, output, *extra):
    argv = ["--model", folder, "--input", input_path, "--output", output, "--max-new-tokens", MAX_NEW_TOKENS]
    return run_script("translate", [*argv, "--no-progress", *extra])


def expect_error(capsys, code, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert code == 2, err[-5:]
    assert len(errors) == 1, err[-5:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("batching", [["--batch-size", "3"], ["--max-tokens-per-batch", "40"]])
def test_text_file_gives_each_line_what_generate_gives_alone_in_order(folder, loaded, tmp_path, capsys, batching):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    code = translate(folder, tmp_path / "in.txt", tmp_path / "out.txt", *batching)
    assert code == 0
    lines = (tmp_path / "out.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(texts) + 1
    expected = [reference(loaded, text) for text in texts]
    assert len(set(expected)) > len(texts) // 2  # the outputs depend on the source: order mistakes would show
    assert lines[:-1] == expected
    assert lines[3] == "" and lines[7] == ""
    summary = capsys.readouterr().out
    assert f"translated {len(texts) - 2} sentences" in summary and "1 truncated (to 62 tokens)" in summary
    assert "sentences/s" in summary and "tokens/s" in summary and "2 empty" in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]  # no sidecar or temporary left


def test_jsonl_round_trip_with_target_language_and_beams(folder, loaded, tmp_path):
    texts = sources()[:6]
    rows = [{"id": i, "text": text, "meta": {"k": [i]}} for i, text in enumerate(texts)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    code = translate(
        folder, tmp_path / "in.jsonl", tmp_path / "out.jsonl", "--source-column", "text", "--target-language", "ug",
        "--num-beams", "2",
    )  # fmt: skip
    assert code == 0
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text("utf-8").splitlines()]
    assert [{k: v for k, v in row.items() if k != "translation"} for row in written] == rows
    assert [row["translation"] for row in written] == [reference(loaded, t, "ug", num_beams=2) for t in texts]


def test_library_functions(loaded):
    model, tokenizer = loaded
    texts = sources()
    translations, stats = translate_texts(model, tokenizer, texts, batch_size=4, progress=False, max_new_tokens=6)
    assert translations == [reference(loaded, text) for text in texts]
    assert stats.truncated == 1 and stats.truncated_indices == [len(texts) - 1] and stats.empty == 2
    assert stats.sentences == len(texts) - 2 and stats.tokens > 0
    # longest first; the token budget is never exceeded by a batch of more than one source
    lengths = [5, 9, 2, 9, 30, 1]
    assert make_batches(lengths, range(6), 2, None) == [[4, 1], [3, 0], [2, 5]]
    batches = make_batches(lengths, range(6), None, 20)
    assert batches == [[4], [1, 3], [0, 2, 5]]


def test_a_failed_run_resumes_from_the_finished_blocks(folder, loaded, tmp_path, monkeypatch, capsys):
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    output, parts = tmp_path / "out.txt", tmp_path / "out.txt.parts"
    original = XLMSWCMForConditionalGeneration.generate
    calls = []

    def failing_after_one_batch(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", failing_after_one_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        translate(folder, tmp_path / "in.txt", output, "--batch-size", "4", "--block-size", "4")
    assert not output.exists()
    assert [path.name for path in parts.iterdir()] == ["block-00000000.jsonl"]  # rows 0-3 (3 is blank)

    calls.clear()

    def counting(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", counting)
    assert translate(folder, tmp_path / "in.txt", output, "--batch-size", "4", "--block-size", "4") == 0
    assert sum(calls) == len(texts) - 2 - 3  # only what the first run did not finish (blank lines need no model)
    assert output.read_text("utf-8").split("\n")[:-1] == [reference(loaded, text) for text in texts]
    assert not parts.exists()
    assert "4 resumed" in capsys.readouterr().out


def test_blocks_from_another_run_are_refused_until_overwrite(loaded, tmp_path):
    from xlm_swcm_hf.checks import InputError

    model, tokenizer = loaded
    (tmp_path / "in.txt").write_text("\n".join(sources()[:5]) + "\n", encoding="utf-8")
    parts = tmp_path / "out.txt.parts"
    parts.mkdir()
    (parts / "block-00000000.jsonl").write_text('{"fingerprint": "other"}\n{"translation": "stale"}\n', "utf-8")
    arguments = (model, tokenizer, tmp_path / "in.txt", tmp_path / "out.txt")
    with pytest.raises(InputError, match="older or damaged block file.*--overwrite"):
        translate_file(*arguments, progress=False, max_new_tokens=6)
    assert "stale" in (parts / "block-00000000.jsonl").read_text("utf-8") and not (tmp_path / "out.txt").exists()
    stats = translate_file(*arguments, progress=False, overwrite=True, max_new_tokens=6)
    assert stats.resumed == 0 and not parts.exists()
    assert "stale" not in (tmp_path / "out.txt").read_text("utf-8")


def interrupted_run(folder, input_path, output, monkeypatch, *extra, after=1, error=KeyboardInterrupt):
    """translate.py whose generate raises `error` after `after` batches; returns its exit code."""
    original = XLMSWCMForConditionalGeneration.generate
    calls = []

    def generate(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise error()
        return original(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(XLMSWCMForConditionalGeneration, "generate", generate)
        return translate(folder, input_path, output, "--batch-size", "4", "--block-size", "4", *extra)


def test_a_folder_replaced_by_another_model_is_not_resumed_from(folder, tmp_path, monkeypatch, capsys):
    """The resume record names the model by its files' content: the same path holding another model is refused,
    with advice that works when followed (--overwrite starts over)."""
    import shutil

    model = shutil.copytree(folder, tmp_path / "model")
    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    assert interrupted_run(model, tmp_path / "in.txt", output, monkeypatch) == 130
    shutil.rmtree(model)
    save_tiny_folder(model, tiny_model(seed=7, initializer_range=0.3))  # another model at the same path
    capsys.readouterr()
    kept = {path.name: path.read_bytes() for path in (tmp_path / "out.txt.parts").iterdir()}
    message = expect_error(capsys, translate(model, tmp_path / "in.txt", output, "--batch-size", "4"), "model")
    assert "--overwrite" in message and "model (its files' content)" in message
    assert "--target-language" not in message and "input file" not in message
    assert {path.name: path.read_bytes() for path in (tmp_path / "out.txt.parts").iterdir()} == kept
    assert not output.exists()
    code = translate(model, tmp_path / "in.txt", output, "--batch-size", "4", "--num-beams", "2")
    message = expect_error(capsys, code, "model (its files' content)", "generation options")
    assert translate(model, tmp_path / "in.txt", output, "--batch-size", "4", "--overwrite") == 0
    assert "resumed" not in capsys.readouterr().out
    assert not (tmp_path / "out.txt.parts").exists()


def test_ctrl_c_and_a_full_disk_end_in_one_line_that_says_what_was_kept(folder, loaded, tmp_path, monkeypatch, capsys):
    import errno

    texts = sources()
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    output, parts = tmp_path / "out.txt", tmp_path / "out.txt.parts"
    blocks = -(-len(texts) // 4)
    assert interrupted_run(folder, tmp_path / "in.txt", output, monkeypatch) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1 and err[0].startswith("error: interrupted;"), err
    assert f"1 of this process's {blocks} blocks are finished and kept in {parts}" in err[0], err[0]
    assert "same command again" in err[0]

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:  # every block translated, then the output cannot be written
        patch.setattr("xlm_swcm_hf.bulk_translation.merge_blocks", full_disk)
        code = translate(folder, tmp_path / "in.txt", output, "--batch-size", "4", "--block-size", "4")
    message = expect_error(capsys, code, "No space left on device", "the disk is full", "kept in", "again")
    assert f"all {blocks} blocks are finished" in message
    assert not output.exists()
    assert translate(folder, tmp_path / "in.txt", output, "--batch-size", "4", "--block-size", "4") == 0
    assert output.read_text("utf-8").split("\n")[:-1] == [reference(loaded, text) for text in texts]
    assert f"{len(texts)} resumed" in capsys.readouterr().out


def test_existing_output_is_replaced_only_with_overwrite(folder, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("We learn languages.\n", encoding="utf-8")
    (tmp_path / "out.txt").write_text("keep me\n", encoding="utf-8")
    expect_error(capsys, translate(folder, tmp_path / "in.txt", tmp_path / "out.txt"), "exists", "--overwrite")
    assert (tmp_path / "out.txt").read_text("utf-8") == "keep me\n"
    assert translate(folder, tmp_path / "in.txt", tmp_path / "out.txt", "--overwrite") == 0
    assert (tmp_path / "out.txt").read_text("utf-8") != "keep me\n"


BAD = [
    ("missing.txt", [], "missing.txt does not exist"),
    ("empty.txt", [], "empty.txt is empty"),
    ("blank.txt", [], "holds only blank lines"),
    ("latin1.txt", [], "latin1.txt is not UTF-8 text"),
    ("broken.jsonl", [], "line 2 is not valid JSON"),
    ("good.jsonl", ["--source-column", "text"], "line 1 has no 'text' field"),
    ("list.jsonl", [], "line 1 is not a JSON object"),
    ("good.txt", ["--output", "{tmp}/a-file/out.txt"], "a-file is a file"),
    ("good.txt", ["--output", "{tmp}"], "is a folder; name a file"),
    ("good.txt", ["--output", "{tmp}/existing.txt"], "exists"),
    ("good.txt", ["--batch-size", "0"], "--batch-size must be >= 1"),
    ("good.txt", ["--max-tokens-per-batch", "-3"], "--max-tokens-per-batch must be >= 1"),
    ("good.txt", ["--batch-size", "2", "--max-tokens-per-batch", "50"], "not both"),
    ("good.txt", ["--max-new-tokens", "500"], "--max-new-tokens needs 500 positions"),
    ("good.txt", ["--num-beams", "0"], "--num-beams must be >= 1"),
    ("good.txt", ["--model", "{tmp}/nowhere"], "nowhere does not exist"),
    # the tags come from the model's card (ug, zh in `carded`); a malformed one is refused for any model
    ("good.txt", ["--model", "{carded}", "--target-language", "fr"], "'fr' is not a language the model was trained"),
    ("good.txt", ["--model", "{carded}", "--target-language", "fr"], "give one of ug, zh"),
    ("good.txt", ["--target-language", ""], "--target-language '' is not a language tag like ug"),
    ("good.txt", ["--target-language", "ug: zh"], "'ug: zh' is not a language tag"),
    ("good.txt", ["--model", "{carded}", "--target-language", "ug: zh"], "the model knows ug, zh"),
    ("lang.jsonl", ["--model", "{carded}"], "line 2: field 'lang' 'fr' is not a language the model was trained"),
    ("null.jsonl", [], "line 2: field 'source' is not text (got null)"),
    ("number.jsonl", [], "line 1: field 'source' is not text (got int)"),
    ("good.txt", ["--num-beams", "100000000"], "100000000 beams x 16 sentences per batch = 1600000000 sequences"),
    ("good.txt", ["--num-beams", "100000000"], "fit in this machine's memory"),
    ("good.txt", ["--max-tokens-per-batch", "50", "--num-beams", "100000000"], "lower --num-beams"),
    ("good.txt", ["--output", "{tmp}/good.txt", "--overwrite"], "is --input"),
    ("good.txt", ["--output", "{model}/out.txt", "--overwrite"], "lies inside --model"),
]


@pytest.mark.parametrize("name, extra, fragment", BAD, ids=[f"{i}-{case[0]}" for i, case in enumerate(BAD)])
def test_bad_input_is_one_error_line_and_writes_nothing(folder, tmp_path, monkeypatch, capsys, name, extra, fragment):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "broken.jsonl").write_text('{"source": "a"}\n{"source": "b\n')
    (tmp_path / "good.jsonl").write_text('{"source": "a"}\n')
    (tmp_path / "list.jsonl").write_text('["a"]\n')
    (tmp_path / "good.txt").write_text("We learn languages.\n")
    (tmp_path / "existing.txt").write_text("x\n")
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "lang.jsonl").write_text('{"source": "a", "lang": "ug"}\n{"source": "b", "lang": "fr"}\n')
    (tmp_path / "null.jsonl").write_text('{"source": "a"}\n{"source": null}\n')
    (tmp_path / "number.jsonl").write_text('{"source": 42}\n')
    carded = shutil.copytree(folder, tmp_path / "carded")
    (carded / "README.md").write_text("---\nlanguage:\n- ug\n- zh\n---\n# a model\n", encoding="utf-8")
    before = tree_digest(tmp_path)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "from_pretrained", no_model)
    extra = [item.format(tmp=tmp_path, carded=carded, model=folder) for item in extra]
    model = folder
    if "--model" in extra:
        model = extra.pop(extra.index("--model") + 1)
        extra.remove("--model")
    output = tmp_path / "out.txt"
    if "--output" in extra:
        output = extra.pop(extra.index("--output") + 1)
        extra.remove("--output")
    model_before = tree_digest(folder)
    code = translate(model, tmp_path / name, output, *extra)
    expect_error(capsys, code, fragment)
    assert tree_digest(tmp_path) == before and tree_digest(folder) == model_before


def tree_digest(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def test_the_input_stream_keeps_every_line(tmp_path):
    (tmp_path / "a.txt").write_text("one\r\n\ntwo", encoding="utf-8")
    assert list(stream_rows(tmp_path / "a.txt")) == ["one", "", "two"] and scan_input(tmp_path / "a.txt").rows == 3
    (tmp_path / "c.txt").write_text("a\rb\nc\r\n", encoding="utf-8", newline="")
    assert list(stream_rows(tmp_path / "c.txt")) == ["a\rb", "c"] and scan_input(tmp_path / "c.txt").rows == 2
    (tmp_path / "b.jsonl").write_text('{"source": ""}\n{"source": "x", "n": 1}\n', encoding="utf-8")
    assert list(stream_rows(tmp_path / "b.jsonl")) == [{"source": ""}, {"source": "x", "n": 1}]
    assert scan_input(tmp_path / "b.jsonl").rows == 2


def test_quantized_translation_keeps_lines_and_blanks(folder, tmp_path):
    pytest.importorskip("torch.ao.quantization")
    texts = sources()[:8]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert translate(folder, tmp_path / "in.txt", tmp_path / "out.txt", "--quantize", "int8") == 0
    lines = (tmp_path / "out.txt").read_text("utf-8").split("\n")[:-1]
    assert len(lines) == len(texts) and lines[3] == "" and lines[7] == "" and all(lines[:3])


@pytest.mark.slow
def test_translate_py_under_torchrun_gives_the_one_process_output(folder, tmp_path):
    """`torchrun --nproc-per-node 2 scripts/translate.py ...` over the c10d rendezvous (the path several machines
    take): the blocks are shared, the main process merges, and the file equals a one-process run's, byte for byte."""
    import os
    import socket
    import subprocess
    import sys

    from conftest import ROOT

    texts = sources() * 3
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"source": t, "n": i}) + "\n" for i, t in enumerate(texts)))
    assert translate(folder, tmp_path / "in.jsonl", tmp_path / "one.jsonl", "--block-size", "8") == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2", "--max-restarts"),
        *("0", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}"),
        str(ROOT / "scripts" / "translate.py"),
        *("--model", str(folder), "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "two.jsonl")),
        *("--max-new-tokens", str(MAX_NEW_TOKENS), "--block-size", "8", "--no-progress"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "process 0 of 2" in result.stdout and "process 1 of 2" in result.stdout
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "one.jsonl", "two.jsonl"]


# ---------------------------------------------------------------------------------- output vocabularies (issue 32)
SPECIALS = [0, 1, 2, 3]
VOCABULARIES = {"ug": SPECIALS + list(range(10, 45)), "zh": SPECIALS + list(range(40, 99, 2))}


@pytest.fixture(scope="module")
def vocabulary_folder(tmp_path_factory):
    """The translating folder with output vocabularies for ug and zh (none for xx)."""
    path = translating_model_folder(tmp_path_factory.mktemp("vocabularies") / "model")
    model = XLMSWCMForConditionalGeneration.from_pretrained(path)
    model.set_output_vocabularies(VOCABULARIES)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vocabulary_loaded(vocabulary_folder):
    return load_folder(vocabulary_folder)


def test_rows_decode_within_their_languages_vocabulary_unless_full_vocabulary(
    vocabulary_folder, vocabulary_loaded, tmp_path
):
    loaded = vocabulary_loaded
    assert loaded[0].output_vocabularies == VOCABULARIES
    texts = [text for text in sources()[:9] if text.strip()][:6]
    # batches of 3 mix ug, zh and xx (no vocabulary): each row must still get what it gets alone
    languages = ["ug", "zh", "xx", "zh", "xx", "ug"]
    rows = [{"source": text, "lang": language} for text, language in zip(texts, languages)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    restricted = [
        reference(loaded, text, **({"output_languages": tag} if tag in VOCABULARIES else {}))
        for text, tag in zip(texts, languages)
    ]
    full = [reference(loaded, text) for text in texts]
    # the vocabularies change these outputs: a run that ignored them would fail here
    assert [a != b for a, b in zip(restricted, full)].count(True) >= 2
    assert all(a == b for a, b, tag in zip(restricted, full, languages) if tag == "xx")

    for extra, expected in (([], restricted), (["--full-vocabulary"], full)):
        output = tmp_path / f"out{len(extra)}.jsonl"
        assert translate(vocabulary_folder, tmp_path / "in.jsonl", output, "--batch-size", "3", *extra) == 0
        assert [json.loads(line)["translation"] for line in output.read_text("utf-8").splitlines()] == expected

    # a text file: --target-language is every row's tag; without it, a source's own leading tag
    (tmp_path / "in.txt").write_text("\n".join(texts[:3]) + "\n", encoding="utf-8")
    assert translate(vocabulary_folder, tmp_path / "in.txt", tmp_path / "zh.txt", "--target-language", "zh") == 0
    expected = [reference(loaded, text, "zh", output_languages="zh") for text in texts[:3]]
    assert (tmp_path / "zh.txt").read_text("utf-8").splitlines() == expected
    (tmp_path / "tagged.txt").write_text("\n".join(f"ug: {text}" for text in texts[:3]) + "\n", encoding="utf-8")
    assert translate(vocabulary_folder, tmp_path / "tagged.txt", tmp_path / "ug.txt") == 0
    expected = [reference(loaded, text, "ug", output_languages="ug") for text in texts[:3]]
    assert (tmp_path / "ug.txt").read_text("utf-8").splitlines() == expected


def test_blocks_of_a_run_with_the_vocabularies_are_not_resumed_with_full_vocabulary(
    vocabulary_folder, tmp_path, monkeypatch, capsys
):
    (tmp_path / "in.txt").write_text("\n".join(sources()[:4]) + "\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    original = XLMSWCMForConditionalGeneration.generate
    calls = []

    def failing_after_one_batch(self, *args, **kwargs):
        calls.append(kwargs.get("output_languages"))
        if len(calls) > 1:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", failing_after_one_batch)
    argv = ("--target-language", "ug", "--batch-size", "2", "--block-size", "2")
    with pytest.raises(RuntimeError, match="simulated crash"):
        translate(vocabulary_folder, tmp_path / "in.txt", output, *argv)
    assert calls[0] == ["ug", "ug"]  # the first block decoded within ug's vocabulary
    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "generate", original)
    capsys.readouterr()
    expect_error(capsys, translate(vocabulary_folder, tmp_path / "in.txt", output, *argv, "--full-vocabulary"),
                 "another --full-vocabulary")  # fmt: skip
    assert translate(vocabulary_folder, tmp_path / "in.txt", output, *argv) == 0  # the same options resume


# -------------------------------------------------------------- output vocabularies on the other --backend choices
class KeepOnly(LogitsProcessor):
    """The direct masked generation: every word outside `ids` at -inf, on the full head."""

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, input_ids, scores):
        keep = torch.zeros(scores.shape[-1], dtype=torch.bool)
        keep[self.ids] = True
        return scores.masked_fill(~keep, -float("inf"))


@pytest.fixture(scope="module")
def varied_vocabulary_folder(tmp_path_factory):
    """vocabulary_folder's model with no_repeat_ngram_size 1 saved as its generation default: every output has six
    different tokens (not one repeated), so a single word outside a vocabulary cannot hide."""
    path = translating_model_folder(tmp_path_factory.mktemp("varied-vocabularies") / "model")
    model = XLMSWCMForConditionalGeneration.from_pretrained(path)
    model.set_output_vocabularies(VOCABULARIES)
    model.generation_config.no_repeat_ngram_size = 1
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")  # each ONNX backend exports once for the module


@pytest.mark.parametrize("backend", ["torch-int8", "onnxruntime", "onnxruntime-int8"])
def test_other_backends_decode_within_the_target_languages_vocabulary(
    varied_vocabulary_folder, onnx_cache, tmp_path, monkeypatch, backend
):
    """translate.py --backend B --target-language L with output vocabularies: onnxruntime (float32) gives what the
    PyTorch float32 model gives within L's vocabulary; the int8 backends give what the same backend gives with the
    full head masked outside it (one sentence per batch there: their dynamic activation quantization is per batch).
    Every generated id lies in L's vocabulary; --full-vocabulary leaves it on this model."""
    if backend.startswith("onnxruntime"):
        pytest.importorskip("onnxruntime", reason="the onnx extra runs the exported graphs")
        pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    else:
        pytest.importorskip("torch.ao.quantization")
    from xlm_swcm_hf.inference import load_for_inference
    from xlm_swcm_hf.onnx_runtime import OnnxRuntimeXLMSWCM

    folder = varied_vocabulary_folder
    texts = list(TINY_MULTILINGUAL_TEXTS)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    generated = []
    for cls in (XLMSWCMForConditionalGeneration, OnnxRuntimeXLMSWCM):

        def recording(self, *args, _original=cls.generate, **kwargs):
            output = _original(self, *args, **kwargs)
            generated.append((kwargs.get("output_languages"), output[:, 1:].tolist()))
            return output

        monkeypatch.setattr(cls, "generate", recording)

    def run(language, *extra):
        generated.clear()
        output = tmp_path / f"{language}{len(extra)}.txt"
        batching = ("--batch-size", "1" if backend.endswith("int8") else "3")
        argv = ("--backend", backend, "--onnx-cache", onnx_cache, "--target-language", language, *batching, *extra)
        assert translate(folder, tmp_path / "in.txt", output, *argv) == 0
        return output.read_text("utf-8").splitlines(), [ids for _, batch in generated for ids in batch]

    if backend == "onnxruntime":
        reference_model, tokenizer = load_folder(folder)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        reference_model = None  # loaded once the script has exported (the same cached graphs)

    for language in ("ug", "zh"):
        restricted, restricted_ids = run(language)
        assert generated and all(set(tags) == {language} for tags, _ in generated)
        assert len(restricted_ids) == len(texts) and all(len(set(ids)) == MAX_NEW_TOKENS for ids in restricted_ids)
        assert all(set(ids) <= set(VOCABULARIES[language]) for ids in restricted_ids)
        full, full_ids = run(language, "--full-vocabulary")
        assert all(tags is None for tags, _ in generated)
        assert sum(i not in VOCABULARIES[language] for ids in full_ids for i in ids) >= len(texts)
        assert restricted != full

        if reference_model is None:
            reference_model = load_for_inference(folder, backend, onnx_cache=onnx_cache)
        expected = []
        for text in texts:
            batch = tokenizer([f"{language}: {text}"], return_tensors="pt")
            within = (
                {"output_languages": language}
                if backend == "onnxruntime"  # the PyTorch float32 model
                else {"logits_processor": LogitsProcessorList([KeepOnly(VOCABULARIES[language])])}
            )
            with torch.no_grad():
                ids = reference_model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, **within)[0]
            expected.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        assert restricted == expected
