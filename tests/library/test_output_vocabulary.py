"""Per-language output vocabularies (xlm_swcm_hf.output_vocabulary, scripts/build_output_vocabulary.py) and
`generate(output_languages=...)`.

- Built from (lang, target) rows: the targets' pieces plus the special tokens; coverage on held-out text.
- Restricted generation is exactly full-vocabulary generation with every other word masked (the full head's logits
  at -inf outside the row's language), for greedy, beam search and seeded sampling, one language or a mixed batch,
  dynamic and static cache and a compiled forward; greedy and sampling also equal a -inf LogitsProcessor (beam
  search applies processors after its log-softmax over the whole vocabulary, so there only the logits agree). The
  full head is never called; its slice is taken once and again after the weights change.
- Unknown tags are refused listing the known ones; without the argument nothing changes.
- save_pretrained writes output_vocabularies.json; from_pretrained reads it, also as remote code without the package
  (a local folder, and a Hub repository id served from the cache); save_pretrained(push_to_hub=True) uploads it
  (the Hub patched offline).
- train.py's test split decodes within the vocabularies unless --full-vocabulary.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import padded_batch, run_script, save_tiny_folder, tagged_pairs, tiny_model, write_jsonl
from transformers import LogitsProcessor, LogitsProcessorList

from xlm_swcm_hf import XLMSWCMForConditionalGeneration
from xlm_swcm_hf.modeling_xlm_swcm import OUTPUT_VOCABULARIES_FILE, STATIC_CACHE_SUPPORTED
from xlm_swcm_hf.output_vocabulary import build_output_vocabularies, coverage, special_ids
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer


SPECIALS = [0, 1, 2, 3]
VOCABULARIES = {"ug": SPECIALS + list(range(10, 45)), "zh": SPECIALS + list(range(40, 99, 2))}
MODES = {
    "greedy": dict(do_sample=False, num_beams=1),
    "beam_search": dict(do_sample=False, num_beams=3, num_return_sequences=2, early_stopping=False),
    "sampling": dict(do_sample=True, num_beams=1, top_k=20, temperature=1.5),
}
LANGUAGES = {"one": "zh", "mixed": ["ug", "zh"]}
LAYOUT = dict(num_hidden_layers=2, normal_layer_interval=1, initializer_range=0.3)  # decoder: custom, normal, custom


@pytest.fixture
def model():
    model = tiny_model(**LAYOUT)
    model.set_output_vocabularies(VOCABULARIES)
    return model


def per_row(languages, rows):
    languages = [languages] * 2 if isinstance(languages, str) else languages
    return [languages[row // (rows // len(languages))] for row in range(rows)]


def outside(languages, scores):
    """True where a row's language lacks the token (rows repeated per beam / returned sequence, as generate does)."""
    mask = torch.ones_like(scores, dtype=torch.bool)
    for row, tag in enumerate(per_row(languages, scores.shape[0])):
        mask[row, ..., VOCABULARIES[tag]] = False
    return mask


class MaskOtherWords(LogitsProcessor):
    def __init__(self, languages):
        self.languages = languages

    def __call__(self, input_ids, scores):
        return scores.masked_fill(outside(self.languages, scores), -float("inf"))


def generate(model, mode, seed=0, **kwargs):
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(
            **padded_batch(),
            max_new_tokens=8,
            min_new_tokens=8,
            output_scores=True,
            return_dict_in_generate=True,
            **MODES[mode],
            **kwargs,
        )


def masked_full_vocabulary(model, mode, languages, **kwargs):
    """The reference: the full head's logits with every other word at -inf."""
    full = model.full_vocabulary_logits
    model.compute_logits = lambda hidden: full(hidden).masked_fill(outside(languages, full(hidden)), -float("inf"))
    try:
        return generate(model, mode, **kwargs)
    finally:
        del model.compute_logits


