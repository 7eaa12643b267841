"""Hub-ready folders: the model summary (layout string, parameter count), the model card, validation, upload."""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from .checks import TOKENIZER_VOCABULARY_FILES, InputError, looks_like_local_path, read_json_file
from .files import atomic_output_dir


MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
REMOTE_CHECK_SCRIPT = Path(__file__).resolve().parent / "remote_check.py"
REMOTE_CODE_FILES = ("configuration_xlm_swcm.py", "modeling_xlm_swcm.py")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
ADAPTER_CONFIG = "adapter_config.json"  # a peft adapter folder (see training/adapters.py)
REQUIRED_AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM")
REQUIRED_CARD_METADATA = ("license", "language", "pipeline_tag", "library_name")
# The card's `language` is every language the model reads or writes (what the Hub lists and filters by); this extra
# metadata key holds the target-language tags it writes into, which translate.py, serve.py and the other readers of
# `card_target_languages` offer. A card without it (written before it existed) has only targets in `language`.
TARGET_LANGUAGES_KEY = "target_languages"
CARD_DEFAULTS = {
    "license": "apache-2.0",
    "model_name": "XLM-SWCM",
    "description": "An XLM-SWCM sequence-to-sequence model.",
    "training": "See the repository that produced this folder.",
    "results": "No evaluation results were recorded.",
}
# The card of the authors' released model, as the converter writes it (also `model_card.md` at the repository root).
RELEASED_MODEL_CARD = {
    "model_name": "XLM-SWCM (converted original checkpoint)",
    "base_model": "hfl/cino-base-v2",
    "languages": ["bo", "ug", "kk", "mn", "zh"],
    "datasets": ["pkupie/mc2_corpus"],
    "description": (
        "The authors' released XLM-SWCM weights, converted to the Hugging Face Transformers layout (xlm-swcm-hf). "
        "The conversion was checked key by key and the saved folder was reloaded and compared before it was written."
    ),
    "training": "Pretrained by the authors with denoising auto-encoding and machine translation on MC2 + Chinese.",
}


# What the released model's card says about its size (the converter measures it from the weights it writes).
RELEASED_MODEL_SUMMARY = {
    "parameters": "491.6M",
    "layout": "12 encoder layers; decoder `C C C N C C C N C C C N C C C`",
}


class HubFolderError(InputError):
    """A folder that would not work on the Hub; the message lists every problem."""


# ------------------------------------------------------------------------------------- nothing local on the Hub
def public_name(source: str | os.PathLike | None, what: str = "folder") -> str | None:
    """How a public file names a model or data source: a Hub id as it is, a local path by its base name only (or
    "a local folder"/"a local file" where the base name says nothing or would name the user or the machine)."""
    if source is None or not looks_like_local_path(source):
        return None if source is None else os.fspath(source)
    name = Path(os.path.abspath(Path(os.fspath(source)).expanduser())).name
    return name if name and name not in _local_names() else f"a local {what}"


def public_recipe(data):
    """A recipe's data (`Recipe.to_dict()`) with every local path replaced by `public_name`: for the model card."""
    if isinstance(data, dict):
        return {key: public_recipe(value) for key, value in data.items()}
    if isinstance(data, list):
        return [public_recipe(value) for value in data]
    if isinstance(data, str) and looks_like_local_path(data):
        return public_name(data, "file" if Path(data).suffix else "folder")
    return data


