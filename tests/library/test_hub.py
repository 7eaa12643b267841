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


def test_a_translation_card_lists_its_source_language_and_records_the_targets_apart(saved_folder, tmp_path):
    from xlm_swcm_hf.translation import known_languages

    metadata = card_metadata(render_model_card(languages=["bo", "ug"], source_languages=["en", "bo"]))
    assert metadata["language"] == ["en", "bo", "ug"] and metadata["target_languages"] == ["bo", "ug"]
    assert card_metadata(render_model_card())["language"] == ["multilingual"]
    assert "target_languages" not in card_metadata(render_model_card())
    new = save_hub_folder(
        tmp_path / "new", tiny_model(), card_fields={"languages": ["ug", "zh"], "source_languages": ["en"]}
    )
    assert card_metadata((new / "README.md").read_text())["language"] == ["en", "ug", "zh"]
    assert known_languages(new) == ["ug", "zh"]
    # a card written before target_languages: its `language` list is the targets
    card = (saved_folder / "README.md").read_text()
    old = tmp_path / "old"
    old.mkdir()
    (old / "README.md").write_text(card.replace("target_languages:\n- ug\n- zh\n", ""))
    assert "target_languages" not in (old / "README.md").read_text()
    assert card_metadata((old / "README.md").read_text())["language"] == ["ug", "zh"]
    assert known_languages(old) == ["ug", "zh"]


def test_the_dry_run_refuses_a_card_huggingface_hub_cannot_read(saved_folder, tmp_path, capsys):
    import shutil

    import yaml

    from xlm_swcm_hf.hub import hub_metadata_problems, model_index

    index = model_index("swcm", "translation", "test.jsonl", {"all": {"chrf": 30.0}})
    assert hub_metadata_problems(card_metadata(render_model_card(languages=["ug"], model_index=index))) == []
    result = index[0]["results"][0]
    cases = {
        "no-name": ([{"results": [result]}], "model-index entry 1 lacks 'name'"),
        "no-results": ([{"name": "swcm"}], "model-index entry 1 lacks 'results'"),
        "no-value": (
            [{"name": "swcm", "results": [{**result, "metrics": [{"type": "chrf"}]}]}],
            "model-index entry 1, result 1 lacks 'value'",
        ),
        "not-a-list": ({"name": "swcm"}, "model-index must be a non-empty list"),
        "tags-a-number": (None, "refused by huggingface_hub.ModelCardData"),
    }
    card = (saved_folder / "README.md").read_text()
    block, _, rest = card[4:].partition("\n---")
    for name, (bad_index, fragment) in cases.items():
        metadata = yaml.safe_load(block)
        if bad_index is None:
            metadata["tags"] = 5
        else:
            metadata["model-index"] = bad_index
        folder = shutil.copytree(saved_folder, tmp_path / name)
        (folder / "README.md").write_text("---\n" + yaml.safe_dump(metadata, sort_keys=False) + "---" + rest)
        assert push_main(["--model", folder, "--repo-id", "me/x", "--dry-run"]) == 2, name
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and fragment in errors[0], (name, errors)


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


# --------------------------------------------------------------------------- issue 31: lose nothing, leak nothing
def tree_digest(folder):
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def only_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err[-5:]
    return err[0]


def test_space_app_replaces_only_a_space_app(tmp_path, capsys):
    """`--space-app M --overwrite` once deleted M's weights; naming M's parent deleted the whole run folder."""
    from conftest import save_tiny_folder

    run = tmp_path / "run"
    model = save_hub_folder(run / "final", tiny_model(), build_tiny_xlmr_tokenizer(), card_fields={"languages": ["ug"]})
    (run / "metrics.json").write_text("{}")
    other = save_tiny_folder(tmp_path / "other")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    before = tree_digest(tmp_path)
    capsys.readouterr()  # the saves' progress bars
    for space, fragment in (
        (model, "is --model"),
        (run, "holds --model"),
        (model / "space", "lies inside --model"),
        (tmp_path, "holds --model"),
        (other, "is not a Space app that push_to_hub.py wrote (it holds config.json"),
        (notes, "is not a Space app that push_to_hub.py wrote (it holds todo.txt)"),
    ):
        for overwrite in ([], ["--overwrite"]):
            argv = ["--model", model, "--repo-id", "me/x", "--dry-run", "--space-app", space, *overwrite]
            assert push_main(argv) == 2
            message = only_error(capsys)
            assert fragment in message and "pass --overwrite" not in message, message
    assert tree_digest(tmp_path) == before
    # a Space app it wrote is replaced with --overwrite, and only then
    space = tmp_path / "space"
    argv = ["--model", model, "--repo-id", "me/x", "--dry-run", "--space-app", space]
    assert push_main(argv) == 0
    assert push_main(argv) == 2 and "exists; pass --overwrite" in only_error(capsys)
    (space / "app.py").write_text("# edited")
    assert push_main([*argv, "--overwrite"]) == 0
    assert (space / "app.py").read_text() != "# edited"
    (space / "weights.bin").write_text("not the app's")
    assert push_main([*argv, "--overwrite"]) == 2 and "weights.bin" in only_error(capsys)


