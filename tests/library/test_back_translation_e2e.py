"""Back-translation end to end through the real entry points, on tiny models and a few dozen rows:
train.py (kk -> en, the reverse direction) -> back_translate.py (monolingual kk -> synthetic pairs) -> train.py
(en -> kk on the real pairs plus the synthetic ones at data.synthetic_weight) -> translate.py with the result."""

import json
import logging
import re

from conftest import ROOT, run_script, tiny_xlmr, write_jsonl

from xlm_swcm_hf.back_translation import ORIGIN, PAIR_FIELDS
from xlm_swcm_hf.data import load_task_dataset
from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS, build_tiny_xlmr_tokenizer
from xlm_swcm_hf.translation import model_identity


ENGLISH, KAZAKH = TINY_MULTILINGUAL_TEXTS[5].split(), TINY_MULTILINGUAL_TEXTS[3].split()
MIX_LOG = re.compile(r"train: (\d+) real \+ (\d+) synthetic pairs, synthetic_weight 0\.5 -> (\d+) rows, (\d+) of them")


def sentences(words: list[str], count: int, offset: int) -> list[str]:
    """`count` different word runs of `words` (spelled by the tiny tokenizer: no <unk> for train.py to refuse)."""
    runs = [" ".join(words[start:end]) for start in range(len(words)) for end in range(start + 1, len(words) + 1)]
    return [runs[(offset + k) % len(runs)] for k in range(count)]


def train(tmp_path, name, encoder, train_file, validation_file, *overrides):
    output = tmp_path / name
    argv = [
        "--config",
        ROOT / "configs" / "tiny.yaml",
        f"model.encoder={encoder}",
        f"data.train_file={train_file}",
        f"data.validation_file={validation_file}",
        f"data.test_file={validation_file}",
        f"training.output_dir={output}",
        "training.max_steps=12",
        "training.save_steps=12",
        "training.eval_steps=12",
        "generation.num_beams=1",
        "generation.max_new_tokens=8",
        *overrides,
    ]
    assert run_script("train", argv) == 0
    return output / "final"


def test_reverse_model_back_translation_and_mixed_training(tmp_path, caplog, capsys):
    encoder = tmp_path / "encoder"
    tiny_xlmr(seed=0).save_pretrained(encoder)
    build_tiny_xlmr_tokenizer().save_pretrained(encoder)
    english, kazakh = sentences(ENGLISH, 24, 0), sentences(KAZAKH, 24, 3)
    reverse = [{"source": f"en: {kk}", "target": en, "lang": "en"} for en, kk in zip(english, kazakh)]
    forward = [{"source": f"kk: {en}", "target": kk, "lang": "kk"} for en, kk in zip(english, kazakh)]
    write_jsonl(tmp_path / "reverse.jsonl", reverse)
    write_jsonl(tmp_path / "forward.jsonl", forward)
    monolingual = sentences(KAZAKH, 30, 11)
    write_jsonl(tmp_path / "mono.jsonl", [{"text": text, "lang": "kk", "license": "CC0"} for text in monolingual])

    reverse_model = train(tmp_path, "kk-en", encoder, tmp_path / "reverse.jsonl", tmp_path / "reverse.jsonl")
    pairs = tmp_path / "bt.kk.jsonl"
    argv = ["--model", reverse_model, "--input", tmp_path / "mono.jsonl", "--output", pairs, "--language", "kk"]
    argv += ["--source-language", "en", "--max-new-tokens", "8", "--block-size", "8", "--no-progress"]
    assert run_script("back_translate", argv) == 0
    written = int(re.search(r"wrote (\d+) pairs", capsys.readouterr().out).group(1))

    # The synthetic file: the training format, every pair marked with its origin and the model that made it.
    rows = [json.loads(line) for line in pairs.read_text(encoding="utf-8").splitlines()]
    assert 0 < len(rows) == written <= len(monolingual)
    identity = model_identity(reverse_model)
    for row in rows:
        assert set(PAIR_FIELDS) <= set(row) and row["license"] == "CC0" and "text" not in row
        assert (row["origin"], row["origin_model"], row["lang"], row["src_lang"]) == (ORIGIN, identity, "kk", "en")
        assert row["source"].startswith("kk: ") and row["source"] != "kk: " and row["target"] in monolingual
    formatted = load_task_dataset(pairs, task="translation", split="train")
    assert formatted["target_text"] == [row["target"] for row in rows]

    # The second training read the synthetic pairs and mixed them in: its log says how many rows of each it used.
    synthetic = [f"data.synthetic_train_file={pairs}", "data.synthetic_weight=0.5"]
    with caplog.at_level(logging.INFO, logger="xlm_swcm_hf.training.build"):
        forward_model = train(
            tmp_path, "en-kk", encoder, tmp_path / "forward.jsonl", tmp_path / "forward.jsonl", *synthetic
        )
    mixes = [MIX_LOG.search(record.getMessage()) for record in caplog.records]
    real, offered, mixed, used = (int(group) for group in next(match for match in mixes if match).groups())
    assert (real, offered) == (len(forward), len(rows))
    assert mixed >= real + used and used >= len(rows)  # all_exhausted: every synthetic pair is in the mix
    config = json.loads((tmp_path / "en-kk" / "final" / "config.json").read_text())
    assert config["model_type"] == "xlm-swcm"

    # The final folder loads and translates, through translate.py.
    (tmp_path / "english.txt").write_text("\n".join(english[:5]) + "\n", encoding="utf-8")
    argv = ["--model", forward_model, "--input", tmp_path / "english.txt", "--output", tmp_path / "kazakh.txt"]
    assert run_script("translate", [*argv, "--target-language", "kk", "--max-new-tokens", "8", "--no-progress"]) == 0
    assert len((tmp_path / "kazakh.txt").read_text(encoding="utf-8").splitlines()) == 5
