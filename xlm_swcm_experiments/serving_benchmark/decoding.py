"""Compiled static-cache decoding next to eager, no-cache and BART; translate.py's throughput against a plain loop."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from ..benchmark import (
    DECODE_CONFIGS,
    build_bart,
    build_swcm,
    make_source,
    read_parallel_jsonl,
    summary,
)
from .settings import DTYPES, compile_forward, forget_compiled


# ----------------------------------------------------------------------------------------------------- compiled


def decode_models(size: str, device: str, dtype: torch.dtype) -> dict:
    """The implementations of the compiled part: name -> (model, generate arguments)."""
    swcm, bart = build_swcm(size).to(device, dtype), build_bart(size).to(device, dtype)
    compiled_swcm, compiled_bart = copy.deepcopy(swcm), copy.deepcopy(bart)
    compile_forward(compiled_swcm)
    compile_forward(compiled_bart)
    static = {"cache_implementation": "static"}
    return {
        "eager": (swcm, {}),
        "no_cache": (swcm, {"use_cache": False}),
        "compiled": (compiled_swcm, static),
        "bart": (bart, {}),
        "bart_compiled": (compiled_bart, static),
    }


def run_compiled(args, log) -> list[dict]:
    """Each configuration at `args.length` new tokens, implementations interleaved; the first (warm-up) call of each
    at the timed shape is kept apart: for the compiled ones it includes compiling."""
    forget_compiled()
    models = decode_models(args.size, args.device, DTYPES[args.dtype])
    rows = []
    for config in args.configs:
        spec = DECODE_CONFIGS[config]
        source = {key: value.to(args.device) for key, value in make_source(args.size, spec["batch"]).items()}
        times, first, outputs = {}, {}, {}
        for repeat in range(args.repeats + 1):
            for impl in args.impls:
                model, extra = models[impl]
                with torch.inference_mode():
                    start = time.perf_counter()
                    out = model.generate(
                        **source, max_new_tokens=args.length, min_new_tokens=args.length, num_beams=spec["beams"],
                        do_sample=False, early_stopping=False, length_penalty=1.0, **extra,
                    )  # fmt: skip
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    elapsed = time.perf_counter() - start
                if repeat == 0:
                    first[impl] = elapsed
                    continue
                outputs[impl] = out
                times.setdefault(impl, []).append(elapsed / args.length)
                log(f"  {config:10s} {impl:14s}: {elapsed / args.length * 1e3:8.1f} ms/token")
        for impl in args.impls:
            steady = summary(times[impl])
            reference = outputs["bart" if impl.startswith("bart") else "eager"]
            rows.append(
                {
                    "config": config,
                    **spec,
                    "impl": impl,
                    "new_tokens": args.length,
                    "ms_per_token": steady,
                    "first_call_s": first[impl],
                    "compile_s_estimate": first[impl] - steady["median_ms"] * args.length / 1e3,
                    "tokens_identical_to_eager": bool(torch.equal(outputs[impl], reference)),
                }
            )
    return rows


# --------------------------------------------------------------------------------------------------- throughput


def plain_loop(model, tokenizer, sources, batch_size: int) -> list[str]:
    """What a user writes without translate.py: batches in the input's order, padded to the longest."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(sources), batch_size):
            batch = tokenizer(sources[start : start + batch_size], return_tensors="pt", padding=True, truncation=True)
            ids = model.generate(**batch)
            outputs += [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return outputs


def run_throughput(args, log) -> dict:
    """translate_texts against the plain loop on the trained model's test sources, same batch size, interleaved."""
    model_dir, data = Path(args.quality_model), Path(args.quality_data)
    if not (model_dir / "config.json").exists() or not data.exists():
        return {"skipped": f"skipped: {model_dir} or {data} not found (`make demo` builds them)"}
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    sources, _ = read_parallel_jsonl(data)
    if args.quality_limit:
        sources = sources[: args.quality_limit]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=True).eval()
    return time_against_plain_loop(model, tokenizer, sources, args.batch_size, args.repeats, log)


def time_against_plain_loop(model, tokenizer, sources: list[str], batch_size: int, repeats: int, log) -> dict:
    """translate_texts (length-sorted batches, translate.py's engine) against `plain_loop` at the same batch size,
    interleaved in every repeat; sentences/s from the best repeat of each, and the share of identical outputs."""
    from xlm_swcm_hf.translation import translate_texts

    runs = {"translate_texts": [], "plain_loop": []}
    for repeat in range(repeats):
        start = time.perf_counter()
        sorted_outputs, _ = translate_texts(model, tokenizer, sources, batch_size=batch_size, progress=False)
        runs["translate_texts"].append(time.perf_counter() - start)
        start = time.perf_counter()
        loop_outputs = plain_loop(model, tokenizer, sources, batch_size)
        runs["plain_loop"].append(time.perf_counter() - start)
        log(f"  throughput repeat {repeat}: translate_texts {runs['translate_texts'][-1]:.1f} s, plain loop "
            f"{runs['plain_loop'][-1]:.1f} s")  # fmt: skip
    same = sum(a == b for a, b in zip(sorted_outputs, loop_outputs)) / len(sources)
    result = {"sentences": len(sources), "batch_size": batch_size, "identical_outputs": same}
    for name, seconds in runs.items():
        result[name] = {"seconds": seconds, "sentences_per_s": len(sources) / min(seconds)}
    return result
