"""Issue 25, "Lose nothing": finished results are never overwritten without an explicit flag, an interrupted run
resumes from its last complete checkpoint, one run per output folder, a model folder is what it claims to be."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_script


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
    one_error(capsys, code, "docs/results/ablation.json reports 104 finished runs", "--replace-docs")
    assert tree_digest(tmp_path) == before


def test_ablation_docs_are_rewritten_from_a_store_that_holds_their_runs(tmp_path):
    from xlm_swcm_experiments import ablation
    from xlm_swcm_hf.checks import InputError

    docs, output = tmp_path / "docs", tmp_path / "abl"
    docs.mkdir()
    shutil.copy(ROOT / "docs" / "results" / "ablation.json", docs)
    runs = json.loads((docs / "ablation.json").read_text())["runs"]
    output.mkdir()
    lines = [json.dumps(run) for run in runs[:-1]]
    (output / "ablation_runs.jsonl").write_text("\n".join(lines) + "\n" + '{"schema": 2, "cut sho')
    with pytest.raises(InputError, match="reports 1 finished runs"):
        ablation.check_docs(output, docs, render_only=True, replace_docs=False)
    ablation.check_docs(output, docs, render_only=True, replace_docs=True)
    (output / "ablation_runs.jsonl").write_text("\n".join(json.dumps(run) for run in runs) + "\n")
    ablation.check_docs(output, docs, render_only=True, replace_docs=False)


# --------------------------------------------------------------------------- interrupted runs and shared folders
KILL_MID_SAVE = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from transformers import Trainer, TrainerState

point, step = sys.argv[1], int(sys.argv[2])
if point == "optimizer":  # the weights are written, the optimizer is not
    original = Trainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        if self.state.global_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, output_dir)

    Trainer._save_optimizer_and_scheduler = save
else:  # trainer_state.json cut off halfway
    original = TrainerState.save_to_json

    def save(self, json_path):
        if self.global_step == step:
            with open(json_path, "w") as handle:
                handle.write('{{"global_step": ')
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, json_path)

    TrainerState.save_to_json = save
from conftest import run_script
sys.exit(run_script("train", sys.argv[3:]))
"""


def train_arguments(real_pairs, tiny_encoder, output, *overrides):
    return [
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"model.encoder={tiny_encoder}",
        f"data.train_file={real_pairs / 'train.jsonl'}",
        f"data.validation_file={real_pairs / 'validation.jsonl'}",
        f"data.test_file={real_pairs / 'test.jsonl'}",
        f"training.output_dir={output}",
        "training.max_steps=30",
        "training.logging_steps=1",
        "training.save_total_limit=3",
        *overrides,
    ]


def losses(output):
    return [entry["loss"] for entry in json.loads((output / "log_history.json").read_text()) if "loss" in entry]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["optimizer", "trainer_state"])
