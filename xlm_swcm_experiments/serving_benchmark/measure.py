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
from .peers import prepare_peer
from .settings import (
    PEERS,
    REFERENCE,
    RESTRICTED_LANGUAGE,
    RESTRICTED_ROWS,
    RESTRICTED_SEED,
    agreement_reference,
    compile_forward,
    forget_compiled,
    is_restricted,
    restricted_base,
    short_error,
)


# --------------------------------------------------------------------------------------------------- candidates


def restricted_rows(vocab_size: int) -> int:
    """The restricted head's size: RESTRICTED_ROWS, or a fifth of a smaller vocabulary (the tiny size's)."""
    return min(RESTRICTED_ROWS, vocab_size // 5)


def benchmark_vocabularies(config) -> dict[str, list[int]]:
    """{RESTRICTED_LANGUAGE: ids}: `restricted_rows` ids, the special tokens generation may emit or starts from
    (XLM-R's <s>, <pad>, </s>, <unk> at 0-3 and the config's) plus a random choice (seed RESTRICTED_SEED) of the
    rest. Random weights have no language, so any choice of that size costs the head the same."""
    special = {0, 1, 2, 3}
    special |= {getattr(config, key, None) for key in ("pad_token_id", "bos_token_id", "eos_token_id")}
    special |= {getattr(config, "decoder_start_token_id", None)}
    special = sorted(i for i in special if isinstance(i, int))
    others = [i for i in range(config.vocab_size) if i not in special]
    generator = torch.Generator().manual_seed(RESTRICTED_SEED)
    chosen = torch.randperm(len(others), generator=generator)[: restricted_rows(config.vocab_size) - len(special)]
    return {RESTRICTED_LANGUAGE: sorted(special + [others[i] for i in chosen.tolist()])}


def build_base(size: str):
    """The fp32 model every candidate comes from, with the benchmark's output vocabulary (which changes nothing for
    a generate call that does not name a language; the ONNX exports then hold its `head.<lang>.onnx`)."""
    base = build_swcm(size)
    base.set_output_vocabularies(benchmark_vocabularies(base.config))
    return base


def weights_read(model, head_rows: int, bandwidth_GBps: float) -> dict:
    """What one cached decode step reads (`benchmark.weights_read_per_token`'s parameters: the decoder layers
    without the cross-attention k/v, the LM head) with a head of `head_rows` rows, in bytes for each weight format
    (fp32; bf16; int8: matrices at one byte plus a float32 scale per output channel, vectors at float32) and as
    the ms per token reading them at `bandwidth_GBps` takes: the bound a batch-1 step cannot beat."""
    matrices = vectors = channels = 0
    named = [(name, p) for layer in model.model.decoder.layers for name, p in layer.named_parameters()]
    for name, param in named:
        if "encoder_attn.k_proj" in name or "encoder_attn.v_proj" in name:
            continue
        if param.dim() >= 2:
            matrices, channels = matrices + param.numel(), channels + param.shape[0]
        else:
            vectors += param.numel()
    head = model.lm_head
    matrices, channels = matrices + head_rows * head.in_features, channels + head_rows
    vectors += head_rows if head.bias is not None else 0
    parameters = matrices + vectors
    bytes_ = {"fp32": 4 * parameters, "bf16": 2 * parameters, "int8": matrices + 4 * (channels + vectors)}
    ms = {name: value / (bandwidth_GBps * 1e9) * 1e3 for name, value in bytes_.items()}
    return {"head_rows": head_rows, "parameters": parameters, "bytes": bytes_, "ms_per_token": ms}


def prepare_candidate(name: str, base, work: Path, built: dict | None = None, size: str | None = None) -> dict:
    """Candidate `name` from the fp32 model `base` (not changed): the model to call `generate` on, the extra
    `generate` arguments, the conversion seconds. A candidate that fails to build is returned with its error.
    A restricted candidate takes its base candidate's build from `built` ({name: row}, this run's) when it is
    there, and adds `output_languages`; the peers are built from `size` (BART of base's shape)."""
    from xlm_swcm_hf.onnx_runtime import EXPORT_RECORD, OnnxRuntimeXLMSWCM, export_onnx
    from xlm_swcm_hf.quantization import quantize_for_cpu

    built = {} if built is None else built
    rows = {"head_rows": base.config.vocab_size}
    if is_restricted(name):
        rows = {"head_rows": len(base.output_vocabularies[RESTRICTED_LANGUAGE])}
        plain = restricted_base(name)
        shared = built.get(plain)
        row = shared if shared and "model" in shared else prepare_candidate(plain, base, work)
        if "error" in row:
            return {"candidate": name, "error": row["error"], **rows}
        generate = {**row["generate"], "output_languages": RESTRICTED_LANGUAGE}
        convert_s = 0.0 if row is shared else row["convert_s"]
        extra = {"shares_build_of": plain} if row is shared else {}
        return {"candidate": name, "model": row["model"], "generate": generate, "convert_s": convert_s, **rows, **extra}
    if name in PEERS:
        try:
            row = prepare_peer(name, size, work, built)
        except Exception as error:
            row = {"error": short_error(error)}
        return {"candidate": name, **rows, **row}
    start = time.perf_counter()
    try:
        generate_kwargs = {}
        if name == REFERENCE:
            model = base
        elif name in ("torch-int8", "compiled-int8"):
            model = quantize_for_cpu(copy.deepcopy(base), "int8")
        elif name == "torch-bf16":
            model = copy.deepcopy(base).to(torch.bfloat16)
        elif name == "compiled":
            model = copy.deepcopy(base)
        else:
            directory = work / name
            if not (directory / EXPORT_RECORD).is_file():
                export_onnx(base, directory, quantize="int8" if name.endswith("int8") else None)
            model = OnnxRuntimeXLMSWCM.from_exported(directory)
        if name.startswith("compiled"):
            compile_forward(model)
            generate_kwargs = {"cache_implementation": "static"}
    except Exception as error:  # a candidate that cannot be built is a result too
        return {"candidate": name, "error": short_error(error), **rows}
    convert_s = time.perf_counter() - start
    return {"candidate": name, "model": model, "generate": generate_kwargs, "convert_s": convert_s, **rows}


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
            reference = agreement_reference(row["candidate"])
            if reference in outputs:
                row["agreement_with"] = reference
                row[f"{config}_agreement"] = token_agreement(outputs[reference], outputs[row["candidate"]])


def memory_child(name: str, size: str, work: str) -> dict:
    """Resident memory of one candidate in this (fresh) process after building it and one short generate."""
    base = build_base(size)
    if name.startswith("onnxruntime"):
        from xlm_swcm_hf.onnx_runtime import OnnxRuntimeXLMSWCM

        languages = {"output_languages": RESTRICTED_LANGUAGE} if is_restricted(name) else {}
        del base
        gc.collect()
        row = {"model": OnnxRuntimeXLMSWCM.from_exported(Path(work) / restricted_base(name)), "generate": languages}
    else:
        row = prepare_candidate(name, base, Path(work), size=size)
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


def run_candidates(args, log, bandwidth_GBps: float) -> dict:
    """Every candidate built from one fp32 model, timed interleaved, then (args.memory) each one's memory; with the
    weights-read bounds of the whole and the restricted head at `bandwidth_GBps`."""
    from .cli import cpu_with_bf16_flags

    forget_compiled()
    base = build_base(args.size)
    rows, built = [], {}
    for name in args.candidates:
        log(f"  preparing {name} ...")
        rows.append(prepare_candidate(name, base, args.work, built, args.size))
        built[name] = rows[-1]
        if "error" in rows[-1]:
            log(f"  {name}: FAILED {rows[-1]['error']}")
    time_candidates(rows, args.size, args.length, args.repeats, log)
    for row in rows:
        row.pop("model", None)
        generate = row.pop("generate", None) or {}
        if "output_languages" in generate:
            row["output_languages"] = generate["output_languages"]
    vocabulary = {"language": RESTRICTED_LANGUAGE, "rows": len(base.output_vocabularies[RESTRICTED_LANGUAGE])}
    vocabulary["seed"] = RESTRICTED_SEED
    heads = {"full": base.config.vocab_size, "restricted": vocabulary["rows"]}
    bounds = {head: weights_read(base, rows, bandwidth_GBps) for head, rows in heads.items()}
    del base, built
    gc.collect()
    if args.memory:
        measure_memory(rows, args, log)
    part = {"new_tokens": args.length, "source_length": SIZES[args.size]["source_length"], "rows": rows}
    return {**part, "restricted_vocabulary": vocabulary, "cpu": cpu_with_bf16_flags() or "a CPU", "bounds": bounds}


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
        if is_restricted(name) or name in PEERS:
            why = "a random BART, another model" if name in PEERS else "the benchmark's vocabulary is random ids"
            result["rows"].append({"candidate": name, "skipped": f"not measured: {why}"})
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
