"""Quantized CPU inference measured: fp32 against bf16 weights and xlm_swcm_hf.quantization's methods, by ms per step,
token agreement with fp32, stored weight bytes, conversion time and (each in its own process) resident memory."""

import copy
import gc
import time

import torch

from .memory import rss_bytes, run_child
from .models import build_swcm, make_source
from .settings import DECODE_CONFIGS, SIZES
from .timing import generate_once, summary


def make_candidate(base, name: str):
    """A copy of the fp32 `base` model turned into candidate `name` (bf16 weights or a quantization method)."""
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
        "rss_bytes": rss_bytes("VmRSS"),
        "peak_rss_bytes": rss_bytes("VmHWM"),
        "weight_bytes": weight_bytes(model),
    }


def run_quant_memory(args, names: list[str], log) -> dict:
    """Resident memory of each candidate, each in its own process (so one's memory is not another's)."""
    rows = {}
    for name in names:
        row, error = run_child(["--quant-child", name, "--size", args.size, "--threads", str(torch.get_num_threads())])
        if row is None:
            rows[name] = {"error": error}
            log(f"  memory {name}: FAILED\n{error}")
            continue
        rows[name] = row
        log(f"  memory {name:26s}: RSS {rows[name]['rss_bytes'] / 2**20:8.0f} MiB")
    return rows


def run_quantization(args, base, log) -> dict:
    """fp32 vs every candidate: greedy batch 1 and 8 at one forced length, interleaved inside each repeat; token
    agreement with fp32 on these random-weight sources; conversion time; weights and resident memory."""
    names, rows = _convert_candidates(args, base, log)
    length = args.quant_length
    for config_name in ("greedy_b1", "greedy_b8"):
        _time_candidates(args, config_name, names, rows, log)
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


def _convert_candidates(args, base, log) -> tuple[list[str], dict]:
    """The candidates that convert (each row holding its model), and a row for every one asked for."""
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
    return names, rows


def _time_candidates(args, config_name: str, names: list[str], rows: dict, log) -> None:
    """One config's ms per step and token agreement with fp32 for every candidate, into its row."""
    spec = DECODE_CONFIGS[config_name]
    source = make_source(args.size, spec["batch"])
    length, outputs = args.quant_length, {}
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
