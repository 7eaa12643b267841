"""Clock readings: run summaries, memory bandwidth, one forced-length generate call, the encoder alone, and how often
the encoder and the cross-attention k/v projections run inside one generate call."""

import statistics
import time

import torch


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