# Upload files read as text for local details. A vocabulary (tokenizer.json) is checked for paths only: it holds
# ordinary words, and a user or host name may be one of them.
PUBLIC_TEXT_SUFFIXES = (".json", ".jsonl", ".md", ".yaml", ".yml", ".txt")
VOCABULARY_TEXT_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "merges.txt")
# Account and host names that name nobody (and are English words); a path under them is still refused.
ANONYMOUS_NAMES = frozenset({"root", "user", "admin", "ubuntu", "runner", "jovyan", "localhost", "home", "work"})
# Top folders of absolute paths that are local wherever they were written (the rest: those that exist here).
LOCAL_TOP_FOLDERS = frozenset(
    {
        "home",
        "Users",
        "root",
        "tmp",
        "mnt",
        "media",
        "data",
        "scratch",
        "work",
        "workspace",
        "srv",
        "opt",
        "var",
        "private",
        "Volumes",
        "content",
        "gpfs",
        "lustre",
        "nfs",
        "export",
        "net",
    }
)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~\\-])(/[\w.+@-]+(?:/[\w.+@-]+)+)|\b([A-Za-z]:\\[^\s\"'`]+)|(~/[^\s\"'`]+)")


def _local_names() -> set[str]:
    """This user's and this machine's names, where they name someone (not `root`, not `localhost`)."""
    import getpass
    import socket

    names = set()
    try:
        names.add(getpass.getuser())
    except (KeyError, OSError):  # no user name in the environment nor the password database
        pass
    host = socket.gethostname()
    names |= {host, host.split(".")[0]}
    return {name for name in names if name and len(name) >= 3 and name.lower() not in ANONYMOUS_NAMES}


def local_detail(text: str, vocabulary: bool = False) -> str | None:
    """The first local detail in `text` ("the absolute local path /home/me/x", "the user or host name me"), or
    None. A vocabulary is checked for paths and the home folder only."""
    home = os.path.expanduser("~")
    if len(home) > 1 and re.search(re.escape(home) + r"(?![\w.-])", text):
        return f"the home folder {home}"
    for match in _ABSOLUTE_PATH.finditer(text):
        path = match.group(0)
        if match.group(1):
            top = path.split("/")[1]
            if top not in LOCAL_TOP_FOLDERS and not os.path.isdir("/" + top):
                continue
        return f"the absolute local path {path}"
    if not vocabulary:
        for name in sorted(_local_names()):
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
                return f"the user or host name {name!r}"
    return None


def local_details_problems(folder: str | os.PathLike) -> list[str]:
    """One problem per text file of an upload that holds a local path, the home folder, the user or host name."""
    folder = Path(folder)
    problems = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in PUBLIC_TEXT_SUFFIXES:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if detail := local_detail(text, vocabulary=path.name in VOCABULARY_TEXT_FILES):
            problems.append(
                f"{path.relative_to(folder)} holds {detail}, which must not reach the Hub; name a Hub id or the "
                "folder's base name there instead"
            )
    return problems


def layout_string(config) -> str:
    """The decoder layout as the paper writes it, e.g. `C C C N C C C N C C C N C C C`."""
    return " ".join("C" if kind == "custom" else "N" for kind in config.decoder_layout)


def parameter_count(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def is_peft_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def describe_model(model) -> dict:
    """Card fields that come from the model itself."""
    config = model.config
    parameters = f"{parameter_count(model) / 1e6:.1f}M"
    if is_peft_model(model):
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        parameters += f" with the adapter, of which {trainable / 1e6:.2f}M in the adapter (trained)"
    return {
        "parameters": parameters,
        "layout": (
            f"{config.num_hidden_layers} encoder layers; decoder `{layout_string(config)}` "
            f"(normal_layer_interval={config.normal_layer_interval}, {config.decoder_layer_norm_position}-LN, "
            f"custom_self_attn_residual={config.custom_self_attn_residual}); hidden {config.hidden_size}, "
            f"vocabulary {config.vocab_size}"
        ),
    }


# metrics.json's per-language test metrics -> the Hub's model-index metric types and display names
MODEL_INDEX_METRICS = {"chrf": ("chrf", "chrF"), "bleu": ("bleu", "BLEU"), "rougeL": ("rouge", "ROUGE-L F")}


def model_index(name: str, task: str, dataset: str, test_metrics: dict | None) -> list[dict] | None:
    """The card's `model-index` (the Hub's evaluation results): one result for the test split, with chrF, BLEU and
    ROUGE-L per language and overall as `train.py` measured them (`metrics["test"]`); None without test metrics."""
    if looks_like_local_path(dataset):
        raise InputError(f"dataset={dataset!r} is a local path; name it by a Hub id or its base name (public_name).")
    entries = []
    for group, values in sorted((test_metrics or {}).items(), key=lambda item: (item[0] != "all", item[0])):
        for key, (kind, label) in MODEL_INDEX_METRICS.items():
            if isinstance(values, dict) and isinstance(values.get(key), (int, float)):
                where = "all languages" if group == "all" else group
                entries.append({"type": kind, "value": round(float(values[key]), 4), "name": f"{label} ({where})"})
    if not entries:
        return None
    task_type = "translation" if task == "translation" else "text2text-generation"
    return [
        {
            "name": name,
            "results": [
                {
                    "task": {"type": task_type, "name": task_type.replace("-", " ").capitalize()},
                    "dataset": {"name": dataset, "type": dataset, "split": "test"},
                    "metrics": entries,
                }
            ],
        }
    ]


def card_metadata_block(
    languages=None,
    base_model=None,
    datasets=None,
    license="apache-2.0",
    adapter=False,
    model_index=None,
    source_languages=None,
) -> dict:
    """The card's YAML metadata: only what is true of the model in the folder (no base model or data it lacks).
    An adapter folder is a `peft` repository whose `base_model` is the model it adapts. `languages`: the target
    languages (TARGET_LANGUAGES_KEY); `language` lists the `source_languages` and then them."""
    if base_model is not None and looks_like_local_path(base_model):
        raise InputError(f"base_model={base_model!r} is a local path; the card needs a Hub id or none.")
    every_language = list(dict.fromkeys([*(source_languages or []), *(languages or [])]))
    metadata = {"license": license, "language": every_language or ["multilingual"]}
    if languages:
        metadata[TARGET_LANGUAGES_KEY] = list(languages)
    if base_model:
        metadata["base_model"] = base_model
    if datasets:
        metadata["datasets"] = list(datasets)
    metadata.update(
        {
            "pipeline_tag": "text2text-generation",
            "library_name": "peft" if adapter else "transformers",
            "tags": ["xlm-swcm", "low-resource", "seq2seq", "custom_code"] + (["lora"] if adapter else []),
        }
    )
    if model_index:
        metadata["model-index"] = model_index
    return metadata


def render_model_card(
    template_path: str | os.PathLike | None = None,
    *,
    languages=None,
    base_model=None,
    datasets=None,
    adapter=False,
    model_index=None,
    source_languages=None,
    **fields,
) -> str:
    """Fill the card template (`$name` placeholders) with its metadata block; checks that the metadata parses."""
    template = Path(template_path or MODEL_CARD_TEMPLATE).read_text(encoding="utf-8")
    values = {
        "parameters": "unknown",
        "layout": "",
        **CARD_DEFAULTS,
        **{key: value for key, value in fields.items() if value is not None},
    }
    metadata = card_metadata_block(
        languages, base_model, datasets, values["license"], adapter, model_index, source_languages
    )
    values["metadata"] = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    card = string.Template(template).substitute(values)
    card_metadata(card)
    return card


def write_released_model_card(path: str | os.PathLike) -> None:
    """`model_card.md` at the repository root: the card the converter writes for the released model."""
    Path(path).write_text(render_model_card(**RELEASED_MODEL_CARD, **RELEASED_MODEL_SUMMARY), encoding="utf-8")


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


def card_target_languages(metadata: dict) -> list[str]:
    """The target-language tags a card's metadata records: TARGET_LANGUAGES_KEY, else (an older card) `language`;
    "multilingual" aside, each once."""
    listed = metadata.get(TARGET_LANGUAGES_KEY, metadata.get("language"))
    listed = listed if isinstance(listed, list) else [listed] if listed else []
    return list(dict.fromkeys(str(code) for code in listed if code != "multilingual"))


# What each model-index result needs for huggingface_hub to read it (repocard_data.model_index_to_eval_results).
MODEL_INDEX_RESULT_FIELDS = "task.type, dataset.name, dataset.type and metrics, each with type and value"


def model_index_problems(index) -> list[str]:
    """Where a card's `model-index` is not what huggingface_hub reads as evaluation results: per entry and result,
    the key it lacks (the Hub's own parser, `model_index_to_eval_results`, run on each part to locate it)."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    if not isinstance(index, list) or not index:
        return ["model card model-index must be a non-empty list of entries, each with a name and results"]
    problems = []
    for number, entry in enumerate(index, start=1):
        where = f"model card model-index entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping with a name and results")
            continue
        missing = [key for key in ("name", "results") if key not in entry]
        if missing or not isinstance(entry["results"], list):
            lacks = " and ".join(repr(key) for key in missing) if missing else "a list of results"
            problems.append(f"{where} lacks {lacks}")
            continue
        for result_number, result in enumerate(entry["results"], start=1):
            try:
                model_index_to_eval_results([{"name": entry["name"], "results": [result]}])
            except KeyError as error:
                problems.append(
                    f"{where}, result {result_number} lacks {error.args[0]!r} (a result needs "
                    f"{MODEL_INDEX_RESULT_FIELDS})"
                )
            except (TypeError, AttributeError):  # a list or text where a mapping belongs
                problems.append(f"{where}, result {result_number} is not a mapping of {MODEL_INDEX_RESULT_FIELDS}")
    return problems


def hub_metadata_problems(metadata: dict) -> list[str]:
    """What huggingface_hub itself refuses in a card's metadata: the model-index (`model_index_problems`), then
    `ModelCardData`, the parser `ModelCard` loads a card's metadata with. No Hub request is made (`ModelCard.validate`
    asks the Hub)."""
    from huggingface_hub import ModelCardData

    if "model-index" in metadata and (problems := model_index_problems(metadata["model-index"])):
        return problems
    try:
        ModelCardData(**metadata)
    except (ValueError, TypeError, KeyError) as error:
        return [f"model card metadata is refused by huggingface_hub.ModelCardData: {error}"]
    return []


def source_length_limit(config) -> int | None:
    """Tokens the model's shared position table embeds (positions start at pad_token_id + 1)."""
    size, pad = getattr(config, "max_position_embeddings", None), getattr(config, "pad_token_id", None)
    return size - pad - 1 if isinstance(size, int) and isinstance(pad, int) else None


def save_hub_folder(
    output_dir: str | os.PathLike,
    model,
    tokenizer=None,
    card_fields: dict | None = None,
    metrics: dict | None = None,
    overwrite: bool = False,
    extra_files: dict[str, str | os.PathLike] | None = None,
    check=None,
    inputs: dict | None = None,
) -> Path:
    """Write model (safetensors), generation config, remote code, tokenizer, README model card, metrics; atomically.

    `check(folder)` runs on the complete staging folder before it is moved into place; if it raises, nothing is left.
    `inputs` (option -> path): what the output must not be, hold or lie inside, overwrite or not.
    """
    with atomic_output_dir(output_dir, overwrite=overwrite, inputs=inputs) as staging:
        model.save_pretrained(staging)
        if is_peft_model(model):  # the adapter carries the generation settings it was evaluated with
            model.get_base_model().generation_config.save_pretrained(staging)
        if tokenizer is not None:
            limit = source_length_limit(model.config)
            if limit is not None and (tokenizer.model_max_length or 0) > limit:
                # so that `truncation=True` cuts a source to what the position table embeds (1e30 otherwise)
                tokenizer.model_max_length = limit
            tokenizer.save_pretrained(staging)
        fields = {**describe_model(model), "adapter": is_peft_model(model), **(card_fields or {})}
        (staging / "README.md").write_text(render_model_card(**fields), encoding="utf-8")
        if metrics is not None:
            (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, staging / name)
        if check is not None:
            check(staging)
    return Path(output_dir)


def load_in_clean_process(folder: str | os.PathLike, request: dict | None = None, timeout: int = 900) -> dict:
    """Load `folder` in a child interpreter where this package is not importable (see `remote_check.py`).

    `request` may ask for `sources` + `generation` (translations) or `logits_inputs` (logits). Raises HubFolderError
    with the child's last error line when loading fails.
    """
    with tempfile.TemporaryDirectory() as scratch:
        request_path, answer_path = Path(scratch) / "request.json", Path(scratch) / "answer.json"
        request_path.write_text(json.dumps(request or {}, ensure_ascii=False), encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(REMOTE_CHECK_SCRIPT), os.fspath(folder), str(request_path), str(answer_path)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""},
            # the caller's working directory, so that a relative folder (or an adapter's relative base model)
            # means what it means to the caller; imports do not depend on it (the child runs a script file)
        )
        if result.returncode != 0:
            lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit status {result.returncode}"
            raise HubFolderError(
                f"{folder} does not load with its own code where xlm_swcm_hf is not installed: "
                f"{last if len(last) <= 400 else last[:400] + ' ...'}"
            )
        return json.loads(answer_path.read_text(encoding="utf-8"))


