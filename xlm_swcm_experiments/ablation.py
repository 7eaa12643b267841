"""Which decoder initialisation makes the shared weights pay off? Equal-budget comparison over seeds.

Every variant trains with the demo recipe (`configs/demo.yaml`: real e5-small encoder with a pruned vocabulary, real
en -> ug/kk/mn/zh pairs) for the same number of steps, then reports greedy chrF and ROUGE-L on the test split, the
teacher-forced test NLL and the step time. `transformers.EncoderDecoderModel` (post-LN decoder copied from the
encoder, cross-attention random, LM head tied to the embeddings) is the outside baseline.
"""

import copy
import dataclasses
import json
import statistics
import subprocess
import time
from pathlib import Path

from xlm_swcm_hf.recipe import Recipe
from xlm_swcm_hf.training import build, evaluate_model, markdown_table


# name -> (description, model section overrides). "encoder_decoder_model" is transformers' warm start.
VARIANTS = {
    "swcm_pre_random_head": (
        "SWCM as published: pre-LN, fresh LayerNorms, random LM head",
        {"init": "from_encoder", "lm_head_init": "random", "config": {"decoder_layer_norm_position": "pre"}},
    ),
    "swcm_pre_emb_head": (
        "SWCM pre-LN, LM head initialised from the word embeddings",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": {"decoder_layer_norm_position": "pre"}},
    ),
    "swcm_pre_scaled_emb_head": (
        "SWCM pre-LN, init_scheme='scaled' (cross-attention random, copied outputs scaled "
        "by 1/sqrt(2L), normal layers start as identity), embedding head",
        {
            "init": "from_encoder",
            "lm_head_init": "embeddings",
            "init_scheme": "scaled",
            "config": {"decoder_layer_norm_position": "pre"},
        },
    ),
    "swcm_post_emb_head": (
        "SWCM post-LN mirror of the encoder layers (LayerNorms copied), embedding head",
        {"init": "from_encoder", "lm_head_init": "embeddings", "config": {"decoder_layer_norm_position": "post"}},
    ),
    "random_random_head": (
        "random decoder (pre-LN), random LM head: the paper's 'without weight sharing'",
        {"init": "random_decoder", "lm_head_init": "random", "config": {"decoder_layer_norm_position": "pre"}},
    ),
    "random_emb_head": (
        "random decoder (pre-LN), LM head from the word embeddings",
        {"init": "random_decoder", "lm_head_init": "embeddings", "config": {"decoder_layer_norm_position": "pre"}},
    ),
    "encoder_decoder_model": (
        "transformers EncoderDecoderModel warm start (decoder = encoder copy + random cross-attention, tied head)",
        {"init": "encoder_decoder_model"},
    ),
}


# Every ablation table so far decodes greedily, without n-gram blocking: the recipe's beam settings are for the demo.
ABLATION_DECODING = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": None}


def build_encoder_decoder_baseline(encoder_dir: str):
    from transformers import AutoConfig, EncoderDecoderModel

    ids = AutoConfig.from_pretrained(encoder_dir)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(encoder_dir, encoder_dir)
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = ids.bos_token_id
        config.pad_token_id = ids.pad_token_id
        config.eos_token_id = ids.eos_token_id
    model.config.tie_word_embeddings = True
    model.tie_weights()
    return model


def variant_recipe(recipe: Recipe, variant: str, seed: int, output_dir: Path) -> Recipe:
    """The recipe with the variant's model section, the seed, its own output folder and greedy decoding."""
    recipe = recipe.copy()
    _, model_changes = VARIANTS[variant]
    if model_changes.get("init") != "encoder_decoder_model":
        recipe.model = dataclasses.replace(recipe.model, **copy.deepcopy(model_changes))
    recipe.generation = dataclasses.replace(recipe.generation, **ABLATION_DECODING)
    recipe.training.update(output_dir=str(output_dir), seed=seed)
    return recipe


