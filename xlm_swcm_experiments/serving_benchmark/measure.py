"""The CPU paths: built from one fp32 model, timed interleaved, their memory each in a fresh process, their quality
on a trained model."""

from __future__ import annotations

import copy
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..benchmark import (
    DECODE_CONFIGS,
    SIZES,
    _rss_bytes,
    build_swcm,
    make_source,
    read_parallel_jsonl,
    summary,
    token_agreement,
)
from .settings import REFERENCE, compile_forward, forget_compiled, short_error


# --------------------------------------------------------------------------------------------------- candidates


def prepare_candidate(name: str, base, work: Path) -> dict:
    """Candidate `name` from the fp32 model `base` (not changed): the model to call `generate` on, the extra
    `generate` arguments, the conversion seconds. A candidate that fails to build is returned with its error."""
    from xlm_swcm_hf.onnx_runtime import OnnxRuntimeXLMSWCM, export_onnx
    from xlm_swcm_hf.quantization import quantize_for_cpu

    start = time.perf_counter()
    try:
        generate_kwargs = {}
        if name == REFERENCE:
            model = base
        elif name in ("torch-int8", "compiled-int8"):
            model = quantize_for_cpu(copy.deepcopy(base), "int8")
        elif name == "compiled":
            model = copy.deepcopy(base)
        else:
            directory = work / name
            export_onnx(base, directory, quantize="int8" if name.endswith("int8") else None)
            model = OnnxRuntimeXLMSWCM.from_exported(directory)
        if name.startswith("compiled"):
            compile_forward(model)
            generate_kwargs = {"cache_implementation": "static"}
    except Exception as error:  # a candidate that cannot be built is a result too
        return {"candidate": name, "error": short_error(error)}
    return {"candidate": name, "model": model, "generate": generate_kwargs, "convert_s": time.perf_counter() - start}


def greedy(model, source, new_tokens: int, **generate_kwargs):
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(
            **source, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1,
            **generate_kwargs,
        )  # fmt: skip
        return time.perf_counter() - start, out


def time_candidates(rows: list[dict], size: str, length: int, repeats: int, log) -> None:
    """Greedy batch 1 and 8, `length` new tokens, candidates interleaved; the first round (at the full length, so
    compiled candidates compile for the shapes they are timed at) is a warm-up whose time is kept as `first_call`."""
    live = [row for row in rows if "model" in row]
    for config in ("greedy_b1", "greedy_b8"):
        source = make_source(size, DECODE_CONFIGS[config]["batch"])
        outputs = {}
        for repeat in range(repeats + 1):
            for row in live:
                try:
                    elapsed, out = greedy(row["model"], source, length, **row["generate"])
                except Exception as error:  # e.g. a compiled int8 graph torch cannot build
                    row["error"] = short_error(error)
                    log(f"  {config} {row['candidate']}: FAILED {row['error']}")
                    continue
                if repeat == 0:
                    row[f"{config}_first_call_s"] = elapsed
                    continue
                outputs[row["candidate"]] = out
                row.setdefault(f"{config}_runs", []).append(elapsed / length)
                log(f"  {config} {row['candidate']:18s}: {elapsed / length * 1e3:8.1f} ms/token")
            live = [row for row in live if "error" not in row]
        for row in live:
            row[config] = summary(row.pop(f"{config}_runs"))
            row[f"{config}_agreement"] = token_agreement(outputs[REFERENCE], outputs[row["candidate"]])


def memory_child(name: str, size: str, work: str) -> dict:
    """Resident memory of one candidate in this (fresh) process after building it and one short generate."""
    base = build_swcm(size)
    if name.startswith("onnxruntime"):
        from xlm_swcm_hf.onnx_runtime import OnnxRuntimeXLMSWCM

        del base
        gc.collect()
        row = {"model": OnnxRuntimeXLMSWCM.from_exported(Path(work) / name), "generate": {}}
    else:
        row = prepare_candidate(name, base, Path(work))
        if row["model"] is not base:
            del base
    gc.collect()
    greedy(row["model"], make_source(size, 1), 4, **row["generate"])
    gc.collect()
    return {"rss_bytes": _rss_bytes("VmRSS"), "peak_rss_bytes": _rss_bytes("VmHWM")}