def folder_problems(folder: str | os.PathLike) -> list[str]:
    """Static checks of a saved folder: auto_map and its code files (or, for an adapter, its config and base),
    weights, tokenizer files, card metadata."""
    folder = Path(folder)
    problems = []
    if (folder / ADAPTER_CONFIG).is_file():
        config = read_json_file(folder / ADAPTER_CONFIG, "the adapter's config")
        base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
        if not base:
            problems.append(f"{ADAPTER_CONFIG} names no base_model_name_or_path")
        elif looks_like_local_path(base):  # as for a full model's card: on the Hub a local path names nothing
            problems.append(
                f"{ADAPTER_CONFIG} names a local base model ({base}), which nobody can load from the Hub; push the "
                "base model first and set base_model_name_or_path to its Hub id"
            )
        if not (folder / "adapter_model.safetensors").exists():
            problems.append("no adapter weights (adapter_model.safetensors)")
    else:
        config = read_json_file(folder / "config.json", "config")
        auto_map = config.get("auto_map") or {}
        missing = [name for name in REQUIRED_AUTO_CLASSES if name not in auto_map]
        if missing:
            problems.append(f"config.json's auto_map lacks {', '.join(missing)}")
        for reference in auto_map.values():
            module = reference.split("--")[-1].split(".")[0] + ".py"
            if not (folder / module).exists():
                problems.append(f"auto_map refers to {module}, which is not in the folder")
        if not any((folder / name).exists() for name in WEIGHT_FILES):
            problems.append("no safetensors weights (model.safetensors)")
    if not any((folder / name).exists() for name in TOKENIZER_VOCABULARY_FILES):
        problems.append(f"no tokenizer files (none of {', '.join(TOKENIZER_VOCABULARY_FILES)})")
    if not (folder / "README.md").exists():
        problems.append("no README.md model card")
    else:
        try:
            metadata = card_metadata((folder / "README.md").read_text(encoding="utf-8"))
        except (ValueError, yaml.YAMLError) as error:
            problems.append(f"model card metadata invalid: {error}")
        else:
            problems += [f"model card metadata lacks '{key}'" for key in REQUIRED_CARD_METADATA if key not in metadata]
            base = metadata.get("base_model")
            if base is not None and (not isinstance(base, str) or looks_like_local_path(base)):
                problems.append(f"model card base_model {base!r} is a local path, not a Hub id")
            problems += hub_metadata_problems(metadata)
    problems += local_details_problems(folder)
    return list(dict.fromkeys(problems))  # one line per problem (two auto_map entries may name one missing file)


