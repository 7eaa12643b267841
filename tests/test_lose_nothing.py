"""Issue 25, "Lose nothing": finished results are never overwritten without an explicit flag, an interrupted run
resumes from its last complete checkpoint, one run per output folder, a model folder is what it claims to be."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import run_script


ROOT = Path(__file__).resolve().parents[1]


def tree_digest(folder: Path) -> dict:
    """Every file under `folder` (relative path -> sha256), to show that nothing was created or changed."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def one_error(capsys, code, *fragments) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert code == 2, err[-5:]
    assert len(errors) == 1, err[-5:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def no_material(monkeypatch):
    """Building the demo material is work: a refused command must not get that far."""
    from xlm_swcm_experiments.demo import pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the demo material was built before the input was checked")

    monkeypatch.setattr(pipeline, "prepare_material", refuse)


def test_ablation_render_only_without_runs_leaves_the_committed_docs(tmp_path, capsys, monkeypatch, no_material):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.chdir(tmp_path)  # a fresh clone: committed docs, no artifacts/
    before = tree_digest(tmp_path)
    code = run_script("ablation", ["--render-only"])
    one_error(capsys, code, "--render-only", "ablation_runs.jsonl holds no finished runs")
    # running the study into an empty store would rewrite the docs after its first run: refused before any work
    code = run_script("ablation", ["--steps", "300"])
    one_error(capsys, code, "docs/ablation.json reports 104 finished runs", "--replace-docs")
    assert tree_digest(tmp_path) == before


def test_ablation_docs_are_rewritten_from_a_store_that_holds_their_runs(tmp_path):
    from xlm_swcm_experiments import ablation

    docs, output = tmp_path / "docs", tmp_path / "abl"
    docs.mkdir()
    shutil.copy(ROOT / "docs" / "ablation.json", docs)
    runs = json.loads((docs / "ablation.json").read_text())["runs"]
    output.mkdir()
    lines = [json.dumps(run) for run in runs[:-1]]
    (output / "ablation_runs.jsonl").write_text("\n".join(lines) + "\n" + '{"schema": 2, "cut sho')
    with pytest.raises(ablation.InputError, match="reports 1 finished runs"):
        ablation.check_docs(output, docs, render_only=True, replace_docs=False)
    ablation.check_docs(output, docs, render_only=True, replace_docs=True)
    (output / "ablation_runs.jsonl").write_text("\n".join(json.dumps(run) for run in runs) + "\n")
    ablation.check_docs(output, docs, render_only=True, replace_docs=False)