def test_a_run_killed_mid_save_resumes_from_the_last_complete_checkpoint(real_pairs, tiny_encoder, tmp_path, point):
    import os
    import subprocess
    import sys

    straight = tmp_path / "straight"
    assert run_script("train", train_arguments(real_pairs, tiny_encoder, straight)) == 0

    killed = tmp_path / "killed"
    script = KILL_MID_SAVE.format(tests=str(ROOT / "tests"))
    result = subprocess.run(
        [sys.executable, "-c", script, point, "20", *train_arguments(real_pairs, tiny_encoder, killed)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == -9, result.stderr[-2000:]
    assert (killed / "checkpoint-10" / "trainer_state.json").exists() and (killed / "checkpoint-20").exists()
    from xlm_swcm_hf.training.run import checkpoint_problems, last_checkpoint

    assert checkpoint_problems(killed / "checkpoint-20") and last_checkpoint(killed) == str(killed / "checkpoint-10")

    assert run_script("train", [*train_arguments(real_pairs, tiny_encoder, killed), "--resume"]) == 0
    assert losses(killed)[10:] == pytest.approx(losses(straight)[10:], rel=1e-4)
    assert len(losses(killed)) == 30
    state = json.loads((killed / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30 and not checkpoint_problems(killed / "checkpoint-20")


def test_only_complete_checkpoints_count(tmp_path):
    from xlm_swcm_hf.training.run import checkpoint_problems, last_checkpoint, remove_incomplete_checkpoints

    def checkpoint(step, *names):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in names:
            (folder / name).write_text(json.dumps({"global_step": step}))
        return folder

    checkpoint(10, "config.json", "model.safetensors", "optimizer.pt", "trainer_state.json")
    only_config = checkpoint(20, "config.json", "configuration_xlm_swcm.py")
    checkpoint(30, "config.json", "model.safetensors", "optimizer.pt")
    (checkpoint(40, "model.safetensors", "optimizer.pt") / "trainer_state.json").write_text('{"global_st')
    assert checkpoint_problems(only_config) == ["no complete trainer_state.json", "no weights", "no optimizer state"]
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    removed = remove_incomplete_checkpoints(tmp_path, last_checkpoint(tmp_path))
    assert [path.name for path in removed] == ["checkpoint-20", "checkpoint-30", "checkpoint-40"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-10"]


def test_a_second_run_into_a_finished_folder_is_refused(real_pairs, tiny_encoder, tmp_path, capsys):
    output = tmp_path / "run"
    arguments = train_arguments(real_pairs, tiny_encoder, output, "training.max_steps=2", "training.save_strategy=no")
    assert run_script("train", arguments) == 0  # no checkpoint, but final/ and metrics.json
    assert not list(output.glob("checkpoint-*")) and (output / "final").is_dir()
    # the saved folder generates without "Both max_new_tokens and max_length" and truncates to its position table
    generation = json.loads((output / "final" / "generation_config.json").read_text())
    assert generation["max_new_tokens"] == 24 and generation.get("max_length") is None, generation
    tokenizer = json.loads((output / "final" / "tokenizer_config.json").read_text())
    assert tokenizer["model_max_length"] == 128  # max_position_embeddings 130 - pad_token_id 1 - 1
    capsys.readouterr()
    before = tree_digest(output)
    code = run_script("train", [*arguments, "training.learning_rate=1e-3"])
    one_error(capsys, code, "already holds an earlier run's final, metrics.json", "overwrite_output_dir=true")
    assert tree_digest(output) == before


def test_one_run_per_output_folder_and_a_crashed_run_leaves_no_lock(real_pairs, tiny_encoder, tmp_path, capsys):
    import subprocess
    import sys

    from xlm_swcm_hf.files import output_lock

    output = tmp_path / "busy"
    with output_lock(output):
        code = run_script("train", train_arguments(real_pairs, tiny_encoder, output))
        one_error(capsys, code, f"training.output_dir {output} is in use by process")
    assert not output.exists()
    crash = "import os, signal, sys; from xlm_swcm_hf.files import output_lock\n"
    crash += f"with output_lock({str(output)!r}): os.kill(os.getpid(), signal.SIGKILL)"
    assert subprocess.run([sys.executable, "-c", crash]).returncode == -9
    with output_lock(output):  # the kernel released the crashed process's lock
        pass


# --------------------------------------------------------------------------- a model folder is what it claims to be
@pytest.fixture
def folders(tmp_path):
    """A plain XLM-R encoder folder, a complete XLM-SWCM folder (both with tokenizers), data and a training folder."""
    from conftest import save_tiny_folder, tagged_pairs, tiny_xlmr, write_jsonl

    encoder = save_tiny_folder(tmp_path / "encoder", tiny_xlmr(seed=0))
    model = save_tiny_folder(tmp_path / "swcm")
    data = write_jsonl(tmp_path / "test.jsonl", tagged_pairs())
    run = tmp_path / "run"
    shutil.copytree(model, run / "final")
    (run / "metrics.json").write_text('{"train": {}}')
    (run / "test").mkdir()
    (run / "test" / "metrics.json").write_text('{"all": {}}')
    return {"encoder": encoder, "model": model, "data": data, "run": run, "tmp": tmp_path}


def without_tensors(source: Path, target: Path, prefixes) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    tensors = load_file(str(source / "model.safetensors"))
    kept = {name: tensor for name, tensor in tensors.items() if not name.startswith(tuple(prefixes))}
    save_file(kept, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


@pytest.fixture
def no_loading(monkeypatch):
    from transformers import PreTrainedModel

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the folder was checked")

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(refuse))


def test_a_plain_encoder_where_a_trained_model_is_expected_is_refused(folders, capsys, no_loading):
    tmp, encoder = folders["tmp"], folders["encoder"]
    before = tree_digest(tmp)
    train = [
        "--config",
        ROOT / "configs" / "tiny.yaml",
        "model.init=pretrained",
        f"model.path={encoder}",
        f"data.train_file={folders['data']}",
        f"data.validation_file={folders['data']}",
        f"data.test_file={folders['data']}",
        f"training.output_dir={tmp / 'out'}",
    ]
    one_error(capsys, run_script("train", train), "model.path", "xlm-roberta model, not a trained XLM-SWCM folder")
    code = run_script("lora_vs_full", ["--model", encoder, "--data", "", "--output", tmp / "lvf", "--docs", tmp])
    one_error(capsys, code, "--model", "not a trained XLM-SWCM folder")
    code = run_script("evaluate_model", ["--model", encoder, "--data", folders["data"]])
    one_error(capsys, code, "--model", "not a trained XLM-SWCM folder")
    assert tree_digest(tmp) == before


@pytest.mark.parametrize(
    "prefixes, fragment",
    [
        (["model.decoder.layers", "lm_head"], "model.decoder.* ("),
        (["lm_head"], "lm_head.* (2)"),
    ],
)
def test_weights_that_leave_the_decoder_or_head_random_are_refused(folders, capsys, no_loading, prefixes, fragment):
    partial = without_tensors(folders["model"], folders["tmp"] / "partial", prefixes)
    before = tree_digest(folders["tmp"])
    code = run_script("evaluate_model", ["--model", partial, "--data", folders["data"]])
    one_error(capsys, code, f"--model {partial}'s weights lack", fragment, "would start random")
    assert tree_digest(folders["tmp"]) == before


def test_weights_that_are_cut_short_random_or_missing_are_refused(folders, capsys, no_loading):
    tmp = folders["tmp"]
    cut, noise, missing = (shutil.copytree(folders["model"], tmp / name) for name in ("cut", "noise", "missing"))
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (noise / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (missing / "model.safetensors").unlink()
    before = tree_digest(tmp)
    for folder, fragment in ((cut, "corrupt or cut short"), (noise, "corrupt or cut short"), (missing, "no weights")):
        code = run_script("evaluate_model", ["--model", folder, "--data", folders["data"]])
        one_error(capsys, code, str(folder), fragment)
        code = run_script(
            "extend_vocabulary",
            ["--model", folder, "--corpus", folders["data"], "--output", tmp / "extended"],
        )
        one_error(capsys, code, str(folder), fragment)
    assert tree_digest(tmp) == before


# --------------------------------------------------------------------------- evaluation never overwrites results
def test_evaluation_never_writes_into_a_model_or_training_folder(folders, capsys):
    tmp, model, run = folders["tmp"], folders["model"], folders["run"]
    before = tree_digest(tmp)
    for output, fragment in (
        (model, "inside the model folder"),
        (model / "eval", "inside the model folder"),
        (run, "is a model or training folder (it holds final"),
        (run / "final" / "eval", "inside the model folder"),
        (run / "test", "holds an earlier evaluation (metrics.json)"),
    ):
        code = run_script("evaluate_model", ["--model", model, "--data", folders["data"], "--output", output])
        one_error(capsys, code, f"--output {output}", fragment)
    assert tree_digest(tmp) == before
    # an earlier evaluation is replaced only with --overwrite
    output = tmp / "eval"
    argv = ["--model", model, "--data", folders["data"], "--output", output, "--max-new-tokens", "3"]
    assert run_script("evaluate_model", argv) == 0
    first = tree_digest(output)
    capsys.readouterr()
    one_error(capsys, run_script("evaluate_model", argv), "holds an earlier evaluation", "--overwrite")
    assert tree_digest(output) == first
    assert run_script("evaluate_model", [*argv, "--overwrite", "--num-beams", "1"]) == 0
    assert sorted(tree_digest(output)) == ["metrics.json", "metrics.md", "predictions.jsonl"]


# --------------------------------------------------------------------------- issue 31: inputs and language tags
def test_an_output_that_holds_an_input_is_refused_even_with_overwrite(folders, capsys):
    """evaluate_model.py --output DIR --overwrite once replaced its own --data DIR/predictions.jsonl."""
    tmp, model = folders["tmp"], folders["model"]
    output = tmp / "eval"
    argv = ["--model", model, "--data", folders["data"], "--output", output, "--max-new-tokens", "3"]
    assert run_script("evaluate_model", argv) == 0
    before = tree_digest(tmp)
    data = output / "predictions.jsonl"
    again = ["--model", model, "--data", data, "--columns", '{"target": "reference"}', "--output", output]
    one_error(capsys, run_script("evaluate_model", [*again, "--overwrite"]), f"--output {output} holds --data {data}")
    inputs = ["--model", model, "--input", data, "--overwrite"]
    one_error(capsys, run_script("translate", [*inputs, "--output", data]), "is --input")
    one_error(capsys, run_script("translate", [*inputs, "--output", model / "out.txt"]), "lies inside --model")
    assert tree_digest(tmp) == before


def test_language_tags_the_model_was_not_trained_with_are_refused(folders, capsys, no_loading):
    tmp = folders["tmp"]
    model = shutil.copytree(folders["model"], tmp / "carded")
    (model / "README.md").write_text("---\nlanguage:\n- ug\n- zh\n---\n# card\n", encoding="utf-8")
    from conftest import write_jsonl

    data = write_jsonl(tmp / "fr.jsonl", [{"source": "fr: a", "target": "b", "lang": "fr"}])
    (tmp / "in.txt").write_text("We learn languages.\n")
    before = tree_digest(tmp)
    code = run_script("evaluate_model", ["--model", model, "--data", data])
    one_error(capsys, code, "row 0: column 'lang' 'fr' is not a language the model was trained with", "ug, zh")
    for tag in ("fr", "", "ug: zh"):
        argv = ["--model", model, "--input", tmp / "in.txt", "--output", tmp / "out.txt", "--target-language", tag]
        one_error(capsys, run_script("translate", argv), f"--target-language {tag!r}", "ug, zh")
    assert tree_digest(tmp) == before


# --------------------------------------------------------------------------- issue 31: Ctrl-C and a full disk
def rerun_command(message: str) -> list[str]:
    """The train.py arguments of the command an error line says to run."""
    import shlex

    command = shlex.split(message.split(", run: ")[-1])
    assert command[:2] == ["python", "scripts/train.py"], command
    return command[2:]


def file_modes(folder: Path) -> set[str]:
    return {oct(path.stat().st_mode & 0o777) for path in folder.rglob("*") if path.is_file()}


@pytest.mark.slow
def test_ctrl_c_names_the_kept_checkpoint_and_the_exact_resume_command(real_pairs, tiny_encoder, tmp_path, capsys):
    from transformers import TrainerCallback

    from xlm_swcm_hf.training import run

    class CtrlC(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 25:
                raise KeyboardInterrupt

    original = run.build

    def build(*args, **kwargs):
        parts = original(*args, **kwargs)
        parts.trainer.add_callback(CtrlC())
        return parts

    output = tmp_path / "run"
    arguments = train_arguments(real_pairs, tiny_encoder, output)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run, "build", build)
        code = run_script("train", arguments)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 130 and len(errors) == 1, errors
    assert "interrupted (Ctrl-C); checkpoint-20, the last complete checkpoint, is kept" in errors[0], errors[0]
    resume = rerun_command(errors[0])
    assert resume == [*arguments, "--resume"]
    assert run_script("train", resume) == 0
    assert json.loads((output / "checkpoint-30" / "trainer_state.json").read_text())["global_step"] == 30
    assert file_modes(output / "final") == {"0o644"} and file_modes(output / "checkpoint-30") == {"0o644"}


@pytest.mark.slow
def test_a_full_disk_while_writing_final_leaves_no_final_and_the_advice_never_loops(
    real_pairs, tiny_encoder, tmp_path, capsys
):
    """A full disk while final/ was written once said "a weights file is corrupt"; the reruns then sent the user
    between "pass --resume" and "start without --resume"."""
    import errno

    from safetensors import SafetensorError
    from transformers import modeling_utils

    original = modeling_utils.safe_save_file

    def full_disk(tensors, filename, *args, **kwargs):
        if ".final.partial-" in str(filename):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return original(tensors, filename, *args, **kwargs)

    straight = tmp_path / "straight"
    assert run_script("train", train_arguments(real_pairs, tiny_encoder, straight)) == 0
    output = tmp_path / "run"
    arguments = train_arguments(real_pairs, tiny_encoder, output)
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modeling_utils, "safe_save_file", full_disk)
        code = run_script("train", arguments)
    message = one_error(capsys, code, "No space left on device", "free space", "checkpoint-30, the last complete")
    assert "corrupt" not in message and not (output / "final").exists()
    assert not [path for path in output.iterdir() if path.name.startswith(".final")]  # no half-written final
    # without --resume: the refusal names --resume, which then works (and the disk error's advice was the same)
    one_error(capsys, run_script("train", arguments), "pass --resume to continue it from checkpoint-30")
    assert rerun_command(message) == [*arguments, "--resume"]
    assert run_script("train", rerun_command(message)) == 0
    assert not (output / "checkpoint-31").exists()  # the finished checkpoint is taken, not trained one step more
    import torch
    from safetensors.torch import load_file

    expected, actual = (load_file(str(folder / "final" / "model.safetensors")) for folder in (straight, output))
    assert all(torch.allclose(expected[name], actual[name], atol=1e-5) for name in expected)
    # a torch.save that fails (a RuntimeError without errno) is reported as a write failure too
    from xlm_swcm_hf.checks import error_message, write_failure

    assert write_failure(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")).errno
    assert "could not write a file; the disk is full" in error_message(RuntimeError("file write failed"))
    assert write_failure(OSError(errno.EACCES, "x")).errno == errno.EACCES


def test_resume_advice_never_loops(real_pairs, tiny_encoder, tmp_path):
    """Whatever a folder holds, each refusal names a way on that is accepted."""
    from conftest import tiny_recipe

    from xlm_swcm_hf.recipe import RecipeError
    from xlm_swcm_hf.training.run import _resume_point

    def outcome(recipe, resume):
        try:
            return _resume_point(recipe, resume) or "start"
        except RecipeError as error:
            return str(error)

    empty, unfinished, finished = (tmp_path / name for name in ("empty", "unfinished", "finished"))
    unfinished.mkdir()
    (unfinished / "metrics.json").write_text("{}")  # results written, final/ not: a run stopped at its end
    (finished / "final").mkdir(parents=True)
    recipes = {folder: tiny_recipe(real_pairs, tiny_encoder, folder) for folder in (empty, unfinished, finished)}
    assert outcome(recipes[empty], False) == "start" and "start without --resume" in outcome(recipes[empty], True)
    assert "pass --resume to finish it" in outcome(recipes[unfinished], False)
    assert outcome(recipes[unfinished], True) == "start"  # nothing complete to resume from: it starts over
    refused = outcome(recipes[finished], False)
    assert "--resume" not in refused and "overwrite_output_dir=true" in refused
    assert "overwrite_output_dir=true" in outcome(recipes[finished], True)
    recipes[finished].training["overwrite_output_dir"] = True
    assert outcome(recipes[finished], False) == outcome(recipes[finished], True) == "start"


def test_overwrite_replaces_only_what_the_command_wrote(folders, capsys):
    """push_to_hub.py --space-app M --overwrite once replaced M's weights with the app; M's parent, the whole run."""
    tmp, model, run = folders["tmp"], folders["model"], folders["run"]
    before = tree_digest(tmp)
    space = ["--model", run / "final", "--repo-id", "me/x", "--dry-run", "--overwrite", "--space-app"]
    for target, fragment in (
        (run / "final", "is --model"),
        (run, "holds --model"),
        (model, "is not a Space app that push_to_hub.py wrote"),
    ):
        message = one_error(capsys, run_script("push_to_hub", [*space, target]), fragment)
        assert "pass --overwrite" not in message
    convert = ["--checkpoint", folders["data"], "--encoder", folders["encoder"], "--overwrite", "--output"]
    one_error(capsys, run_script("convert_original_checkpoint", [*convert, run]), "holds a model folder (final)")
    extend = ["--model", folders["encoder"], "--corpus", folders["data"], "--overwrite", "--output"]
    one_error(capsys, run_script("extend_vocabulary", [*extend, tmp]), "holds --corpus")
    one_error(capsys, run_script("prepare_offline_encoder", ["--output", model]), "not an encoder folder this")
    assert tree_digest(tmp) == before