def validate_hub_folder(folder: str | os.PathLike, load_weights: bool = True) -> list[str]:
    """Check that a folder will work on the Hub. Returns the files to upload; raises HubFolderError listing problems.

    With `load_weights`, the folder is also loaded in a process where this package is not importable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubFolderError(f"{folder} is not a folder; pass a saved model folder.")
    if not (folder / "config.json").exists() and not (folder / ADAPTER_CONFIG).exists():
        raise HubFolderError(f"{folder} has no config.json (nor {ADAPTER_CONFIG}); is it a saved model folder?")
    problems = folder_problems(folder)
    if not problems and load_weights:
        try:
            load_in_clean_process(folder)
        except HubFolderError as error:
            problems.append(str(error))
    if problems:
        raise HubFolderError(f"{folder} is not ready for the Hub: " + "; ".join(problems))
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def push_folder_to_hub(
    folder: str | os.PathLike, repo_id: str, private: bool = False, dry_run: bool = False
) -> list[str]:
    """Validate, then upload the folder with `huggingface_hub`. With `dry_run`, only validate and list."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InputError(f"--repo-id {repo_id!r} must look like USER/NAME.")
    files = validate_hub_folder(folder)
    if dry_run:
        return files
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="model",
        commit_message="Upload XLM-SWCM model, tokenizer, remote code and model card",
    )
    return files