@pytest.mark.parametrize("which", sorted(LANGUAGES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_restricted_generation_is_masked_full_vocabulary_generation(model, mode, which):
    languages = LANGUAGES[which]
    restricted = generate(model, mode, output_languages=languages)
    expected = masked_full_vocabulary(model, mode, languages)
    torch.testing.assert_close(restricted.sequences, expected.sequences, rtol=0, atol=0)
    if mode == "beam_search":
        torch.testing.assert_close(restricted.sequences_scores, expected.sequences_scores)
    else:
        processed = generate(model, mode, logits_processor=LogitsProcessorList([MaskOtherWords(languages)]))
        torch.testing.assert_close(restricted.sequences, processed.sequences, rtol=0, atol=0)
    new_tokens = restricted.sequences[:, 1:]
    for row, tag in enumerate(per_row(languages, new_tokens.shape[0])):
        assert set(new_tokens[row].tolist()) <= set(VOCABULARIES[tag]), (row, tag)
    unrestricted = generate(model, mode)
    assert not torch.equal(unrestricted.sequences, restricted.sequences)  # the restriction changes this model's output


@pytest.mark.skipif(not STATIC_CACHE_SUPPORTED, reason="static caches need transformers 5")
@pytest.mark.parametrize("mode", sorted(MODES))
def test_static_cache_and_compiled_forward(model, mode):
    dynamic = generate(model, mode, output_languages=["ug", "zh"]).sequences
    static = generate(model, mode, output_languages=["ug", "zh"], cache_implementation="static").sequences
    torch.testing.assert_close(static, dynamic, rtol=0, atol=0)
    if mode == "beam_search":
        return  # transformers' beam search calls the forward uncompiled (test_export.py)
    from transformers import CompileConfig

    torch.compiler.reset()
    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend="eager")
    compile_config._compile_all_devices = True
    compiled = generate(
        model, mode, output_languages=["ug", "zh"], cache_implementation="static", compile_config=compile_config
    ).sequences
    assert hasattr(model, "_compiled_call"), "generate did not compile the forward"
    torch.testing.assert_close(compiled, dynamic, rtol=0, atol=0)


@pytest.mark.skipif(not STATIC_CACHE_SUPPORTED, reason="static caches need transformers 5")
def test_a_compiled_forward_follows_each_calls_output_languages(model):
    """One compiled model, calls alternating between the whole vocabulary and different languages: each output equals
    the uncompiled run's (the restriction is read where dynamo guards on it, so a graph compiled for one call is not
    reused for another that restricts differently)."""
    from transformers import CompileConfig

    calls = [None, ["ug", "zh"], None, "zh", ["ug", "zh"]]
    expected = [generate(model, "greedy", output_languages=languages).sequences for languages in calls]
    torch.compiler.reset()
    compile_config = CompileConfig(fullgraph=True, dynamic=False, backend="eager")
    compile_config._compile_all_devices = True
    for languages, reference in zip(calls, expected):
        compiled = generate(
            model, "greedy", output_languages=languages, cache_implementation="static", compile_config=compile_config
        ).sequences
        torch.testing.assert_close(compiled, reference, rtol=0, atol=0, msg=f"output_languages={languages}")
    assert hasattr(model, "_compiled_call") and not torch.equal(expected[0], expected[1])


def test_the_full_head_is_never_computed_and_its_slice_follows_the_weights(model, monkeypatch):
    before = generate(model, "greedy", output_languages="ug").sequences
    slices = model.__dict__["_output_head_slices"][("ug",)][1]
    assert slices.weight.shape == (model.config.hidden_size, len(VOCABULARIES["ug"]))  # CPU fp32: transposed
    generate(model, "greedy", output_languages="ug")
    assert model.__dict__["_output_head_slices"][("ug",)][1] is slices  # kept, not taken again per call or step
    monkeypatch.setattr(model.lm_head, "forward", lambda *a: pytest.fail("the full head was computed"))
    monkeypatch.setattr(model, "full_vocabulary_logits", lambda *a: pytest.fail("the full head was computed"))
    generate(model, "beam_search", output_languages=["zh", "ug"])
    monkeypatch.undo()
    with torch.no_grad():
        model.lm_head.weight[VOCABULARIES["ug"]] = model.lm_head.weight[VOCABULARIES["ug"]].flip(0)
    after = generate(model, "greedy", output_languages="ug").sequences
    assert model.__dict__["_output_head_slices"][("ug",)][1] is not slices
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, masked_full_vocabulary(model, "greedy", "ug").sequences, rtol=0, atol=0)


def test_a_quantized_head_is_masked_instead_of_sliced(model):
    from xlm_swcm_hf.quantization import quantize_for_cpu

    quantize_for_cpu(model)
    restricted = generate(model, "beam_search", output_languages=["ug", "zh"])
    expected = masked_full_vocabulary(model, "beam_search", ["ug", "zh"])
    torch.testing.assert_close(restricted.sequences, expected.sequences, rtol=0, atol=0)


