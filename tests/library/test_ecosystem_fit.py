"""The model in the ecosystem, as a transformers / peft / accelerate user would drive it (issue 36).

Each case runs where it matters: a saved folder loaded through its own remote code in a fresh interpreter where
xlm_swcm_hf is not importable (`clean_process`), compared with what the same call gives inside this package.

- accelerate's `device_map` offloading the whole model to disk: `generate` gives what the loaded model gives, also
  with `output_languages` (the embeddings and the LM head are read through their modules, never their weights).
- `from_pretrained(repo, subfolder=...)`: transformers' remote-code loader looks for the code files at the
  repository's root (it ignores `subfolder`) and refuses naming the missing file; with the code files at the root
  the model and its output vocabularies load from the subfolder.
"""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import tiny_model

from xlm_swcm_hf.hub import save_hub_folder
from xlm_swcm_hf.modeling_xlm_swcm import OUTPUT_VOCABULARIES_FILE
from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer


SOURCES = ["ug zh", "zh ug ug"]
VOCABULARIES = {"ug": [0, 1, 2, 3, *range(10, 45)], "zh": [0, 1, 2, 3, *range(40, 99, 2)]}
ANSWER = "answer: "
GENERATION = {"max_new_tokens": 5, "do_sample": False, "num_beams": 1}


def clean_process(code: str, cwd) -> dict:
    """Run `code` in a fresh interpreter where xlm_swcm_hf cannot be imported (offline, the package off the path,
    working directory `cwd`); the code calls `answer(object)` once, whose JSON is returned here."""
    prelude = f"""
import json, sys
sys.modules["xlm_swcm_hf"] = None
def answer(value):
    print({ANSWER!r} + json.dumps(value))
"""
    script = prelude + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(ANSWER)]
    return json.loads(line[len(ANSWER) :])


