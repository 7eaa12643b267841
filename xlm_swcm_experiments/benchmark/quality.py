"""Quality kept by the quantized candidates: the demo's trained model on its test split, fp32 against each method
(greedy, chrF, share of identical outputs). Skipped, with the reason recorded, where the model is not built."""

import json
import time
from pathlib import Path

import torch

from xlm_swcm_hf.checks import InputError

from .quantization import make_candidate


def read_parallel_jsonl(path: Path) -> tuple[list[str], list[str]]:
    sources, targets = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if not isinstance(row.get("source"), str) or not isinstance(row.get("target"), str):
            raise InputError(f"{path}:{number}: every line needs string 'source' and 'target' fields.")
        sources.append(row["source"])
        targets.append(row["target"])
    if not sources:
        raise InputError(f"{path} has no sentence pairs.")
    return sources, targets


def run_quality(args, log) -> dict:
    """The demo's trained model on its test split: fp32 vs each method, greedy, chrF and identical outputs."""
    model_dir, data = Path(args.quality_model), Path(args.quality_data)
    missing = [str(p) for p in (model_dir / "config.json", data) if not p.exists()]
    if missing:
        message = (
            f"skipped: {' and '.join(missing)} not found; the real-model quality check needs the demo's model and "
            "test split (`make demo`, ~15 min, builds both)"
        )
        log(f"  quality: {message}")
        return {"skipped": message, "model": str(model_dir), "data": str(data)}
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from xlm_swcm_hf.metrics import compute_generation_metrics
    from xlm_swcm_hf.training.evaluation import generate_predictions

    sources, targets = read_parallel_jsonl(data)
    if args.quality_limit:
        sources, targets = sources[: args.quality_limit], targets[: args.quality_limit]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    generation = {"num_beams": 1, "do_sample": False}

    def predict(model):
        start = time.perf_counter()
        with torch.inference_mode():
            predictions = generate_predictions(model, tokenizer, sources, **generation)  # recipe's generation batch
        return predictions, time.perf_counter() - start

    reference, seconds = predict(base)
    fp32_chrf = compute_generation_metrics(reference, targets)["chrf"]
    result = {"model": str(model_dir), "data": str(data), "sentences": len(sources), "generation": generation}
    result["fp32"] = {"chrf": fp32_chrf, "seconds": seconds}
    log(f"  quality fp32: chrF {fp32_chrf:.2f} ({len(sources)} sentences, {seconds:.0f} s)")
    for name in args.quality_methods:
        predictions, seconds = predict(make_candidate(base, name))
        chrf = compute_generation_metrics(predictions, targets)["chrf"]
        identical = sum(a == b for a, b in zip(reference, predictions)) / len(reference)
        result[name] = {
            "chrf": chrf,
            "chrf_delta": chrf - fp32_chrf,
            "identical_outputs": identical,
            "seconds": seconds,
        }
        log(f"  quality {name}: chrF {chrf:.2f} (fp32 {fp32_chrf:.2f}), identical outputs {identical:.1%}")
    return result
