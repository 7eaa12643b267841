"""Decode-latency, encoder and training-step benchmark for XLM-SWCM (CPU). Entry point: scripts/benchmark.py.

Compares in one run: this model with its KV cache, this model with `use_cache=False` (the reference's approach: the
whole decoder re-runs over the prefix each step) and transformers' `BartForConditionalGeneration` at matched
width/depth. All models have random weights; lengths are forced (min_new_tokens = max_new_tokens). Not part of the
Hub remote code. See docs/benchmark.md for how to read the output.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, require_writable_output
from xlm_swcm_hf.files import atomic_write_json, atomic_write_text


SIZES = {
    # name: model dimensions + workload (source length, training batch/target length)
    "tiny": dict(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=128,
        source_length=16,
        train_batch=2,
        train_target_length=8,
    ),
    "small": dict(
        vocab_size=32000,
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=1024,
        source_length=64,
        train_batch=8,
        train_target_length=32,
    ),
    "full": dict(
        vocab_size=135135,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        source_length=128,
        train_batch=8,
        train_target_length=64,
    ),
}
DECODE_CONFIGS = {
    "greedy_b1": dict(batch=1, beams=1),
    "greedy_b8": dict(batch=8, beams=1),
    "beam5": dict(batch=1, beams=5),
}
IMPLS = ("cached", "no_cache", "bart")
TRAIN_MODES = ("fp32", "bf16_autocast", "grad_checkpointing", "minimal_fp32")


# ----------------------------------------------------------------------------------------------- models


def swcm_config(size: str):
    from xlm_swcm_hf import XLMSWCMConfig

    dims = {k: v for k, v in SIZES[size].items() if k not in ("source_length", "train_batch", "train_target_length")}
    return XLMSWCMConfig(**dims, max_position_embeddings=514)


def build_swcm(size: str, seed: int = 0, attn_implementation: str = "sdpa", dtype=torch.float32):
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    torch.manual_seed(seed)
    config = swcm_config(size)
    config._attn_implementation = attn_implementation
    model = XLMSWCMForConditionalGeneration(config).eval()
    return model.to(dtype) if dtype != torch.float32 else model


def build_bart(size: str, seed: int = 0):
    """BART at matched width/depth: same d_model/FFN/heads/vocab, encoder layers = ours, decoder layers = ours."""
    from transformers import BartConfig, BartForConditionalGeneration

    swcm = swcm_config(size)
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=swcm.vocab_size,
        d_model=swcm.hidden_size,
        encoder_layers=swcm.num_hidden_layers,
        decoder_layers=len(swcm.decoder_layout),
        encoder_attention_heads=swcm.num_attention_heads,
        decoder_attention_heads=swcm.num_attention_heads,
        encoder_ffn_dim=swcm.intermediate_size,
        decoder_ffn_dim=swcm.intermediate_size,
        max_position_embeddings=1024,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=None,
        forced_eos_token_id=None,
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    return BartForConditionalGeneration(config).eval()


def count(params) -> int:
    return sum(p.numel() for p in params)


def weights_read_per_token(model) -> dict:
    """Parameters one cached decode step reads: decoder layers minus cross-attention k/v (computed once per source),
    plus the LM head (weight and bias). The one embedding row looked up per token is negligible."""
    from transformers import BartForConditionalGeneration

    if isinstance(model, BartForConditionalGeneration):
        layers = model.model.decoder.layers
        head = [model.lm_head.weight, model.final_logits_bias]
        extra = list(model.model.decoder.layernorm_embedding.parameters())
    else:
        layers = model.model.decoder.layers
        head = list(model.lm_head.parameters())
        extra = []
    total = 0
    for layer in layers:
        for name, param in layer.named_parameters():
            if "encoder_attn.k_proj" in name or "encoder_attn.v_proj" in name:
                continue
            total += param.numel()
    total += count(head) + count(extra)
    bytes_per = next(model.parameters()).element_size()
    return {"parameters": total, "bytes": total * bytes_per}


# ----------------------------------------------------------------------------------------------- timing helpers


def summary(times_s: list[float]) -> dict:
    ms = [t * 1e3 for t in times_s]
    return {"min_ms": min(ms), "median_ms": statistics.median(ms), "runs_ms": ms}


def measure_bandwidth(megabytes: int = 512, repeats: int = 5) -> dict:
    """Memory bandwidth from a large tensor sum (read) and copy (read + write); the larger is used for the bound."""
    x = torch.ones(megabytes * 2**20 // 4)
    y = torch.empty_like(x)
    sums, copies = [], []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        x.sum()
        sums.append(time.perf_counter() - t)
        t = time.perf_counter()
        y.copy_(x)
        copies.append(time.perf_counter() - t)
    nbytes = x.numel() * 4
    read = nbytes / min(sums[1:]) / 1e9
    copy = 2 * nbytes / min(copies[1:]) / 1e9
    del x, y
    return {"sum_read_GBps": read, "copy_rw_GBps": copy, "GBps": max(read, copy), "tensor_MB": megabytes}


def make_source(size: str, batch: int, seed: int = 1):
    length = SIZES[size]["source_length"]
    generator = torch.Generator().manual_seed(seed)
    vocab = SIZES[size]["vocab_size"]
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def generate_once(model, source, new_tokens: int, beams: int, use_cache: bool = True, **extra):
    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(
            **source,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            num_beams=beams,
            do_sample=False,
            use_cache=use_cache,
            early_stopping=False,
            length_penalty=1.0,
            **extra,
        )
        elapsed = time.perf_counter() - start
    return elapsed, out


def encoder_time(model, source, repeats: int) -> dict:
    encoder = model.get_encoder()
    times = []
    with torch.inference_mode():
        encoder(**source)
        for _ in range(repeats):
            t = time.perf_counter()
            encoder(**source)
            times.append(time.perf_counter() - t)
    return summary(times)


def count_calls(model, source, new_tokens: int, beams: int, use_cache: bool) -> dict:
    """How often the encoder and the cross-attention k/v projections run during one generate call."""
    counts = {"encoder": 0, "cross_kv": 0}
    hooks = [model.get_encoder().register_forward_hook(lambda *a: counts.__setitem__("encoder", counts["encoder"] + 1))]
    for layer in model.model.decoder.layers:
        hooks.append(
            layer.encoder_attn.k_proj.register_forward_hook(
                lambda *a: counts.__setitem__("cross_kv", counts["cross_kv"] + 1)
            )
        )
    try:
        generate_once(model, source, new_tokens, beams, use_cache=use_cache)
    finally:
        for hook in hooks:
            hook.remove()
    layers = len(model.model.decoder.layers)
    return {
        "new_tokens": new_tokens,
        "beams": beams,
        "use_cache": use_cache,
        "encoder_calls": counts["encoder"],
        "cross_kv_projection_calls": counts["cross_kv"],
        "decoder_layers": layers,
        "cross_kv_computed_once": counts["cross_kv"] == layers,
    }


# ----------------------------------------------------------------------------------------------- decode


def run_decode(args, models: dict, log) -> list[dict]:
    """Interleaves implementations inside each repeat, so load changes on a shared machine hit all alike."""
    results = {}
    for config_name in args.configs:
        spec = DECODE_CONFIGS[config_name]
        source = make_source(args.size, spec["batch"])
        lengths = args.lengths_for.get(config_name, args.lengths)
        for impl in args.impls:  # warm-up
            generate_once(models[impl], source, 2, spec["beams"], use_cache=impl != "no_cache")
        for length in lengths:
            for repeat in range(args.repeats):
                for impl in args.impls:
                    if impl == "no_cache" and repeat >= args.nocache_repeats:
                        continue
                    elapsed, out = generate_once(
                        models[impl], source, length, spec["beams"], use_cache=impl != "no_cache"
                    )
                    new = out.shape[1] - 1
                    if new != length:
                        raise RuntimeError(f"{impl} {config_name} produced {new} tokens instead of {length}")
                    results.setdefault((config_name, impl, length), []).append(elapsed)
                    log(f"  {config_name:10s} {impl:9s} {length:4d} tokens: {elapsed / length * 1e3:8.1f} ms/step")
    rows = []
    for (config_name, impl, length), times in results.items():
        per_step = [t / length for t in times]
        rows.append(
            {
                "config": config_name,
                **DECODE_CONFIGS[config_name],
                "impl": impl,
                "new_tokens": length,
                "total": summary(times),
                "ms_per_step": summary(per_step),
            }
        )
    return rows


def run_ablations(args, models: dict, log) -> list[dict]:
    """Each fast path measured on and off in the same repeat loop (greedy batch 1 and 8 at one length)."""
    cached = models["cached"]
    length = args.ablation_length

    def set_head(on):
        cached.lm_head_transposed_inference = on

    def set_attn(name):
        cached.config._attn_implementation = name

    variants = {
        "default": lambda: None,
        "eager_attention": lambda: set_attn("eager"),
        "no_transposed_head": lambda: set_head(False),
    }

    def reset():
        set_head(True)
        set_attn("sdpa")

    if "bf16" in models:
        variants["bf16_weights"] = None
    results = {}
    for config_name in ("greedy_b1", "greedy_b8"):
        spec = DECODE_CONFIGS[config_name]
        source = make_source(args.size, spec["batch"])
        for repeat in range(args.repeats + 1):  # the first round is a warm-up
            for name, apply in variants.items():
                reset()
                model = models["bf16"] if name == "bf16_weights" else cached
                if apply is not None:
                    apply()
                n = 2 if repeat == 0 else length
                elapsed, out = generate_once(model, source, n, spec["beams"])
                if repeat and name != "bf16_weights":
                    results.setdefault("reference_tokens", {}).setdefault(config_name, out)
                    same = torch.equal(results["reference_tokens"][config_name], out)
                    results.setdefault(("same", config_name, name), []).append(same)
                if repeat:
                    results.setdefault((config_name, name), []).append(elapsed / length)
                    log(f"  ablation {config_name} {name:20s}: {elapsed / length * 1e3:8.1f} ms/step")
        reset()
    rows = []
    for key, values in results.items():
        if isinstance(key, tuple) and len(key) == 2:
            config_name, name = key
            same = results.get(("same", config_name, name))
            rows.append(
                {
                    "config": config_name,
                    "variant": name,
                    "new_tokens": length,
                    "ms_per_step": summary(values),
                    "tokens_identical_to_default": all(same) if same is not None else None,
                }
            )
    return rows


def try_compile(args, log) -> dict:
    """torch.compile on the decoder step: reported, never used by default."""
    result = {"attempted": True}
    try:
        model = build_swcm(args.size)
        source = make_source(args.size, 1)
        length = min(args.ablation_length, 16)
        base, ref = generate_once(model, source, length, 1)
        model.forward = torch.compile(model.forward, dynamic=True)
        first, _ = generate_once(model, source, length, 1)
        second, out2 = generate_once(model, source, length, 1)
        result.update(
            eager_ms_per_step=base / length * 1e3,
            compiled_first_call_s=first,
            compiled_ms_per_step=second / length * 1e3,
            tokens_identical=bool(torch.equal(ref, out2)),
            new_tokens=length,
            compile_and_first_call_overhead_s=first - base,
        )
    except Exception as error:  # recorded, not fatal
        result.update(error=f"{type(error).__name__}: {str(error)[:300]}")
    log(f"  torch.compile: {result}")
    return result


# -------------------------------------------------------------------------------------- quantized CPU inference

# Candidates beside the fp32 baseline: "bf16" (weights cast to bfloat16) and xlm_swcm_hf.quantization's methods.
QUANT_CANDIDATES = ("bf16", "int8", "torchao-int8", "torchao-int8-weight-only", "torchao-int4-weight-only")
DEMO_MODEL = Path("artifacts/demo/swcm/final")
DEMO_TEST = Path("artifacts/demo-data/test.jsonl")


def make_candidate(base, name: str):
    """A copy of the fp32 `base` model turned into candidate `name` (bf16 weights or a quantization method)."""
    import copy

    from xlm_swcm_hf.quantization import quantize_for_cpu

    head_copy = base.__dict__.pop("_lm_head_t_cache", None)  # the fp32 fast path's runtime copy: not copied along
    try:
        model = copy.deepcopy(base)
    finally:
        if head_copy is not None:
            base.__dict__["_lm_head_t_cache"] = head_copy
    if name == "bf16":
        return model.to(torch.bfloat16)
    return quantize_for_cpu(model, name)


def weight_bytes(model) -> int:
    """Bytes of the model's weights as stored: plain tensors by storage (shared ones once), torchao tensor subclasses
    by their inner tensors, torch.ao dynamic-quantized Linear layers by their int8 weight, scales and bias."""
    seen, total = set(), 0

    def add(tensor):
        nonlocal total
        if hasattr(tensor, "__tensor_flatten__"):
            names, _ = tensor.__tensor_flatten__()
            for name in names:
                add(getattr(tensor, name))
            return
        if tensor.is_quantized:
            total += tensor.numel() * tensor.element_size()
            if tensor.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                total += tensor.q_per_channel_scales().numel() * 8 + tensor.q_per_channel_zero_points().numel() * 8
            return
        key = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes())
        if key not in seen:
            seen.add(key)
            total += key[1]

    for tensor in (*model.parameters(), *model.buffers()):
        add(tensor)
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            add(weight)
            if bias is not None:
                total += bias.numel() * bias.element_size()
    return total


def token_agreement(reference: torch.Tensor, other: torch.Tensor) -> dict:
    """Share of generated token positions (after the start token) and of whole sequences equal to the reference."""
    ref, out = reference[:, 1:], other[:, 1:]
    if ref.shape != out.shape:
        return {"tokens": 0.0, "sequences": 0.0, "positions": int(ref.numel())}
    equal = ref == out
    return {
        "tokens": equal.float().mean().item(),
        "sequences": equal.all(dim=1).float().mean().item(),
        "positions": int(ref.numel()),
    }


def quant_memory_child(size: str, name: str) -> dict:
    """One candidate in a fresh process: resident memory after building, converting and one short generate."""
    gc.collect()
    base = build_swcm(size)
    model = base if name == "fp32" else make_candidate(base, name)
    del base
    gc.collect()
    generate_once(model, make_source(size, 1), 2, 1)
    gc.collect()
    return {
        "candidate": name,
        "rss_bytes": _rss_bytes("VmRSS"),
        "peak_rss_bytes": _rss_bytes("VmHWM"),
        "weight_bytes": weight_bytes(model),
    }


def run_quant_memory(args, names: list[str], log) -> dict:
    """Resident memory of each candidate, each in its own process (so one's memory is not another's)."""
    rows = {}
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    for name in names:
        command = [sys.executable, "-m", "xlm_swcm_experiments.benchmark", "--quant-child", name, "--size", args.size]
        command += ["--threads", str(torch.get_num_threads())]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[1])
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
        if done.returncode != 0 or not lines:
            rows[name] = {"error": done.stderr[-2000:]}
            log(f"  memory {name}: FAILED\n{done.stderr[-2000:]}")
            continue
        rows[name] = json.loads(lines[-1][len("RESULT") :])
        log(f"  memory {name:26s}: RSS {rows[name]['rss_bytes'] / 2**20:8.0f} MiB")
    return rows


def run_quantization(args, base, log) -> dict:
    """fp32 vs every candidate: greedy batch 1 and 8 at one forced length, interleaved inside each repeat; token
    agreement with fp32 on these random-weight sources; conversion time; weights and resident memory."""
    from xlm_swcm_hf.quantization import available_methods

    available = set(available_methods()) | {"bf16"}
    names, rows = ["fp32"], {"fp32": {"candidate": "fp32", "convert_s": 0.0}}
    for name in args.quant_methods:
        if name not in available:
            reason = "torchao not installed" if name.startswith("torchao") else "torch.ao.quantization missing"
            rows[name] = {"candidate": name, "skipped": f"skipped: {reason}"}
            log(f"  quantization {name}: skipped, not available")
            continue
        start = time.perf_counter()
        try:
            model = make_candidate(base, name)
        except Exception as error:  # recorded: a candidate that fails is a result too
            rows[name] = {"candidate": name, "error": f"{type(error).__name__}: {str(error)[:300]}"}
            log(f"  quantization {name}: FAILED {rows[name]['error']}")
            continue
        rows[name] = {"candidate": name, "convert_s": time.perf_counter() - start, "model": model}
        names.append(name)
    rows["fp32"]["model"] = base
    length = args.quant_length
    for config_name in ("greedy_b1", "greedy_b8"):
        spec = DECODE_CONFIGS[config_name]
        source = make_source(args.size, spec["batch"])
        outputs = {}
        for repeat in range(args.repeats + 1):  # the first round is a warm-up
            for name in names:
                n = 2 if repeat == 0 else length
                elapsed, out = generate_once(rows[name]["model"], source, n, spec["beams"])
                if repeat:
                    outputs[name] = out
                    rows[name].setdefault(config_name, []).append(elapsed / length)
                    log(f"  quantization {config_name} {name:26s}: {elapsed / length * 1e3:8.1f} ms/step")
        for name in names:
            rows[name][config_name] = summary(rows[name][config_name])
            rows[name][f"{config_name}_agreement"] = token_agreement(outputs["fp32"], outputs[name])
    for name in names:
        rows[name]["weight_bytes"] = weight_bytes(rows[name].pop("model"))
        both = [rows[name][f"{c}_agreement"] for c in ("greedy_b1", "greedy_b8")]
        positions = sum(a["positions"] for a in both)
        rows[name]["identical_token_share"] = sum(a["tokens"] * a["positions"] for a in both) / positions
    gc.collect()
    memory = run_quant_memory(args, names, log) if args.quant_memory else {}
    for name, row in memory.items():
        if "error" in row:
            rows[name]["memory_error"] = row["error"]
        else:
            rows[name]["rss_bytes"], rows[name]["peak_rss_bytes"] = row["rss_bytes"], row["peak_rss_bytes"]
    return {"new_tokens": length, "source_length": SIZES[args.size]["source_length"], "rows": list(rows.values())}


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
            predictions = generate_predictions(model, tokenizer, sources, batch_size=16, **generation)
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


# ----------------------------------------------------------------------------------------------- training


class _MinimalSWCM(nn.Module):
    """A minimal plain-PyTorch model of the same architecture (XLM-R post-LN encoder; pre-LN custom/normal decoder
    layers; untied head with bias), used as the training-step yardstick. Same parameter count as ours."""

    class Attn(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))

        def forward(self, x, kv=None, causal=False, mask=None):
            kv = x if kv is None else kv
            b, t, d = x.shape
            split = lambda y: y.view(b, -1, self.h, d // self.h).transpose(1, 2)
            out = nn.functional.scaled_dot_product_attention(
                split(self.q(x)), split(self.k(kv)), split(self.v(kv)), attn_mask=mask, is_causal=causal
            )
            return self.o(out.transpose(1, 2).reshape(b, t, d))

    class FFN(nn.Sequential):
        def __init__(self, d, f):
            super().__init__(nn.Linear(d, f), nn.GELU(), nn.Linear(f, d))

    def __init__(self, config):
        super().__init__()
        d, h, f, p = (
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            config.hidden_dropout_prob,
        )
        self.word = nn.Embedding(config.vocab_size, d)
        self.pos = nn.Embedding(config.max_position_embeddings, d)
        self.emb_norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.enc = nn.ModuleList(
            nn.ModuleDict(dict(attn=self.Attn(d, h), n1=nn.LayerNorm(d), ffn=self.FFN(d, f), n2=nn.LayerNorm(d)))
            for _ in range(config.num_hidden_layers)
        )
        self.dec = nn.ModuleList()
        for kind in config.decoder_layout:
            parts = dict(sa=self.Attn(d, h), ca=self.Attn(d, h), n1=nn.LayerNorm(d), n2=nn.LayerNorm(d))
            if kind == "custom":
                parts.update(f1=self.FFN(d, f), f2=self.FFN(d, f), n3=nn.LayerNorm(d), n4=nn.LayerNorm(d))
            else:
                parts.update(f1=self.FFN(d, f))
            self.dec.append(nn.ModuleDict(parts))
        self.layout = list(config.decoder_layout)
        self.head = nn.Linear(d, config.vocab_size)

    def embed(self, ids):
        pos = torch.arange(2, 2 + ids.shape[1], device=ids.device)
        return self.drop(self.emb_norm(self.word(ids) + self.pos(pos)))

    def forward(self, input_ids, attention_mask, decoder_input_ids, labels):
        mask = attention_mask[:, None, None, :].bool()
        x = self.embed(input_ids)
        for layer in self.enc:
            x = layer.n1(x + self.drop(layer.attn(x, mask=mask)))
            x = layer.n2(x + self.drop(layer.ffn(x)))
        y = self.embed(decoder_input_ids)
        for kind, layer in zip(self.layout, self.dec):
            if kind == "custom":
                y = y + layer.sa(layer.n1(y), causal=True)
                y = y + self.drop(layer.f1(layer.n2(y)))
                y = y + self.drop(layer.ca(layer.n3(y), kv=x, mask=mask))
                y = y + self.drop(layer.f2(layer.n4(y)))
            else:
                y = layer.n1(y)
                y = y + self.drop(layer.sa(y, causal=True))
                y = layer.n1(y)
                y = y + self.drop(layer.ca(y, kv=x, mask=mask))
                y = layer.n2(y)
                y = y + self.drop(layer.f1(y))
        logits = self.head(y)
        return nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), labels.view(-1))


def _rss_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM (peak RSS) to the current RSS
        return True
    except OSError:
        return False


def train_child(size: str, mode: str, repeats: int) -> dict:
    """One training configuration in a fresh process: step time and peak RSS above the pre-step baseline."""
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    torch.manual_seed(0)
    config = swcm_config(size)
    config._attn_implementation = "sdpa"
    spec = SIZES[size]
    batch, target = spec["train_batch"], spec["train_target_length"]
    source = make_source(size, batch)
    labels = torch.randint(5, config.vocab_size, (batch, target), generator=torch.Generator().manual_seed(2))
    if mode == "minimal_fp32":
        model = _MinimalSWCM(config).train()
        decoder_input_ids = torch.cat([torch.zeros(batch, 1, dtype=torch.long), labels[:, :-1]], dim=1)
        step_loss = lambda: model(source["input_ids"], source["attention_mask"], decoder_input_ids, labels)
    else:
        model = XLMSWCMForConditionalGeneration(config).train()
        if mode == "grad_checkpointing":
            enable = getattr(model, "activation_checkpointing_enable", None)  # the transformers >= 5.x name
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        step_loss = lambda: model(**source, labels=labels).loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())

    memory = {}

    def step():
        optimizer.zero_grad(set_to_none=True)
        if mode == "bf16_autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = step_loss()
        else:
            loss = step_loss()
        memory["after_forward"] = _rss_bytes("VmRSS")  # what the forward keeps for the backward
        memory["forward_peak"] = _rss_bytes("VmHWM")
        loss.backward()
        memory["backward_peak"] = _rss_bytes("VmHWM")
        optimizer.step()
        return loss.item()

    step()  # warm-up: allocates AdamW state
    times, rows = [], []
    for _ in range(repeats):
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        baseline = _rss_bytes("VmRSS")
        reset_ok = _reset_peak_rss()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        rows.append(dict(memory, baseline=baseline, step_peak=_rss_bytes("VmHWM")))
    best = min(rows, key=lambda row: row["step_peak"])
    return {
        "mode": mode,
        "batch": batch,
        "source_length": spec["source_length"],
        "target_length": target,
        "parameters": count(model.parameters()),
        "step": summary(times),
        "peak_rss_bytes": best["step_peak"],
        "pre_step_rss_bytes": best["baseline"],
        "peak_reset_worked": reset_ok,
        # saved activations: resident memory right after the forward, above the pre-step baseline
        "activation_bytes_estimate": best["after_forward"] - best["baseline"],
        "forward_peak_extra_bytes": best["forward_peak"] - best["baseline"],
        "forward_backward_peak_extra_bytes": best["backward_peak"] - best["baseline"],
        "step_peak_extra_bytes": best["step_peak"] - best["baseline"],
        "gradient_bytes": param_bytes,
    }


def run_training(args, log) -> list[dict]:
    rows = []
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")  # freed tensors leave RSS
    for mode in args.train_modes:
        if args.train_in_process:  # quick (tests): memory figures then include what earlier modes left behind
            row = train_child(args.size, mode, args.train_repeats)
            rows.append(row)
            log(f"  train {mode:20s}: {row['step']['median_ms'] / 1e3:7.2f} s/step (in process)")
            continue
        # A fresh process per mode, so its peak memory is its own.
        command = [
            sys.executable,
            "-m",
            "xlm_swcm_experiments.benchmark",
            "--train-child",
            mode,
            "--size",
            args.size,
            "--train-repeats",
            str(args.train_repeats),
            "--threads",
            str(torch.get_num_threads()),
        ]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, cwd=str(Path(__file__).resolve().parents[1])
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
        if done.returncode != 0 or not lines:
            rows.append({"mode": mode, "error": done.stderr[-2000:]})
            log(f"  train {mode}: FAILED\n{done.stderr[-2000:]}")
            continue
        row = json.loads(lines[-1][len("RESULT") :])
        rows.append(row)
        log(
            f"  train {mode:20s}: {row['step']['median_ms'] / 1e3:7.2f} s/step, peak RSS "
            f"{row['peak_rss_bytes'] / 2**30:.2f} GiB, activations ~{row['activation_bytes_estimate'] / 2**30:.2f} GiB"
        )
    return rows


# ----------------------------------------------------------------------------------------------- report


def _find(rows, **match):
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def evaluate_targets(report: dict) -> list[dict]:
    decode, targets = report["decode"], []

    def median(config, impl, length):
        row = _find(decode, config=config, impl=impl, new_tokens=length)
        return row["ms_per_step"]["median_ms"] if row else None

    def add(name, value, goal, met, note=""):
        targets.append(
            {"target": name, "value": value, "goal": goal, "met": None if value is None else bool(met), "note": note}
        )

    for config, length, goal in (("greedy_b1", 128, 3), ("greedy_b1", 256, 6), ("greedy_b8", 128, 9), ("beam5", 64, 4)):
        cached, nocache = median(config, "cached", length), median(config, "no_cache", length)
        value = nocache / cached if cached and nocache else None
        add(f"{config} {length} tokens: no-cache / cached", value, f">= {goal}x", value is not None and value >= goal)

    ratio = report["weights_read_per_token"]["ratio_swcm_over_bart"]
    b1 = sorted({r["new_tokens"] for r in decode if r["config"] == "greedy_b1" and r["impl"] == "bart"})
    length = 128 if 128 in b1 else (b1[-1] if b1 else None)
    ours, bart = (
        (median("greedy_b1", "cached", length), median("greedy_b1", "bart", length)) if length else (None, None)
    )
    value = ours / bart if ours and bart else None
    add(
        f"greedy_b1 {length} tokens: cached / BART",
        value,
        f"<= {ratio:.3f} (weights-read ratio)",
        value is not None and value <= ratio,
    )

    bound_ms = report["bandwidth_bound_ms_per_token"]
    encoder = report["encoder"].get("batch1", {}).get("median_ms", 0.0)
    value = None
    if ours:
        decode_only = ours - encoder / length
        value = decode_only / bound_ms
    add(
        f"greedy_b1 {length} tokens fp32 (encoder excluded) / bandwidth bound",
        value,
        "<= 1.6",
        value is not None and value <= 1.6,
        f"bound {bound_ms:.1f} ms/token",
    )

    ablation = report.get("ablations", [])
    fp32 = _find(ablation, config="greedy_b1", variant="default")
    bf16 = _find(ablation, config="greedy_b1", variant="bf16_weights")
    value = bf16["ms_per_step"]["median_ms"] / fp32["ms_per_step"]["median_ms"] if fp32 and bf16 else None
    add("bf16 weights / fp32, greedy b1", value, "<= 0.6", value is not None and value <= 0.6)

    quant = report.get("quantization") or {"rows": []}
    fp32, int8 = _find(quant["rows"], candidate="fp32"), _find(quant["rows"], candidate="int8")
    value = None
    if fp32 and int8 and "greedy_b1" in fp32 and "greedy_b1" in int8:
        value = int8["greedy_b1"]["median_ms"] / fp32["greedy_b1"]["median_ms"]
    add(
        f"int8 / fp32 ms per step, greedy b1 {quant.get('new_tokens')} tokens",
        value,
        "<= 0.5",
        value is not None and value <= 0.5,
        f"{report['meta']['size']} size",
    )
    quality = (report.get("quality") or {}).get("int8")
    note = "skipped: no trained model (see the quality line)" if "skipped" in (report.get("quality") or {}) else ""
    value = quality["chrf_delta"] if quality else None
    add("int8 chrF - fp32 chrF (demo model, greedy)", value, ">= -0.5", value is not None and value >= -0.5, note)
    value = quality["identical_outputs"] if quality else None
    add("int8 greedy outputs identical to fp32 (demo model)", value, ">= 0.90", value is not None and value >= 0.9)

    train = {row["mode"]: row for row in report.get("training", []) if "error" not in row}
    t = lambda mode: train[mode]["step"]["median_ms"] if mode in train else None
    value = t("fp32") / t("minimal_fp32") if t("fp32") and t("minimal_fp32") else None
    add("training step fp32 / minimal implementation", value, "<= 1.1", value is not None and value <= 1.1)
    value = t("fp32") / t("bf16_autocast") if t("fp32") and t("bf16_autocast") else None
    add("training step speed-up from bf16 autocast", value, ">= 1.6x", value is not None and value >= 1.6)
    value = None
    if "fp32" in train and "grad_checkpointing" in train:
        base = train["fp32"]["activation_bytes_estimate"]
        value = 1 - train["grad_checkpointing"]["activation_bytes_estimate"] / base if base > 0 else None
    add("activation memory cut by gradient checkpointing", value, ">= 40%", value is not None and value >= 0.4)
    return targets


def _fmt(value, digits=1):
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"# XLM-SWCM benchmark ({meta['size']}, {meta['parameters_swcm'] / 1e6:.1f}M parameters, "
        f"{meta['threads']} threads, {meta['dtype']})",
        "",
        f"torch {meta['torch']}, transformers {meta['transformers']}, {meta['cpu']}; load average before/after "
        f"{meta['loadavg_before']} / {meta.get('loadavg_after')}. Repeats: {meta['repeats']} "
        f"(no-cache: {meta['nocache_repeats']}). Times include the encoder (see below).",
        "",
        "## Decode: ms per generated step (median / min)",
        "",
        "| config | new tokens | cached | no cache | BART | no-cache / cached | cached / BART |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    decode = report["decode"]
    keys = sorted(
        {(r["config"], r["new_tokens"]) for r in decode}, key=lambda k: (list(DECODE_CONFIGS).index(k[0]), k[1])
    )
    for config, length in keys:
        cells = {}
        for impl in IMPLS:
            row = _find(decode, config=config, impl=impl, new_tokens=length)
            cells[impl] = row["ms_per_step"] if row else None
        med = lambda impl, cells=cells: cells[impl]["median_ms"] if cells[impl] else None
        cell = lambda impl, cells=cells: (
            f"{cells[impl]['median_ms']:.1f} / {cells[impl]['min_ms']:.1f}" if cells[impl] else "–"
        )
        speed = med("no_cache") / med("cached") if med("no_cache") and med("cached") else None
        vs_bart = med("cached") / med("bart") if med("bart") and med("cached") else None
        lines.append(
            f"| {config} | {length} | {cell('cached')} | {cell('no_cache')} | {cell('bart')} | "
            f"{_fmt(speed, 2)}x | {_fmt(vs_bart, 2)} |"
        )
    weights = report["weights_read_per_token"]
    bandwidth = report["bandwidth"]
    lines += [
        "",
        "Encoder alone (median ms): " + ", ".join(f"{k} {v['median_ms']:.1f}" for k, v in report["encoder"].items()),
        "",
        f"Weights read per cached step: ours {weights['swcm']['bytes'] / 1e9:.3f} GB, BART "
        f"{weights['bart']['bytes'] / 1e9:.3f} GB, ratio {weights['ratio_swcm_over_bart']:.3f}. "
        f"Bandwidth {bandwidth['GBps']:.1f} GB/s (sum {bandwidth['sum_read_GBps']:.1f}, copy "
        f"{bandwidth['copy_rw_GBps']:.1f}) -> bound {report['bandwidth_bound_ms_per_token']:.1f} ms/token "
        "(fp32, batch 1).",
    ]
    checks = report.get("call_counts", [])
    if checks:
        lines += [
            "",
            "Calls per generate: "
            + "; ".join(
                f"{'cached' if c['use_cache'] else 'no cache'} beams={c['beams']}: encoder {c['encoder_calls']}x, "
                f"cross-attention k/v projections {c['cross_kv_projection_calls']} for {c['decoder_layers']} layers"
                for c in checks
            ),
        ]
    if report.get("ablations"):
        lines += [
            "",
            f"## Fast paths on/off (cached, {report['ablations'][0]['new_tokens']} new tokens, ms/step median / min)",
            "",
            "| config | variant | ms/step | vs default | same tokens |",
            "|---|---|---:|---:|---|",
        ]
        for row in report["ablations"]:
            base = _find(report["ablations"], config=row["config"], variant="default")
            rel = row["ms_per_step"]["median_ms"] / base["ms_per_step"]["median_ms"]
            lines.append(
                f"| {row['config']} | {row['variant']} | {row['ms_per_step']['median_ms']:.1f} / "
                f"{row['ms_per_step']['min_ms']:.1f} | {rel:.2f} | {_fmt(row['tokens_identical_to_default'])} |"
            )
    if report.get("torch_compile"):
        lines += ["", f"torch.compile: `{json.dumps(report['torch_compile'])}`"]
    if report.get("quantization"):
        lines += quantization_markdown(report["quantization"], report.get("quality") or {})
    if report.get("training"):
        lines += [
            "",
            "## Training step (AdamW)",
            "",
            "| mode | s/step median / min | peak RSS GiB | activations after forward GiB | "
            "forward+backward peak above baseline GiB |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in report["training"]:
            if "error" in row:
                lines.append(f"| {row['mode']} | failed | | | |")
                continue
            lines.append(
                f"| {row['mode']} (batch {row['batch']}, {row['source_length']}->{row['target_length']}) | "
                f"{row['step']['median_ms'] / 1e3:.2f} / {row['step']['min_ms'] / 1e3:.2f} | "
                f"{row['peak_rss_bytes'] / 2**30:.2f} | {row['activation_bytes_estimate'] / 2**30:.2f} | "
                f"{row['forward_backward_peak_extra_bytes'] / 2**30:.2f} |"
            )
    lines += ["", "## Targets", "", "| target | value | goal | met |", "|---|---:|---|---|"]
    for t in report["targets"]:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} | {t['goal']} | {met} {t['note']} |")
    return "\n".join(lines) + "\n"


def quantization_markdown(quant: dict, quality: dict) -> list[str]:
    """The candidates table (every candidate, including the ones that lost or failed) and the quality lines."""
    mib = lambda value: f"{value / 2**20:.0f}" if value else "–"
    rows = quant["rows"]
    fp32 = _find(rows, candidate="fp32")
    lines = [
        "",
        f"## Quantized CPU inference (greedy, {quant['new_tokens']} new tokens, source {quant['source_length']}, "
        "ms/step median / min)",
        "",
        "| candidate | batch 1 | vs fp32 | batch 8 | vs fp32 | same tokens as fp32 (random weights) | weights MiB | "
        "resident MiB | convert s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row or "error" in row:
            lines.append(f"| {row['candidate']} | {row.get('skipped') or 'failed: ' + row['error']} | | | | | | | |")
            continue
        cells = []
        for config in ("greedy_b1", "greedy_b8"):
            ms = row[config]
            ratio = ms["median_ms"] / fp32[config]["median_ms"]
            cells += [f"{ms['median_ms']:.1f} / {ms['min_ms']:.1f}", f"{ratio:.2f}"]
        lines.append(
            f"| {row['candidate']} | {' | '.join(cells)} | {row['identical_token_share']:.1%} | "
            f"{mib(row['weight_bytes'])} | {mib(row.get('rss_bytes'))} | {row['convert_s']:.1f} |"
        )
    lines += ["", "Quality on a trained model (greedy, chrF against the references): "]
    if "skipped" in quality:
        lines[-1] += quality["skipped"] + "."
    else:
        parts = [f"fp32 chrF {quality['fp32']['chrf']:.2f}"]
        for name, value in quality.items():
            if isinstance(value, dict) and "chrf_delta" in value:
                parts.append(
                    f"{name} chrF {value['chrf']:.2f} ({value['chrf_delta']:+.2f}), identical outputs "
                    f"{value['identical_outputs']:.1%}"
                )
        lines[-1] += f"{quality['model']} on {quality['sentences']} sentences of {quality['data']}: " + "; ".join(parts)
    return lines


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    configs = [c for c in DECODE_CONFIGS if any(r["config"] == c for r in report["decode"])]
    fig, axes = plt.subplots(1, len(configs), figsize=(5 * len(configs), 4), squeeze=False)
    for ax, config in zip(axes[0], configs):
        for impl in IMPLS:
            rows = sorted(
                (r for r in report["decode"] if r["config"] == config and r["impl"] == impl),
                key=lambda r: r["new_tokens"],
            )
            if rows:
                ax.plot(
                    [r["new_tokens"] for r in rows], [r["ms_per_step"]["median_ms"] for r in rows], "o-", label=impl
                )
        ax.set_title(config)
        ax.set_xlabel("new tokens")
        ax.set_ylabel("ms per step (median)")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=list(SIZES), default="full")
    parser.add_argument("--lengths", default="32,64,128,256", help="new tokens, comma separated")
    parser.add_argument(
        "--lengths-for",
        nargs="*",
        default=[],
        metavar="CONFIG=L1,L2",
        help="per-config lengths, e.g. greedy_b8=32,128 beam5=64",
    )
    parser.add_argument("--configs", default=",".join(DECODE_CONFIGS))
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nocache-repeats", type=int, default=None, help="repeats for the slow no-cache runs")
    parser.add_argument("--ablation-length", type=int, default=64)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also evaluate torch.compile (slow to compile)")
    parser.add_argument("--train-modes", default=",".join(TRAIN_MODES), help="'' to skip training")
    parser.add_argument("--train-repeats", type=int, default=2)
    parser.add_argument(
        "--train-in-process",
        action="store_true",
        help="no subprocess per training mode (faster; memory figures less clean)",
    )
    parser.add_argument(
        "--quant-methods",
        default=",".join(QUANT_CANDIDATES),
        help="candidates beside fp32 for the quantized-inference table ('' skips it)",
    )
    parser.add_argument("--quant-length", type=int, default=32, help="new tokens for the quantized-inference table")
    parser.add_argument("--no-quant-memory", action="store_true", help="no resident-memory child process per candidate")
    parser.add_argument("--quality-model", default=str(DEMO_MODEL), help="trained model folder for the quality check")
    parser.add_argument("--quality-data", default=str(DEMO_TEST), help="its test split (JSONL with source, target)")
    parser.add_argument("--quality-methods", default="int8", help="methods whose quality is checked")
    parser.add_argument("--quality-limit", type=int, default=0, help="first N test sentences only (0: all)")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out-dir", default="artifacts/bench")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier benchmark.json in --out-dir")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--train-child", metavar="MODE", help=argparse.SUPPRESS)  # one training mode, in a child
    parser.add_argument("--quant-child", metavar="CANDIDATE", help=argparse.SUPPRESS)  # one candidate's memory
    args = parser.parse_args(argv)

    def numbers(option: str, value: str) -> list[int]:
        try:
            values = [int(x) for x in value.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"{option} {value!r} must be comma-separated whole numbers, e.g. 32,64") from None
        if not values or min(values) < 1:
            raise InputError(f"{option} {value!r} needs at least one length, each >= 1, e.g. 32,64")
        return values

    args.lengths = numbers("--lengths", args.lengths)
    lengths_for = {}
    for item in args.lengths_for:
        name, separator, value = item.partition("=")
        if not separator or name not in DECODE_CONFIGS:
            raise InputError(f"--lengths-for {item!r} must be CONFIG=L1,L2 with CONFIG one of {list(DECODE_CONFIGS)}")
        lengths_for[name] = numbers(f"--lengths-for {name}", value)
    args.lengths_for = lengths_for
    for option in ("repeats", "train_repeats", "ablation_length", "quant_length"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}.")
    for option in ("nocache_repeats", "threads"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}.")
    if args.quality_limit < 0:
        raise InputError(f"--quality-limit must be >= 0 (0: all), got {args.quality_limit}.")
    args.configs = [c for c in args.configs.split(",") if c]
    args.impls = [i for i in args.impls.split(",") if i]
    args.train_modes = [m for m in args.train_modes.split(",") if m]
    args.quant_methods = [m for m in args.quant_methods.split(",") if m]
    args.quality_methods = [m for m in args.quality_methods.split(",") if m]
    args.quant_memory = not args.no_quant_memory
    args.nocache_repeats = args.repeats if args.nocache_repeats is None else min(args.nocache_repeats, args.repeats)
    for name in args.configs:
        if name not in DECODE_CONFIGS:
            raise InputError(f"unknown config {name}; choose from {list(DECODE_CONFIGS)}")
    for name in args.impls:
        if name not in IMPLS:
            raise InputError(f"unknown impl {name}; choose from {IMPLS}")
    for name in args.quant_methods:
        if name not in QUANT_CANDIDATES:
            raise InputError(f"unknown quantization candidate {name}; choose from {QUANT_CANDIDATES}")
    for name in args.quality_methods:
        if name not in QUANT_CANDIDATES[1:]:
            raise InputError(f"unknown quality method {name}; choose from {QUANT_CANDIDATES[1:]}")
    if not (args.train_child or args.quant_child):
        require_writable_output(args.out_dir, "--out-dir")
        if (Path(args.out_dir) / "benchmark.json").exists() and not args.overwrite:
            raise InputError(
                f"--out-dir {args.out_dir} holds an earlier benchmark.json; pass --overwrite to replace it or choose "
                "another --out-dir."
            )
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_child:
        print("RESULT" + json.dumps(train_child(args.size, args.train_child, args.train_repeats)), flush=True)
        return {}
    if args.quant_child:
        print("RESULT" + json.dumps(quant_memory_child(args.size, args.quant_child)), flush=True)
        return {}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, flush=True)
    import transformers

    started = time.time()
    meta = {
        "size": args.size,
        "dims": SIZES[args.size],
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu": platform.processor() or platform.machine(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "repeats": args.repeats,
        "nocache_repeats": args.nocache_repeats,
        "argv": sys.argv[1:],
    }
    log(f"benchmark {args.size}: building models")
    models = {"cached": build_swcm(args.size)}
    models["no_cache"] = models["cached"]
    models["bart"] = build_bart(args.size)
    meta["parameters_swcm"] = count(models["cached"].parameters())
    meta["parameters_bart"] = count(models["bart"].parameters())
    report = {"meta": meta}
    report["bandwidth"] = measure_bandwidth(32 if args.size == "tiny" else 512)
    swcm_w, bart_w = weights_read_per_token(models["cached"]), weights_read_per_token(models["bart"])
    report["weights_read_per_token"] = {
        "swcm": swcm_w,
        "bart": bart_w,
        "ratio_swcm_over_bart": swcm_w["bytes"] / bart_w["bytes"],
    }
    report["bandwidth_bound_ms_per_token"] = swcm_w["bytes"] / (report["bandwidth"]["GBps"] * 1e9) * 1e3
    log(
        f"  bandwidth {report['bandwidth']['GBps']:.1f} GB/s; bound {report['bandwidth_bound_ms_per_token']:.1f} "
        f"ms/token; weights ratio {report['weights_read_per_token']['ratio_swcm_over_bart']:.3f}"
    )
    report["encoder"] = {
        f"batch{b}": encoder_time(models["cached"], make_source(args.size, b), args.repeats)
        for b in sorted({DECODE_CONFIGS[c]["batch"] for c in args.configs})
    }
    report["call_counts"] = [
        count_calls(models["cached"], make_source(args.size, 1), 4, beams, use_cache)
        for beams, use_cache in ((1, True), (5, True), (1, False))
    ]
    report["decode"] = run_decode(args, models, log)
    if not args.no_ablations:
        if not args.no_bf16:
            models["bf16"] = build_swcm(args.size, dtype=torch.bfloat16)
        report["ablations"] = run_ablations(args, models, log)
    if args.compile:
        report["torch_compile"] = try_compile(args, log)
    if args.quant_methods:
        for name in ("bf16", "bart"):  # done with; the candidates need the memory
            models.pop(name, None)
        gc.collect()
        report["quantization"] = run_quantization(args, models["cached"], log)
    models.clear()
    gc.collect()
    report["quality"] = {"skipped": "skipped: --no-quality"} if args.no_quality else run_quality(args, log)
    report["training"] = run_training(args, log) if args.train_modes else []
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["wall_seconds"] = time.time() - started
    report["targets"] = evaluate_targets(report)
    atomic_write_json(out_dir / "benchmark.json", report, indent=1, ensure_ascii=True)
    table = markdown(report)
    atomic_write_text(out_dir / "benchmark.md", table)
    if not args.no_plot:
        report["plot"] = (
            str(out_dir / "decode_ms_per_step.png") if plot(report, out_dir / "decode_ms_per_step.png") else None
        )
    log(table)
    log(f"wrote {out_dir / 'benchmark.json'} and {out_dir / 'benchmark.md'} in {meta['wall_seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
