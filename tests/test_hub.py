import pytest
from conftest import run_script, tiny_model

from xlm_swcm_hf.hub import atomic_output_dir, card_metadata, render_model_card, save_hub_folder


def push_main(argv):
    return run_script("push_to_hub", argv)


def test_model_card_template_has_the_required_metadata():
    metadata = card_metadata(render_model_card(parameters="1M", layout="x"))
    assert metadata["language"] == ["bo", "ug", "kk", "mn", "zh"]
    assert metadata["pipeline_tag"] == "text2text-generation"
    assert metadata["library_name"] == "transformers"
    assert metadata["base_model"] and metadata["license"]
    assert "2502.10852" in render_model_card() and "trust_remote_code=True" in render_model_card()


def test_dry_run_validates_and_lists(tmp_path, capsys):
    folder = save_hub_folder(tmp_path / "model", tiny_model(), metrics={"chrf": 1.0})
    assert push_main(["--model", folder, "--repo-id", "me/xlm-swcm-tiny", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    for name in ("model.safetensors", "modeling_xlm_swcm.py", "configuration_xlm_swcm.py", "README.md", "metrics.json"):
        assert name in listed

    (folder / "modeling_xlm_swcm.py").unlink()
    assert push_main(["--model", folder, "--repo-id", "me/x", "--dry-run"]) == 1
    assert "modeling_xlm_swcm.py" in capsys.readouterr().err


def test_dry_run_rejects_bad_card(tmp_path, capsys):
    folder = save_hub_folder(tmp_path / "model", tiny_model())
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# no languages\n")
    assert push_main(["--model", folder, "--repo-id", "me/x", "--dry-run"]) == 1
    assert "language" in capsys.readouterr().err


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