def measure_memory(rows: list[dict], args, log) -> None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    root = Path(__file__).resolve().parents[2]
    for row in rows:
        if "error" in row:
            continue
        command = [sys.executable, "-m", "xlm_swcm_experiments.serving_benchmark", "--memory-child", row["candidate"]]
        command += ["--size", args.size, "--work", str(args.work), "--threads", str(torch.get_num_threads())]
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=str(root))
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
        if done.returncode or not lines:
            row["memory_error"] = done.stderr[-500:]
            log(f"  memory {row['candidate']}: FAILED {done.stderr[-500:]}")
            continue
        row.update(json.loads(lines[-1][len("RESULT") :]))
        log(f"  memory {row['candidate']:18s}: {row['rss_bytes'] / 2**20:8.0f} MiB resident")


def run_candidates(args, log) -> dict:
    forget_compiled()
    base = build_swcm(args.size)
    rows = []
    for name in args.candidates:
        log(f"  preparing {name} ...")
        rows.append(prepare_candidate(name, base, args.work))
        if "error" in rows[-1]:
            log(f"  {name}: FAILED {rows[-1]['error']}")
    time_candidates(rows, args.size, args.length, args.repeats, log)
    for row in rows:
        row.pop("model", None)
        row.pop("generate", None)
    del base
    gc.collect()
    if args.memory:
        measure_memory(rows, args, log)
    return {"new_tokens": args.length, "source_length": SIZES[args.size]["source_length"], "rows": rows}


# ------------------------------------------------------------------------------------------------------ quality


def nll_per_token(model, tokenizer, sources, targets, batch_size: int) -> float:
    """Teacher-forced negative log-likelihood of the references, nats per target token (padding excluded)."""
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            batch = tokenizer(
                sources[start : start + batch_size],
                text_target=targets[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=model.config.max_position_embeddings - model.config.pad_token_id - 1,
            )
            labels = batch.pop("labels")
            labels[labels == tokenizer.pad_token_id] = -100
            logits = model(**batch, labels=labels).logits
            total += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), reduction="sum"
            ).item()
            tokens += int((labels != -100).sum())
    return total / tokens


def run_quality(args, log) -> dict:
    """Every candidate on the trained model's test split: NLL, greedy chrF, outputs identical to fp32's."""
    model_dir, data = Path(args.quality_model), Path(args.quality_data)
    missing = [str(p) for p in (model_dir / "config.json", data) if not p.exists()]
    if missing:
        message = f"skipped: {' and '.join(missing)} not found (`make demo` builds the demo's model and test split)"
        log(f"  quality: {message}")
        return {"skipped": message}
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from xlm_swcm_hf.metrics import compute_generation_metrics
    from xlm_swcm_hf.training.evaluation import generate_predictions

    sources, targets = read_parallel_jsonl(data)
    if args.quality_limit:
        sources, targets = sources[: args.quality_limit], targets[: args.quality_limit]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    result = {"model": str(model_dir), "data": str(data), "sentences": len(sources), "rows": []}
    reference = None
    for name in args.candidates:
        if name.startswith("compiled"):  # every new batch shape recompiles; the function is the eager one's
            result["rows"].append({"candidate": name, "skipped": "not measured: computes the eager model's function"})
            continue
        row = prepare_candidate(name, base, args.work / "quality")
        if "error" in row:
            log(f"  quality {name}: FAILED {row['error']}")
            result["rows"].append(row)
            continue
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                predictions = generate_predictions(
                    row["model"], tokenizer, sources, batch_size=args.batch_size, num_beams=1, do_sample=False,
                    **row["generate"],
                )  # fmt: skip
            nll = nll_per_token(row["model"], tokenizer, sources, targets, args.batch_size)
        except Exception as error:
            result["rows"].append({"candidate": name, "error": short_error(error)})
            log(f"  quality {name}: FAILED {result['rows'][-1]['error']}")
            continue
        reference = reference if reference is not None else predictions
        result["rows"].append(
            {
                "candidate": name,
                "nll": nll,
                "chrf": compute_generation_metrics(predictions, targets)["chrf"],
                "identical_outputs": sum(a == b for a, b in zip(reference, predictions)) / len(predictions),
                "seconds": time.perf_counter() - start,
            }
        )
        log(f"  quality {name:18s}: {json.dumps({k: v for k, v in result['rows'][-1].items() if k != 'candidate'})}")
    return result
