"""Hub-ready folders: atomic writes, the model card, validation and upload."""

import json
import os
import shutil
import string
from pathlib import Path

import yaml

from .files import atomic_output_dir


MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
REMOTE_CODE_FILES = ("configuration_xlm_swcm.py", "modeling_xlm_swcm.py")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")

CARD_DEFAULTS = {
    "license": "apache-2.0",
    "base_model": "hfl/cino-base-v2",
    "model_name": "XLM-SWCM",
    "description": "An XLM-SWCM sequence-to-sequence model.",
    "training": "See the repository that produced this folder.",
    "results": "No evaluation results were recorded.",
    "parameters": "unknown",
    "layout": "",
}


def render_model_card(template_path: str | os.PathLike | None = None, **fields) -> str:
    """Fill the card template (`$name` placeholders) and check that its YAML metadata parses."""
    template = Path(template_path or MODEL_CARD_TEMPLATE).read_text(encoding="utf-8")
    values = {**CARD_DEFAULTS, **{key: value for key, value in fields.items() if value is not None}}
    card = string.Template(template).substitute(values)
    card_metadata(card)
    return card


def card_metadata(card: str) -> dict:
    """The YAML block between the leading `---` lines of a model card."""
    if not card.startswith("---\n"):
        raise ValueError("The model card must start with a YAML metadata block delimited by '---' lines.")
    block, separator, _ = card[4:].partition("\n---")
    if not separator:
        raise ValueError("The model card's YAML metadata block is not closed with '---'.")
    metadata = yaml.safe_load(block)
    if not isinstance(metadata, dict):
        raise ValueError("The model card's metadata block is not a YAML mapping.")
    return metadata


def describe_model(model) -> dict:
    """Card fields that come from the model itself."""
    config = model.config
    count = sum(p.numel() for p in model.parameters())
    layout = " ".join("C" if kind == "custom" else "N" for kind in config.decoder_layout)
    return {
        "parameters": f"{count / 1e6:.1f}M",
        "layout": (
            f"{config.num_hidden_layers} encoder layers; decoder `{layout}` "
            f"(normal_layer_interval={config.normal_layer_interval}, {config.decoder_layer_norm_position}-LN, "
            f"custom_self_attn_residual={config.custom_self_attn_residual}); hidden {config.hidden_size}, "
            f"vocabulary {config.vocab_size}"
        ),
    }


def save_hub_folder(
    output_dir: str | os.PathLike,
    model,
    tokenizer=None,
    card_fields: dict | None = None,
    metrics: dict | None = None,
    overwrite: bool = False,
    extra_files: dict[str, str | os.PathLike] | None = None,
    check=None,
) -> Path:
    """Write model (safetensors), generation config, remote code, tokenizer, README model card, metrics; atomically.

    `check(folder)` runs on the complete staging folder before it is moved into place; if it raises, nothing is left.
    """
    with atomic_output_dir(output_dir, overwrite=overwrite) as staging:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        fields = {**describe_model(model), **(card_fields or {})}
        (staging / "README.md").write_text(render_model_card(**fields), encoding="utf-8")
        if metrics is not None:
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / name)
        if check is not None:
            check(staging)
    return Path(output_dir)


def validate_hub_folder(folder: str | os.PathLike, load_weights: bool = True) -> list[str]:
    """Check that a folder will work on the Hub. Returns the files to upload; raises ValueError listing problems."""
    folder = Path(folder)
    problems = []
    config_path = folder / "config.json"
    if not config_path.exists():
        raise ValueError(f"{folder} has no config.json; is it a saved model folder?")
    config = json.loads(config_path.read_text())
    auto_map = config.get("auto_map") or {}
    if "AutoModelForSeq2SeqLM" not in auto_map or "AutoConfig" not in auto_map:
        problems.append("config.json has no auto_map for AutoConfig and AutoModelForSeq2SeqLM")
    for reference in auto_map.values():
        module = reference.split("--")[-1].split(".")[0] + ".py"
        if not (folder / module).exists():
            problems.append(f"auto_map refers to {module}, which is not in the folder")
    if not any((folder / name).exists() for name in WEIGHT_FILES):
        problems.append("no safetensors weights (model.safetensors)")
    if not (folder / "README.md").exists():
        problems.append("no README.md model card")
    else:
        try:
            metadata = card_metadata((folder / "README.md").read_text(encoding="utf-8"))
            for key in ("license", "language", "pipeline_tag", "library_name"):
                if key not in metadata:
                    problems.append(f"model card metadata lacks '{key}'")
        except (ValueError, yaml.YAMLError) as error:
            problems.append(f"model card metadata invalid: {error}")
    if not problems and load_weights:
        from transformers import AutoModelForSeq2SeqLM

        try:
            AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True)
        except Exception as error:  # report, don't crash: this is a validator
            problems.append(f"weights do not load: {type(error).__name__}: {error}")
    if problems:
        raise ValueError(f"{folder} is not ready for the Hub:\n- " + "\n- ".join(problems))
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = False, dry_run: bool = False) -> list[str]:
    """Validate, then upload the folder with `huggingface_hub`. With `dry_run`, only validate and list."""
    files = validate_hub_folder(folder)
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                      commit_message="Upload XLM-SWCM model, tokenizer, remote code and model card")
    return files