def test_atomic_output_dir_never_replaces_a_run_models_or_an_input(tmp_path):
    from xlm_swcm_hf.checks import InputError
    from xlm_swcm_hf.files import check_output_dir

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "checkpoint-10").mkdir(parents=True)
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("{}\n")
    before = tree_digest(tmp_path)
    for target, fragment in (
        (run, "holds a model folder (final)"),
        (tmp_path / "ckpt", "holds a training run (checkpoint-10)"),
        (data.parent, "holds --data"),
    ):
        with pytest.raises(InputError, match=r"not replaced, even with --overwrite|refused even with --overwrite"):
            with atomic_output_dir(target, overwrite=True, inputs={"--data": data}):
                pass
        with pytest.raises(InputError) as refused:
            check_output_dir(target, False, inputs={"--data": data})
        assert fragment in str(refused.value) and "pass --overwrite" not in str(refused.value)
    assert tree_digest(tmp_path) == before
    # a model folder itself is still the converter's / train.py's own output to replace
    with atomic_output_dir(run / "final", overwrite=True) as staging:
        (staging / "config.json").write_text('{"new": 1}')
    assert (run / "final" / "config.json").read_text() == '{"new": 1}'


@pytest.mark.parametrize(
    "name, text, fragment",
    [
        (
            "README.md",
            "trained on /home/alice/data/train.jsonl",
            "the absolute local path /home/alice/data/train.jsonl",
        ),
        ("config.json", '{"_name_or_path": "/tmp/run/final"}', "the absolute local path /tmp/run/final"),
        ("metrics.json", '{"data": "C:\\\\Users\\\\alice\\\\d.jsonl"}', "the absolute local path C:"),
        ("notes.yaml", "encoder: ~/encoders/xlmr", "the absolute local path ~/encoders/xlmr"),
        ("README.md", "trained by alice-lab on node", "the user or host name 'alice-lab'"),
        ("README.md", "ran on gpu-node-7.cluster.example", "the user or host name 'gpu-node-7"),
    ],
)
def test_no_file_to_upload_holds_a_local_detail(saved_folder, capsys, monkeypatch, name, text, fragment):
    import getpass
    import socket

    monkeypatch.setattr(getpass, "getuser", lambda: "alice-lab")
    monkeypatch.setattr(socket, "gethostname", lambda: "gpu-node-7.cluster.example")
    assert push_main(["--model", saved_folder, "--repo-id", "me/x", "--dry-run"]) == 0  # as saved: nothing local
    capsys.readouterr()
    path = saved_folder / name
    if name == "README.md":
        path.write_text(path.read_text() + "\n" + text + "\n")
    elif name == "config.json":
        path.write_text(path.read_text().replace("{", text[:-1] + ", ", 1))
    else:
        path.write_text(text)
    assert push_main(["--model", saved_folder, "--repo-id", "me/x", "--dry-run"]) == 2
    message = only_error(capsys)
    assert f"{name} holds {fragment}" in message, message


def test_a_vocabulary_may_hold_the_user_name_as_a_word(saved_folder, monkeypatch):
    import getpass

    tokenizer = json.loads((saved_folder / "tokenizer.json").read_text())
    word = tokenizer["model"]["vocab"][5][0].strip("▁")
    monkeypatch.setattr(getpass, "getuser", lambda: word * 3)
    (saved_folder / "tokenizer.json").write_text(json.dumps({**tokenizer, "added": f"▁{word * 3}"}))
    validate_hub_folder(saved_folder, load_weights=False)


def test_public_names_and_recipe_hold_no_local_path(tmp_path):
    from xlm_swcm_hf.hub import public_name, public_recipe

    assert public_name("FacebookAI/xlm-roberta-base") == "FacebookAI/xlm-roberta-base"
    assert public_name(tmp_path / "encoders" / "xlmr") == "xlmr"
    assert public_name("./data/train.jsonl", "file") == "train.jsonl"
    recipe = {
        "model": {"encoder": str(tmp_path / "enc"), "path": None, "config": {"dropout": 0.1}},
        "data": {"train_file": "/home/me/train.jsonl", "monolingual_files": {"bo": ["/srv/bo.txt", "~/x/kk.txt"]}},
        "training": {"output_dir": str(tmp_path / "run"), "optim": "adamw_torch"},
    }
    public = public_recipe(recipe)
    assert public["model"] == {"encoder": "enc", "path": None, "config": {"dropout": 0.1}}
    assert public["data"] == {"train_file": "train.jsonl", "monolingual_files": {"bo": ["bo.txt", "kk.txt"]}}
    assert public["training"] == {"output_dir": "run", "optim": "adamw_torch"}


@pytest.mark.slow
def test_the_card_train_writes_names_no_local_path_and_pushes(real_pairs, tiny_encoder, tmp_path, capsys):
    from conftest import run_script

    output = tmp_path / "run"
    arguments = [
        "--config",
        ROOT / "configs" / "tiny.yaml",
        f"model.encoder={tiny_encoder}",
        f"data.train_file={real_pairs / 'train.jsonl'}",
        f"data.validation_file={real_pairs / 'validation.jsonl'}",
        f"data.test_file={real_pairs / 'test.jsonl'}",
        f"training.output_dir={output}",
        "training.max_steps=2",
        "training.save_strategy=no",
    ]
    assert run_script("train", arguments) == 0
    card = (output / "final" / "README.md").read_text()
    for local in (str(tmp_path), str(real_pairs), str(tiny_encoder), str(ROOT)):
        assert local not in card
    assert f"encoder: {tiny_encoder.name}" in card and "train_file: train.jsonl" in card
    metadata = card_metadata(card)  # en -> ug, kk, mn, zh pairs: the source language is on the card, apart
    assert metadata["language"] == ["en", "kk", "mn", "ug", "zh"]
    assert metadata["target_languages"] == ["kk", "mn", "ug", "zh"]
    capsys.readouterr()
    assert push_main(["--model", output / "final", "--repo-id", "me/x", "--dry-run"]) == 0
