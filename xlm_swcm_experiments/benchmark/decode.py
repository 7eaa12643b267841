"""Decoding measured: cached vs no-cache vs BART per config and length, each fast path on and off, torch.compile."""

import torch

from .models import build_swcm, make_source
from .settings import DECODE_CONFIGS
from .timing import generate_once, summary


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
    return _ablation_rows(results, length)


def _ablation_rows(results: dict, length: int) -> list[dict]:
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