# --------------------------------------------------------------------------------------------------- Space app
# A Hugging Face Space that serves a pushed model: scripts/serve.py as app.py (it needs no xlm_swcm_hf), the
# distributions it imports, with this package's own version ranges (pyproject.toml, the `serve` extra for gradio),
# Debian's fonts for Tibetan, traditional Mongolian and Uyghur (packages.txt), and a few test examples.
PACKAGE_NAME = "xlm-swcm-hf"
SPACE_REQUIREMENTS = (
    "torch",
    "transformers",
    "tokenizers",
    "sentencepiece",
    "safetensors",
    "huggingface_hub",
    "pyyaml",
)
SPACE_APT_PACKAGES = ("fonts-noto-core",)
SPACE_EXAMPLES_PER_LANGUAGE = 3
SPACE_FILES = ("README.md", "app.py", "examples.jsonl", "packages.txt", "requirements.txt")


def is_space_app(folder: str | os.PathLike) -> bool:
    """A folder `write_space_app` wrote, exactly: its files and nothing else, a gradio card naming app.py. Only such a
    folder is replaced by `--space-app DIR --overwrite`."""
    folder = Path(folder)
    entries = list(folder.iterdir())
    if not all(entry.is_file() and entry.name in SPACE_FILES for entry in entries):
        return False
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        return False
    try:
        metadata = card_metadata((folder / "README.md").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return metadata.get("sdk") == "gradio" and metadata.get("app_file") == "app.py"


def space_app_output_options(model_folder=None, app_file=None) -> dict:
    """`replacement_refusal` options for a Space folder: replaced only when it is one, never the model or the app."""
    return {
        "what": "--space-app",
        "kind": "a Space app that push_to_hub.py wrote",
        "recognise": is_space_app,
        "inputs": {"--model": model_folder, "the app file": app_file},
    }


def _normalised(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def package_requirements(names, extra: str | None = None) -> dict[str, str]:
    """name -> requirement string, as this package's metadata states them (core, or those of one extra)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    wanted = {_normalised(name): name for name in names}
    found = {}
    for line in metadata.requires(PACKAGE_NAME) or []:
        requirement = Requirement(line)
        in_extra = requirement.marker is not None and "extra" in str(requirement.marker)
        if extra is None and in_extra:
            continue
        if extra is not None and not (in_extra and requirement.marker.evaluate({"extra": extra})):
            continue
        name = _normalised(requirement.name)
        if name in wanted and wanted[name] not in found:
            found[wanted[name]] = f"{requirement.name}{requirement.specifier}"
    missing = [name for name in names if name not in found]
    if missing:
        raise InputError(f"{PACKAGE_NAME}'s metadata names no requirement for {', '.join(missing)}; reinstall it.")
    return found


def space_examples(model_folder: str | os.PathLike | None) -> list[dict]:
    """A few `source`/`lang` rows per language from the folder's examples.jsonl or, for a run's final/, the run's
    test predictions (`../test/predictions.jsonl`); [] when there are none."""
    if model_folder is None:
        return []
    folder = Path(model_folder)
    for path in (folder / "examples.jsonl", folder.parent / "test" / "predictions.jsonl"):
        if path.is_file():
            break
    else:
        return []
    counts, rows = {}, []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else None
        if not isinstance(row, dict) or not isinstance(row.get("source"), str) or not row.get("lang"):
            continue
        if counts.get(row["lang"], 0) < SPACE_EXAMPLES_PER_LANGUAGE:
            counts[row["lang"]] = counts.get(row["lang"], 0) + 1
            rows.append({"source": row["source"], "lang": row["lang"]})
    return rows


def render_space_card(repo_id: str, gradio_version: str) -> str:
    metadata = {
        "title": f"XLM-SWCM: {repo_id.split('/')[-1]}",
        "sdk": "gradio",
        "sdk_version": gradio_version,
        "app_file": "app.py",
        "models": [repo_id],
        "pinned": False,
    }
    return (
        "---\n"
        + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
        + "---\n\n"
        + f"# Try {repo_id}\n\nA page that translates with [{repo_id}](https://huggingface.co/{repo_id}), an XLM-SWCM "
        "model, through its own code (`trust_remote_code=True`). `app.py` is `scripts/serve.py` of xlm-swcm-hf; it "
        "serves the model named under `models:` above. Fonts: Debian's fonts-noto-core (packages.txt).\n"
    )


def write_space_app(
    output_dir: str | os.PathLike,
    repo_id: str,
    app_file: str | os.PathLike,
    model_folder: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write a Space folder for the model `repo_id`: app.py, requirements.txt, packages.txt, README.md (the Space
    card naming the model) and examples.jsonl (when the model folder has test data). Returns the file names."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InputError(f"--repo-id {repo_id!r} must look like USER/NAME.")
    gradio = package_requirements(["gradio"], extra="serve")["gradio"]
    if not gradio.startswith("gradio=="):
        raise InputError(f"the serve extra pins {gradio}; a Space needs one exact gradio version (gradio==X).")
    requirements = [*package_requirements(SPACE_REQUIREMENTS).values(), gradio]
    examples = space_examples(model_folder)
    options = space_app_output_options(model_folder, app_file)
    with atomic_output_dir(output_dir, overwrite=overwrite, **options) as staging:
        shutil.copyfile(app_file, staging / "app.py")
        (staging / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        (staging / "packages.txt").write_text("\n".join(SPACE_APT_PACKAGES) + "\n", encoding="utf-8")
        (staging / "README.md").write_text(render_space_card(repo_id, gradio.split("==")[1]), encoding="utf-8")
        if examples:
            lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in examples)
            (staging / "examples.jsonl").write_text(lines, encoding="utf-8")
    return sorted(path.name for path in Path(output_dir).iterdir())
