import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch


# Everything runs offline on material the project builds.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))

TINY_ENCODER = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=6,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)


ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def run_script(name, argv):
    """Run `scripts/<name>.py`'s main() in-process with string arguments; returns its exit code."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(argument) for argument in argv])


def tiny_config(**overrides):
    from xlm_swcm_hf import XLMSWCMConfig

    return XLMSWCMConfig(**{**TINY_ENCODER, **overrides})


def tiny_model(seed=0, **overrides):
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    torch.manual_seed(seed)
    model = XLMSWCMForConditionalGeneration(tiny_config(**overrides)).eval()
    # Non-trivial LayerNorms and biases, so a wrong residual or norm placement cannot hide behind ones/zeros.
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    return model


def tiny_xlmr(seed=0, **overrides):
    """A random XLM-R encoder of `TINY_ENCODER`'s shape (no pooling layer), seeded."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(seed)
    return XLMRobertaModel(XLMRobertaConfig(**{**TINY_ENCODER, **overrides}), add_pooling_layer=False)


def save_tiny_folder(path, model=None, tokenizer=None):
    """A model folder: `model` (`tiny_model()` when None) with `tokenizer` (the library's tiny tokenizer when None)."""
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    (tiny_model() if model is None else model).save_pretrained(path)
    (build_tiny_xlmr_tokenizer() if tokenizer is None else tokenizer).save_pretrained(path)
    return path


def translating_model_folder(path):
    """A tiny model folder whose weights are large enough (and without dropout) that different sources give
    different outputs, with the tiny tokenizer: what translation tests compare sentence by sentence."""
    model = tiny_model(initializer_range=0.3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return save_tiny_folder(path, model)


def load_folder(path):
    """(model in eval mode, tokenizer) of a saved folder, through this package."""
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    return XLMSWCMForConditionalGeneration.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def pairs_model_folder(path, rows, max_new_tokens=None):
    """A tiny XLM-SWCM folder whose tokenizer (at most 60 pieces) is trained on the rows' sources and targets;
    `max_new_tokens`, when given, saved as its generation default."""
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    tokenizer = build_tiny_xlmr_tokenizer([r["source"] for r in rows] + [r["target"] for r in rows], vocab_size=60)
    model = tiny_model(vocab_size=len(tokenizer))
    if max_new_tokens is not None:
        model.generation_config.max_new_tokens = max_new_tokens
    return save_tiny_folder(path, model, tokenizer)


def write_jsonl(path, rows):
    """`rows` as JSON lines (UTF-8, characters as they are); returns `path`."""
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def tagged_pairs():
    """en -> xx pairs over the library's tiny multilingual texts, the source tagged 'en: ' as the recipes expect."""
    from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS

    return [{"source": f"en: {text}", "target": text, "lang": "xx"} for text in TINY_MULTILINGUAL_TEXTS]


def padded_batch():
    """Two sources of different lengths, right-padded with pad_token_id=1."""
    input_ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 10, 11, 2, 1, 1, 1]])
    return {"input_ids": input_ids, "attention_mask": (input_ids != 1).long()}


@pytest.fixture
def tiny_encoder_dir(tmp_path):
    """A random XLM-R encoder folder in the standard layout (config + safetensors)."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    torch.manual_seed(1)
    encoder = XLMRobertaModel(XLMRobertaConfig(**TINY_ENCODER), add_pooling_layer=True)
    with torch.no_grad():  # pretrained-looking: no all-zero biases or all-one LayerNorms to confuse copy checks
        for param in encoder.parameters():
            if param.dim() == 1:
                param.add_(0.1 * torch.randn_like(param))
    path = tmp_path / "tiny-xlmr"
    encoder.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def real_pairs(tmp_path_factory):
    """A few hundred real en->X pairs (ug, kk, mn, zh) in train/validation/test JSONL files."""
    pytest.importorskip("babel")
    pytest.importorskip("django")
    pytest.importorskip("pycountry")
    pytest.importorskip("maqal")
    from xlm_swcm_experiments.demo.data import build_demo_dataset

    folder = tmp_path_factory.mktemp("data")
    build_demo_dataset(folder / "full", languages=("ug", "kk", "mn", "zh"))
    sizes = {"train": 320, "validation": 32, "test": 24}
    for split, size in sizes.items():
        rows = [json.loads(line) for line in (folder / "full" / f"{split}.jsonl").read_text().splitlines()]
        rows = sorted(rows, key=lambda row: (len(row["source"]) + len(row["target"]), row["source"]))
        by_language = {}
        for row in rows:
            by_language.setdefault(row["lang"], []).append(row)
        chosen = [row for language in sorted(by_language) for row in by_language[language][: size // 4]]
        write_jsonl(folder / f"{split}.jsonl", chosen)
    return folder


@pytest.fixture(scope="module")
def tiny_encoder(real_pairs, tmp_path_factory):
    """A random tiny XLM-R encoder with a tokenizer trained on the pairs' text."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    texts = []
    for split in ("train", "validation", "test"):
        for line in (real_pairs / f"{split}.jsonl").read_text().splitlines():
            row = json.loads(line)
            texts += [row["source"], row["target"]]
    tokenizer = build_tiny_xlmr_tokenizer(texts, vocab_size=600)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=130,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder")
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_recipe(real_pairs, tiny_encoder, output_dir, *overrides):
    """configs/tiny.yaml on the real pairs and the tiny encoder, writing to `output_dir`."""
    from xlm_swcm_hf.recipe import Recipe

    return Recipe.from_yaml(
        ROOT / "configs" / "tiny.yaml",
        [
            f"model.encoder={tiny_encoder}",
            f"data.train_file={real_pairs / 'train.jsonl'}",
            f"data.validation_file={real_pairs / 'validation.jsonl'}",
            f"data.test_file={real_pairs / 'test.jsonl'}",
            f"training.output_dir={output_dir}",
            *overrides,
        ],
    )