def run_variant(recipe: Recipe, variant: str, seed: int, steps: int, output_dir: Path) -> dict:
    """Train one variant with the recipe's data and budget; greedy test metrics, test NLL, step time."""
    from transformers import set_seed

    recipe = variant_recipe(recipe, variant, seed, output_dir)
    description, model_changes = VARIANTS[variant]
    set_seed(seed)
    baseline = None
    if model_changes.get("init") == "encoder_decoder_model":
        baseline = build_encoder_decoder_baseline(recipe.model.encoder)
    parts = build(
        recipe,
        model=baseline,
        max_steps=steps,
        save_strategy="no",
        eval_strategy="no",
        predict_with_generate=False,
        report_to="none",
        disable_tqdm=True,
    )
    started = time.time()
    parts.trainer.train()
    step_seconds = (time.time() - started) / steps
    test_nll = parts.trainer.evaluate(parts.datasets["test"], metric_key_prefix="test")["test_loss"]
    metrics = evaluate_model(
        parts.trainer.model,
        parts.tokenizer,
        parts.formatted["test"],
        output_dir / "test",
        batch_size=32,
        max_source_length=recipe.data.max_source_length,
    )
    return {
        "variant": variant,
        "description": description,
        "seed": seed,
        "steps": steps,
        "chrf": metrics["all"]["chrf"],
        "rougeL": metrics["all"]["rougeL"],
        "test_nll": round(test_nll, 4),
        "step_seconds": round(step_seconds, 3),
        "per_language_chrf": {k: v["chrf"] for k, v in metrics.items() if k != "all"},
    }


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    for variant in dict.fromkeys(result["variant"] for result in results):
        runs = [r for r in results if r["variant"] == variant]
        row = {"variant": variant, "description": runs[0]["description"], "seeds": [r["seed"] for r in runs]}
        for key in ("chrf", "rougeL", "test_nll", "step_seconds"):
            values = [r[key] for r in runs]
            row[key] = statistics.mean(values)
            row[f"{key}_spread"] = max(values) - min(values)
            row[f"{key}_values"] = values
        rows.append(row)
    return rows


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def verdict(rows: list[dict]) -> str:
    """Plain words: does any SWCM variant beat the random decoder (and EncoderDecoderModel) beyond the seed spread?"""
    by_name = {row["variant"]: row for row in rows}
    randoms = [row for row in rows if row["variant"].startswith("random_")]
    swcms = [row for row in rows if row["variant"].startswith("swcm_")]
    if not randoms or not swcms:
        return "Not enough variants ran for a verdict."
    best_random = max(randoms, key=lambda row: row["chrf"])
    best_swcm = max(swcms, key=lambda row: row["chrf"])
    margin = best_swcm["chrf"] - best_random["chrf"]
    spread = max(best_swcm["chrf_spread"], best_random["chrf_spread"])
    if margin > spread:
        sentence = (
            f"{best_swcm['variant']} beats the best random decoder ({best_random['variant']}) by "
            f"{margin:.2f} chrF, more than the seed spread ({spread:.2f})."
        )
    else:
        sentence = (
            f"No SWCM variant beats the random decoder by more than the seed spread: the best, "
            f"{best_swcm['variant']}, is {margin:+.2f} chrF against {best_random['variant']} with a seed "
            f"spread of {spread:.2f}."
        )
    baseline = by_name.get("encoder_decoder_model")
    if baseline:
        relation = "matches or beats" if best_swcm["chrf"] >= baseline["chrf"] else "stays below"
        sentence += f" It {relation} EncoderDecoderModel ({baseline['chrf']:.2f} chrF)."
    return sentence


def ablation_markdown(rows: list[dict], steps: int, batch_size: int, commit: str) -> str:
    lines = [
        "# Decoder initialisation ablation",
        "",
        f"Commit `{commit}`; {steps} steps of batch {batch_size}, bf16 autocast, CPU; real multilingual-e5-small "
        "encoder (vocabulary pruned to the corpus), real en -> ug/kk/mn/zh pairs; greedy decoding on the test split.",
        "Means over seeds, with the spread (max - min) in brackets.",
        "",
    ]
    table = [
        [
            row["variant"],
            f"{row['chrf']:.2f} ({row['chrf_spread']:.2f})",
            f"{row['rougeL']:.2f} ({row['rougeL_spread']:.2f})",
            f"{row['test_nll']:.3f} ({row['test_nll_spread']:.3f})",
            row["step_seconds"],
            ",".join(map(str, row["seeds"])),
            row["description"],
        ]
        for row in sorted(rows, key=lambda r: -r["chrf"])
    ]
    lines.append(
        markdown_table(
            ["variant", "chrF", "ROUGE-L F", "test NLL", "s/step", "seeds", "what"],
            table,
            numeric=[False, True, True, True, True, False, False],
        ).rstrip("\n")
    )
    lines += ["", f"**Verdict (chrF):** {verdict(rows)}"]
    return "\n".join(lines) + "\n"


def run_ablation(
    recipe: Recipe, variants: list[str], seeds: list[int], steps: int, output_dir: Path, docs_dir: Path
) -> list[dict]:
    output_dir.mkdir(parents=True, exist_ok=True)
    results_file = output_dir / "ablation_runs.jsonl"
    done = {}
    if results_file.exists():  # resume: keep finished runs
        for line in results_file.read_text().splitlines():
            result = json.loads(line)
            done[(result["variant"], result["seed"], result["steps"])] = result
    results = []
    for variant in variants:
        for seed in seeds:
            key = (variant, seed, steps)
            if key not in done:
                print(f"--- {variant} seed {seed} ({steps} steps)", flush=True)
                done[key] = run_variant(recipe, variant, seed, steps, output_dir / f"{variant}-seed{seed}")
                with results_file.open("a") as handle:
                    handle.write(json.dumps(done[key]) + "\n")
                print(json.dumps(done[key]), flush=True)
            results.append(done[key])
            write_ablation_docs(results, steps, recipe, docs_dir)  # after every run: partial results survive
    return summarize(results)


def write_ablation_docs(results: list[dict], steps: int, recipe: Recipe, docs_dir: Path) -> None:
    rows = summarize(results)
    commit = git_commit()
    markdown = ablation_markdown(rows, steps, recipe.training["per_device_train_batch_size"], commit)
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "ablation.md").write_text(markdown)
    (docs_dir / "ablation.json").write_text(
        json.dumps({"commit": commit, "steps": steps, "rows": rows, "runs": results}, indent=2)
    )
