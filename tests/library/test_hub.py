import json

import pytest
from conftest import ROOT, run_script, tiny_model

from xlm_swcm_hf.files import atomic_output_dir
from xlm_swcm_hf.hub import (
    RELEASED_MODEL_CARD,
    RELEASED_MODEL_SUMMARY,
    HubFolderError,
    card_metadata,
    render_model_card,
    save_hub_folder,
    validate_hub_folder,
)
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer


def push_main(argv):
    return run_script("push_to_hub", argv)


@pytest.fixture
def saved_folder(tmp_path):
    return save_hub_folder(
        tmp_path / "model",
        tiny_model(),
        build_tiny_xlmr_tokenizer(),
        metrics={"chrf": 1.0},
        card_fields={"languages": ["ug", "zh"]},
    )


def test_card_metadata_describes_the_model_in_the_folder():
    metadata = card_metadata(render_model_card(parameters="1M", layout="x", languages=["ug"]))
    assert metadata["language"] == ["ug"]
    assert "base_model" not in metadata and "datasets" not in metadata  # nothing the model was not built from
    assert metadata["pipeline_tag"] == "text2text-generation" and metadata["library_name"] == "transformers"
    released = card_metadata(render_model_card(**RELEASED_MODEL_CARD))
    assert released["language"] == ["bo", "ug", "kk", "mn", "zh"] and released["base_model"] == "hfl/cino-base-v2"
    assert released["datasets"] == ["pkupie/mc2_corpus"]
    assert "2502.10852" in render_model_card() and "trust_remote_code=True" in render_model_card()
    with pytest.raises(ValueError, match="local path"):
        render_model_card(base_model="/home/me/encoder")


def test_root_model_card_is_the_released_models_card():
    """model_card.md at the root is what the converter writes for the released model (`make model-card`)."""
    expected = render_model_card(**RELEASED_MODEL_CARD, **RELEASED_MODEL_SUMMARY)
    assert (ROOT / "model_card.md").read_text(encoding="utf-8") == expected, "run `make model-card`"


def test_dry_run_validates_and_lists(saved_folder, capsys):
    assert push_main(["--model", saved_folder, "--repo-id", "me/xlm-swcm-tiny", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    for name in (
        "model.safetensors",
        "modeling_xlm_swcm.py",
        "configuration_xlm_swcm.py",
        "README.md",
        "metrics.json",
        "tokenizer.json",
    ):
        assert name in listed
    auto_map = json.loads((saved_folder / "config.json").read_text())["auto_map"]
    assert {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"} <= set(auto_map)


def test_dry_run_loads_the_folders_own_code(saved_folder, capsys):
    # The installed package would load fine; the folder's own modeling file does not.
    modeling = saved_folder / "modeling_xlm_swcm.py"
    modeling.write_text("raise ImportError('broken remote code')\n" + modeling.read_text())
    assert push_main(["--model", saved_folder, "--repo-id", "me/x", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken remote code" in err and err.count("\n") == 1


def test_a_relative_folder_loads_in_the_clean_process(saved_folder, monkeypatch):
    # `make demo` passes artifacts/demo/swcm/final: relative to the caller, not to the child's scratch folder
    from xlm_swcm_hf.hub import load_in_clean_process

    monkeypatch.chdir(saved_folder.parent)
    answer = load_in_clean_process(saved_folder.name, {"sources": ["ug zh"], "generation": {"max_new_tokens": 2}})
    assert len(answer["predictions"]) == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: (folder / "modeling_xlm_swcm.py").unlink(), "modeling_xlm_swcm.py"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "no tokenizer files"),
        (lambda folder: (folder / "README.md").write_text("---\nlicense: mit\n---\n# no languages\n"), "language"),
        (
            lambda folder: (folder / "README.md").write_text(
                (folder / "README.md").read_text().replace("license:", "base_model: ./my-encoder\nlicense:", 1)
            ),
            "local path",
        ),
    ],
)
def test_dry_run_refuses_incomplete_folders(saved_folder, capsys, damage, message):
    damage(saved_folder)
    assert push_main(["--model", saved_folder, "--repo-id", "me/x", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ")


def test_push_bad_inputs(tmp_path, saved_folder, capsys):
    assert push_main(["--model", tmp_path / "missing", "--repo-id", "me/x", "--dry-run"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert push_main(["--model", saved_folder, "--repo-id", "no-owner", "--dry-run"]) == 2
    assert "USER/NAME" in capsys.readouterr().err
    with pytest.raises(HubFolderError, match="no config.json"):
        validate_hub_folder(tmp_path)


def test_failed_save_leaves_nothing_and_existing_folders_survive(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target) as staging:
            (staging / "half.bin").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError):
        with atomic_output_dir(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_output_dir(target, overwrite=True) as staging:
            raise RuntimeError("boom")
    assert (target / "keep.txt").read_text() == "old"
    with atomic_output_dir(target, overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