def translating_model():
    model = tiny_model(initializer_range=0.3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.set_output_vocabularies(VOCABULARIES)
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_hub_folder(
        tmp_path_factory.mktemp("fit") / "model",
        translating_model(),
        build_tiny_xlmr_tokenizer(),
        metrics={"chrf": 1.0},
        card_fields={"languages": ["ug", "zh"]},
    )


def expected_generations(folder) -> dict:
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    model = XLMSWCMForConditionalGeneration.from_pretrained(folder).eval()
    batch = AutoTokenizer.from_pretrained(folder)(SOURCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        plain = model.generate(**batch, **GENERATION).tolist()
        restricted = model.generate(**batch, **GENERATION, output_languages=["ug", "zh"]).tolist()
    return {"plain": plain, "restricted": restricted}


def test_whole_model_offloaded_to_disk_generates_as_loaded(folder, tmp_path):
    expected = expected_generations(folder)
    result = clean_process(
        f"""
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        folder = {str(folder)!r}
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        batch = tokenizer({SOURCES!r}, return_tensors="pt", padding=True)
        result = {{}}
        for name, options in (
            ("disk", dict(device_map={{"": "disk"}})),
            ("auto", dict(device_map="auto", max_memory={{"cpu": 1}})),  # nothing fits in memory: all on disk
        ):
            model = AutoModelForSeq2SeqLM.from_pretrained(
                folder, trust_remote_code=True, offload_folder="offload_" + name, **options
            )
            result[name + "_devices"] = sorted(set(model.hf_device_map.values()))
            result[name + "_meta"] = model.lm_head.weight.device.type
            with torch.no_grad():
                result[name] = {{
                    "plain": model.generate(**batch, **{GENERATION!r}).tolist(),
                    "restricted": model.generate(**batch, **{GENERATION!r}, output_languages=["ug", "zh"]).tolist(),
                }}
        answer(result)
        """,
        tmp_path,
    )
    for name in ("disk", "auto"):
        assert result[name + "_devices"] == ["disk"] and result[name + "_meta"] == "meta"
        assert result[name] == expected


def test_subfolder_loads_when_the_code_sits_at_the_repository_root(folder, tmp_path):
    repository = tmp_path / "repository"
    shutil.copytree(folder, repository / "checkpoint")
    assert (repository / "checkpoint" / OUTPUT_VOCABULARIES_FILE).is_file()
    load = """
        from transformers import AutoModelForSeq2SeqLM
        try:
            model = AutoModelForSeq2SeqLM.from_pretrained("repository", subfolder="checkpoint", trust_remote_code=True)
        except OSError as error:
            answer({"error": str(error)})
        else:
            answer({"class": type(model).__name__, "vocabularies": model.output_vocabularies})
        """
    # transformers fetches remote code from the repository's root whatever `subfolder` says (dynamic_module_utils)
    refused = clean_process(load, tmp_path)
    assert "does not appear to have a file named configuration_xlm_swcm.py" in refused["error"]
    for name in ("configuration_xlm_swcm.py", "modeling_xlm_swcm.py"):
        shutil.copy(folder / name, repository / name)
    loaded = clean_process(load, tmp_path)
    assert loaded == {"class": "XLMSWCMForConditionalGeneration", "vocabularies": VOCABULARIES}


def lora_targets(model) -> list[str]:
    """The module names (last part) a peft model wraps with LoRA layers."""
    return sorted(
        {name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_A." in name}
    )


def test_lora_config_without_target_modules_targets_the_attention_queries_and_values():
    peft = pytest.importorskip("peft")
    from xlm_swcm_hf.peft_targets import LORA_TARGET_MODULES

    model = peft.get_peft_model(tiny_model(), peft.LoraConfig(task_type=peft.TaskType.SEQ_2_SEQ_LM, r=4))
    assert lora_targets(model) == sorted(LORA_TARGET_MODULES)
    assert model.peft_config["default"].target_modules == set(LORA_TARGET_MODULES)


def test_lora_where_the_package_is_not_importable_needs_target_modules(folder, tmp_path):
    """Remote code cannot register peft's defaults: peft refuses as for any unknown model type; the docs' two
    choices work."""
    pytest.importorskip("peft")
    result = clean_process(
        f"""
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForSeq2SeqLM
        def load():
            return AutoModelForSeq2SeqLM.from_pretrained({str(folder)!r}, trust_remote_code=True)
        def targets(model):
            names = [name for name, _ in model.named_parameters() if ".lora_A." in name]
            return sorted({{name.split(".lora_A.")[0].rsplit(".", 1)[-1] for name in names}})
        result = {{}}
        try:
            get_peft_model(load(), LoraConfig(r=4))
        except ValueError as error:
            result["error"] = str(error)
        result["all-linear"] = targets(get_peft_model(load(), LoraConfig(r=4, target_modules="all-linear")))
        listed = ["query", "value", "q_proj", "v_proj"]
        result["listed"] = targets(get_peft_model(load(), LoraConfig(r=4, target_modules=listed)))
        answer(result)
        """,
        tmp_path,
    )
    assert "specify `target_modules`" in result["error"]
    assert "lm_head" not in result["all-linear"]
    assert {"query", "key", "value", "dense", "q_proj", "v_proj", "out_proj", "fc1", "fc2"} <= set(result["all-linear"])
    assert result["listed"] == ["q_proj", "query", "v_proj", "value"]


def test_the_distribution_carries_licence_classifiers_and_authors(tmp_path):
    """A wheel built from the project (setuptools, no network) ships LICENSE and describes itself on PyPI."""
    import email
    import zipfile

    from conftest import ROOT

    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for package in ("xlm_swcm_hf", "xlm_swcm_experiments"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-c", "from setuptools import build_meta; print(build_meta.build_wheel('../dist'))"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = tmp_path / "dist" / built.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_string(archive.read(metadata_name).decode("utf-8"))
        (license_name,) = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
        assert "Apache License" in archive.read(license_name).decode("utf-8")
    assert metadata["License-Expression"] == "Apache-2.0" and metadata["License-File"] == "LICENSE"
    assert metadata["Author"] == "xlm-swcm-hf contributors"
    classifiers = metadata.get_all("Classifier")
    assert (
        "Programming Language :: Python :: 3" in classifiers and "Intended Audience :: Science/Research" in classifiers
    )
    assert not [value for value in metadata.get_all("Project-URL") or [] if "example" in value or "USER" in value]


def test_group_by_length_is_refused_naming_its_transformers_5_spelling(tmp_path):
    from conftest import ROOT

    from xlm_swcm_hf.recipe import Recipe, RecipeError

    common = ["model.encoder=encoder", "data.train_file=train.jsonl", f"training.output_dir={tmp_path}"]
    with pytest.raises(RecipeError, match=r"use training\.train_sampling_strategy=group_by_length\.$"):
        Recipe.from_yaml(ROOT / "configs" / "tiny.yaml", ["training.group_by_length=true", *common])
    recipe = Recipe.from_yaml(
        ROOT / "configs" / "tiny.yaml", ["training.train_sampling_strategy=group_by_length", *common]
    )
    assert recipe.training_arguments(bf16=False).train_sampling_strategy == "group_by_length"


def test_the_card_carries_the_measured_test_metrics_as_model_index():
    from xlm_swcm_hf.hub import card_metadata, model_index, render_model_card

    test = {"all": {"chrf": 31.25, "bleu": 4.5, "rougeL": 0.25, "count": 8}, "kk": {"chrf": 40.0, "count": 2}}
    index = model_index("swcm-kk", "translation", "test.jsonl", test)
    metadata = card_metadata(render_model_card(languages=["kk"], model_index=index))
    (result,) = metadata["model-index"][0]["results"]
    assert metadata["model-index"][0]["name"] == "swcm-kk" and result["task"]["type"] == "translation"
    assert result["dataset"] == {"name": "test.jsonl", "type": "test.jsonl", "split": "test"}
    assert [(entry["type"], entry["value"], entry["name"]) for entry in result["metrics"]] == [
        ("chrf", 31.25, "chrF (all languages)"),
        ("bleu", 4.5, "BLEU (all languages)"),
        ("rouge", 0.25, "ROUGE-L F (all languages)"),
        ("chrf", 40.0, "chrF (kk)"),
    ]
    assert model_index("x", "denoising", "pkupie/mc2_corpus", {}) is None
    with pytest.raises(ValueError, match="local path"):
        model_index("x", "translation", "/home/me/test.jsonl", test)