def test_bad_languages_are_refused_with_the_known_ones(model):
    with pytest.raises(ValueError, match="no output vocabulary for kk, xx; the model has one for ug, zh"):
        model.generate(**padded_batch(), output_languages=["xx", "kk"])
    with pytest.raises(ValueError, match="3 tags for a batch of 2"):
        model.generate(**padded_batch(), output_languages=["ug", "zh", "ug"])
    with pytest.raises(ValueError, match="must hold token ids in"):
        model.set_output_vocabularies({"ug": [0, 99]})
    model.set_output_vocabularies(None)
    with pytest.raises(ValueError, match="scripts/build_output_vocabulary.py"):
        model.generate(**padded_batch(), output_languages="ug")
    plain = generate(model, "greedy").sequences  # the off switch: no argument, no restriction
    torch.testing.assert_close(plain, generate(tiny_model(**LAYOUT), "greedy").sequences, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------- building and storing


def test_vocabularies_hold_the_targets_pieces_and_the_special_tokens():
    tokenizer = build_tiny_xlmr_tokenizer()
    rows = [(row["lang"], row["target"]) for row in tagged_pairs()]
    train, held_out = rows[:-3], rows[-3:]
    specials = special_ids(tokenizer, tiny_model().config)
    assert specials == [0, 1, 2, 3]
    vocabularies = build_output_vocabularies(tokenizer, train, specials)
    assert list(vocabularies) == ["xx"] and set(specials) <= set(vocabularies["xx"])
    used = {i for _, text in train for i in tokenizer(text, add_special_tokens=False)["input_ids"]}
    assert set(vocabularies["xx"]) == used | set(specials)
    assert coverage(vocabularies, tokenizer, train)["xx"].share == 1.0
    measured = coverage(vocabularies, tokenizer, held_out + [("zh", "我们")])
    assert 0 < measured["xx"].share < 1 and measured["zh"].covered == 0
    frequent = build_output_vocabularies(tokenizer, train, specials, min_count=3)
    assert set(specials) <= set(frequent["xx"]) < set(vocabularies["xx"])


CLEAN_LOAD = """
import json, sys
sys.modules["xlm_swcm_hf"] = None
import torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 10, 11, 2, 1, 1, 1]])
out = model.generate(input_ids=ids, attention_mask=(ids != 1).long(), max_new_tokens=6, min_new_tokens=6,
                     do_sample=False, output_languages=["ug", "zh"])
print(json.dumps({"languages": sorted(model.output_vocabularies), "module": type(model).__module__,
                  "tokens": out.tolist()}))
"""


def load_without_the_package(source, env=None):
    result = subprocess.run(
        [sys.executable, "-c", CLEAN_LOAD, str(source)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", **(env or {})},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_saved_with_the_model_and_loaded_as_remote_code(model, tmp_path):
    folder = save_tiny_folder(tmp_path / "model", model)
    assert json.loads((folder / OUTPUT_VOCABULARIES_FILE).read_text()) == VOCABULARIES
    loaded = XLMSWCMForConditionalGeneration.from_pretrained(folder)
    assert loaded.output_vocabularies == VOCABULARIES
    expected = generate(model, "greedy", output_languages=["ug", "zh"]).sequences[:, :7].tolist()

    answer = load_without_the_package(folder)
    assert answer["languages"] == ["ug", "zh"] and "xlm_swcm_hf" not in answer["module"]
    assert answer["tokens"] == expected

    # a Hub repository id, served from the cache (offline): the file is resolved as transformers resolves weights
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny-swcm" / "snapshots" / ("0" * 40)
    snapshot.parent.mkdir(parents=True)
    (cache / "models--someone--tiny-swcm" / "refs").mkdir()
    (cache / "models--someone--tiny-swcm" / "refs" / "main").write_text("0" * 40)
    import shutil

    shutil.copytree(folder, snapshot)
    answer = load_without_the_package("someone/tiny-swcm", env={"HF_HUB_CACHE": str(cache)})
    assert answer["languages"] == ["ug", "zh"] and answer["tokens"] == expected

    model.set_output_vocabularies(None)  # saving a model without them into the folder drops the stale file
    model.save_pretrained(folder)
    assert not (folder / OUTPUT_VOCABULARIES_FILE).exists()
    assert XLMSWCMForConditionalGeneration.from_pretrained(folder).output_vocabularies == {}


def test_the_script_writes_the_file_and_reports_coverage(tmp_path, capsys):
    folder = save_tiny_folder(tmp_path / "model")
    rows = tagged_pairs()
    train, test = write_jsonl(tmp_path / "train.jsonl", rows[:-3]), write_jsonl(tmp_path / "test.jsonl", rows[-3:])
    argv = ["--model", folder, "--data", train, "--held-out", test]
    assert run_script("build_output_vocabulary", argv) == 0
    out = capsys.readouterr().out
    assert "xx: " in out and "held-out coverage" in out
    written = json.loads((folder / OUTPUT_VOCABULARIES_FILE).read_text())
    assert list(written) == ["xx"]
    assert XLMSWCMForConditionalGeneration.from_pretrained(folder).output_vocabularies == written
    assert run_script("build_output_vocabulary", argv) == 2  # an existing file is kept without --overwrite
    assert "exists already; pass --overwrite" in capsys.readouterr().err
    assert run_script("build_output_vocabulary", [*argv, "--overwrite", "--min-count", "2"]) == 0
    assert len(json.loads((folder / OUTPUT_VOCABULARIES_FILE).read_text())["xx"]) < len(written["xx"])
    # a broken file: loading names it in one line; the script's --overwrite replaces it
    (folder / OUTPUT_VOCABULARIES_FILE).write_text('{"xx": [0, 1')
    with pytest.raises(ValueError, match=f"{OUTPUT_VOCABULARIES_FILE} of .* cannot be used: .*--overwrite"):
        XLMSWCMForConditionalGeneration.from_pretrained(folder)
    assert run_script("build_output_vocabulary", [*argv, "--overwrite"]) == 0
    assert json.loads((folder / OUTPUT_VOCABULARIES_FILE).read_text()) == written


@pytest.mark.parametrize("tag", ["../ug", "ug.onnx", "u g", ""])
def test_a_tag_that_is_no_file_name_is_refused(model, tag):
    with pytest.raises(ValueError, match="is not a language tag like ug or kk_Arab"):
        model.set_output_vocabularies({tag: SPECIALS})
    model.set_output_vocabularies({"kk_Arab": SPECIALS, "mn_Mong": SPECIALS, "x-private": SPECIALS})


# ------------------------------------------------------------------------------------------------- ONNX Runtime


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime (dev and onnx extras) runs the exported graphs")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
    from xlm_swcm_hf.onnx_runtime import export_onnx

    model = tiny_model(**LAYOUT)
    model.set_output_vocabularies(VOCABULARIES)
    root = tmp_path_factory.mktemp("onnx-vocabularies")
    export_onnx(model, root / "float32")
    return model, root / "float32"


@pytest.mark.parametrize("which", sorted(LANGUAGES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_onnx_runtime_decodes_with_each_languages_sliced_head(onnx_export, mode, which):
    from xlm_swcm_hf.onnx_runtime import OnnxRuntimeXLMSWCM

    model, folder = onnx_export
    assert {"head.ug.onnx", "head.zh.onnx", OUTPUT_VOCABULARIES_FILE} <= {path.name for path in folder.iterdir()}
    onnx_model = OnnxRuntimeXLMSWCM.from_exported(folder)
    assert onnx_model.output_vocabularies == VOCABULARIES
    expected = generate(model, mode, output_languages=LANGUAGES[which])
    got = generate(onnx_model, mode, output_languages=LANGUAGES[which])
    torch.testing.assert_close(got.sequences, expected.sequences, rtol=0, atol=0)
    if mode == "greedy":
        with pytest.raises(ValueError, match="no output vocabulary for kk; the model has one for ug, zh"):
            onnx_model.generate(**padded_batch(), output_languages="kk")
        torch.testing.assert_close(generate(onnx_model, mode).sequences, generate(model, mode).sequences)


def test_evaluation_decodes_each_row_within_its_languages_vocabulary_unless_full_vocabulary(model, tmp_path):
    from datasets import Dataset

    from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS
    from xlm_swcm_hf.training.evaluation import evaluate_model

    tokenizer = build_tiny_xlmr_tokenizer()
    texts = list(TINY_MULTILINGUAL_TEXTS[:6])
    languages = ["ug", "xx", "zh", "ug", "zh", "xx"]  # xx has no vocabulary: the whole one, never a failure
    dataset = Dataset.from_dict({"source_text": texts, "target_text": texts, "lang": languages})
    model.eval()

    def alone(text, **kwargs):
        with torch.no_grad():
            ids = model.generate(**tokenizer([text], return_tensors="pt"), max_new_tokens=6, **kwargs)[0]
        return tokenizer.decode(ids, skip_special_tokens=True).strip()

    restricted = [alone(t, **({"output_languages": g} if g in VOCABULARIES else {})) for t, g in zip(texts, languages)]
    full = [alone(text) for text in texts]
    assert sum(a != b for a, b in zip(restricted, full)) >= 2  # the vocabularies matter here
    for full_vocabulary, expected in ((False, restricted), (True, full)):
        out = tmp_path / f"eval-{full_vocabulary}"
        evaluate_model(model, tokenizer, dataset, out, batch_size=3, max_new_tokens=6, full_vocabulary=full_vocabulary)
        predictions = [json.loads(line)["prediction"] for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert predictions == expected


def test_the_onnx_export_refuses_a_tag_that_is_no_file_name(model, tmp_path):
    pytest.importorskip("onnxruntime")
    from xlm_swcm_hf.onnx_runtime import export_onnx

    model.output_vocabularies = {"../../escape": SPECIALS}  # set around set_output_vocabularies' check
    with pytest.raises(ValueError, match="'../../escape' is not a language tag"):
        export_onnx(model, tmp_path / "export")
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # nothing written, the work folder removed


def test_evaluate_model_py_passes_the_vocabularies_and_full_vocabulary_on(model, tmp_path):
    folder = save_tiny_folder(tmp_path / "model", model)
    tokenizer = build_tiny_xlmr_tokenizer()
    rows = [{**row, "lang": tag} for row, tag in zip(tagged_pairs(), ["ug", "zh", "xx"])]  # xx: no vocabulary
    data = write_jsonl(tmp_path / "test.jsonl", rows)

    def alone(row, full):
        within = {} if full or row["lang"] == "xx" else {"output_languages": row["lang"]}
        with torch.no_grad():
            ids = model.eval().generate(**tokenizer([row["source"]], return_tensors="pt"), max_new_tokens=5, **within)
        return tokenizer.decode(ids[0], skip_special_tokens=True).strip()

    for full in (False, True):
        out = tmp_path / f"eval-{full}"
        argv = ["--model", folder, "--data", data, "--output", out, "--max-new-tokens", "5", "--batch-size", "3"]
        assert run_script("evaluate_model", argv + (["--full-vocabulary"] if full else [])) == 0
        predictions = [json.loads(line)["prediction"] for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert predictions == [alone(row, full) for row in rows]
    assert alone(rows[0], False) != alone(rows[0], True) or alone(rows[1], False) != alone(rows[1], True)


def test_train_py_evaluates_the_test_split_within_the_vocabularies_unless_full_vocabulary(model, tmp_path):
    """scripts/train.py on a pretrained folder with output vocabularies: the test split's predictions (test/) are
    the trained model's, each row decoded within its language's vocabulary (xx has none: the whole one), or with
    the whole vocabulary for every row under --full-vocabulary; final/ keeps the vocabularies."""
    from conftest import ROOT
    from transformers import AutoTokenizer

    base = save_tiny_folder(tmp_path / "base", model)
    rows = [{**row, "lang": tag} for row, tag in zip(tagged_pairs(), ["ug", "zh", "xx", "zh", "ug", "xx"])]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    predictions = {}
    for full in (False, True):
        output = tmp_path / f"run-{full}"
        argv = [
            *("--config", ROOT / "configs" / "tiny.yaml", "model.init=pretrained", f"model.path={base}"),
            *(f"data.train_file={data}", f"data.validation_file={data}", f"data.test_file={data}"),
            *(f"training.output_dir={output}", "training.max_steps=2", "training.save_strategy=no"),
            *("training.eval_strategy=no", "training.bf16=false", "generation.num_beams=1"),
            "generation.max_new_tokens=6",
        ]
        assert run_script("train", argv + (["--full-vocabulary"] if full else [])) == 0
        lines = (output / "test" / "predictions.jsonl").read_text("utf-8").splitlines()
        predictions[full] = [json.loads(line)["prediction"] for line in lines]

        trained = XLMSWCMForConditionalGeneration.from_pretrained(output / "final").eval()
        assert trained.output_vocabularies == VOCABULARIES
        tokenizer = AutoTokenizer.from_pretrained(output / "final")
        expected = []
        for row in rows:
            within = {} if full or row["lang"] not in VOCABULARIES else {"output_languages": row["lang"]}
            with torch.no_grad():
                ids = trained.generate(**tokenizer([row["source"]], return_tensors="pt"), **within)[0]
            expected.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        assert predictions[full] == expected, full
    assert predictions[False] != predictions[True]  # the same training (seeded): only the vocabularies differ


# ------------------------------------------------------------------------------------------------- the Hub, offline
class FakeHub:
    """HfApi.create_repo / create_commit and ModelCard.load patched: records the repository and every uploaded
    file's content (read at commit time: push_to_hub's temporary folder is gone afterwards)."""

    def __init__(self, monkeypatch):
        from huggingface_hub import HfApi, ModelCard
        from transformers.utils import hub

        self.repos, self.commits = [], []

        def create_repo(repo_id, **options):
            self.repos.append((repo_id, options))
            return type("RepoUrl", (), {"repo_id": repo_id if "/" in repo_id else f"me/{repo_id}"})()

        def create_commit(repo_id, operations, **options):
            files = {}
            for operation in operations:
                with open(operation.path_or_fileobj, "rb") as handle:
                    files[operation.path_in_repo] = handle.read()
            self.commits.append((repo_id, files, options))

        def no_card(*args, **kwargs):
            raise hub.EntryNotFoundError("no README.md")

        for name, fake in (("create_repo", create_repo), ("create_commit", create_commit)):
            monkeypatch.setattr(HfApi, name, lambda api, *args, _fake=fake, **kwargs: _fake(*args, **kwargs))
            if hasattr(hub, name):  # transformers 4 calls huggingface_hub's module functions, bound at import
                monkeypatch.setattr(hub, name, fake)
        monkeypatch.setattr(ModelCard, "load", classmethod(no_card))


def test_save_pretrained_push_to_hub_uploads_the_vocabularies(model, tmp_path, monkeypatch):
    hub = FakeHub(monkeypatch)
    folder = tmp_path / "tiny-swcm"
    model.save_pretrained(
        folder, push_to_hub=True, private=True, token="secret", commit_message="vocabularies", create_pr=True
    )
    assert json.loads((folder / OUTPUT_VOCABULARIES_FILE).read_text()) == VOCABULARIES  # saved locally too
    assert [repo for repo, _ in hub.repos] == ["tiny-swcm"]  # repo_id: the folder's name, as transformers
    assert hub.repos[0][1]["private"] is True and hub.repos[0][1]["token"] == "secret"
    ((repo, files, options),) = hub.commits
    assert repo == "me/tiny-swcm" and options["commit_message"] == "vocabularies" and options["create_pr"] is True
    assert options["token"] == "secret"
    assert {OUTPUT_VOCABULARIES_FILE, "config.json", "model.safetensors", "README.md"} <= set(files)
    assert json.loads(files[OUTPUT_VOCABULARIES_FILE]) == VOCABULARIES
    uploaded = tmp_path / "uploaded"  # what the Hub holds loads with the vocabularies and the same weights
    uploaded.mkdir()
    for name, content in files.items():
        (uploaded / name).write_bytes(content)
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert XLMSWCMForConditionalGeneration.from_pretrained(uploaded).output_vocabularies == VOCABULARIES

    model.save_pretrained(tmp_path / "other", push_to_hub=True, repo_id="someone/named")
    assert hub.repos[-1][0] == "someone/named" and hub.commits[-1][0] == "someone/named"
    model.save_pretrained(tmp_path / "rank1", push_to_hub=True, is_main_process=False)
    assert len(hub.commits) == 2  # only the main process pushes
    with pytest.raises(ValueError, match="none of state_dict: save with them, then upload the folder"):
        model.save_pretrained(tmp_path / "refused", push_to_hub=True, state_dict=model.state_dict())
    assert not (tmp_path / "refused").exists() and len(hub.repos) == 2

    model.set_output_vocabularies(None)  # without vocabularies: transformers' own push, unchanged
    model.save_pretrained(str(tmp_path / "plain"), push_to_hub=True, repo_id="me/plain")  # 4.46: no Path here
    assert hub.commits[-1][0] == "me/plain" and OUTPUT_VOCABULARIES_FILE not in hub.commits[-1][1]
    assert "model.safetensors" in hub.commits[-1][1]
