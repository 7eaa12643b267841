"""The benchmark's targets, each with its value from the measured report, its goal and whether it is met (None where
the measurement behind it was not taken)."""


def find_row(rows, **match):
    """The first row whose fields equal `match`, or None."""
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def target(name: str, value, goal: str, met: bool, note: str = "") -> dict:
    return {"target": name, "value": value, "goal": goal, "met": None if value is None else bool(met), "note": note}


def evaluate_targets(report: dict) -> list[dict]:
    return [
        *_cache_targets(report),
        *_bart_and_bound_targets(report),
        *_weight_format_targets(report),
        *_training_targets(report),
    ]


def _median_ms(decode: list[dict], config: str, impl: str, length) -> float | None:
    row = find_row(decode, config=config, impl=impl, new_tokens=length)
    return row["ms_per_step"]["median_ms"] if row else None


def _cache_targets(report: dict) -> list[dict]:
    """What the KV cache saves: no-cache / cached at the lengths the targets name."""
    decode, targets = report["decode"], []
    for config, length, goal in (("greedy_b1", 128, 3), ("greedy_b1", 256, 6), ("greedy_b8", 128, 9), ("beam5", 64, 4)):
        cached, nocache = _median_ms(decode, config, "cached", length), _median_ms(decode, config, "no_cache", length)
        value = nocache / cached if cached and nocache else None
        name = f"{config} {length} tokens: no-cache / cached"
        targets.append(target(name, value, f">= {goal}x", value is not None and value >= goal))
    return targets


def _bart_and_bound_targets(report: dict) -> list[dict]:
    """A cached greedy step against BART's (at most the weights-read ratio) and against the memory-bandwidth bound."""
    decode = report["decode"]
    ratio = report["weights_read_per_token"]["ratio_swcm_over_bart"]
    b1 = sorted({r["new_tokens"] for r in decode if r["config"] == "greedy_b1" and r["impl"] == "bart"})
    length = 128 if 128 in b1 else (b1[-1] if b1 else None)
    ours, bart = (
        (_median_ms(decode, "greedy_b1", "cached", length), _median_ms(decode, "greedy_b1", "bart", length))
        if length
        else (None, None)
    )
    value = ours / bart if ours and bart else None
    versus_bart = target(
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
    versus_bound = target(
        f"greedy_b1 {length} tokens fp32 (encoder excluded) / bandwidth bound",
        value,
        "<= 1.6",
        value is not None and value <= 1.6,
        f"bound {bound_ms:.1f} ms/token",
    )
    return [versus_bart, versus_bound]


def _weight_format_targets(report: dict) -> list[dict]:
    """bf16 weights and int8 against fp32: speed, and int8's quality on the demo's trained model."""
    ablation = report.get("ablations", [])
    fp32 = find_row(ablation, config="greedy_b1", variant="default")
    bf16 = find_row(ablation, config="greedy_b1", variant="bf16_weights")
    value = bf16["ms_per_step"]["median_ms"] / fp32["ms_per_step"]["median_ms"] if fp32 and bf16 else None
    targets = [target("bf16 weights / fp32, greedy b1", value, "<= 0.6", value is not None and value <= 0.6)]

    quant = report.get("quantization") or {"rows": []}
    fp32, int8 = find_row(quant["rows"], candidate="fp32"), find_row(quant["rows"], candidate="int8")
    value = None
    if fp32 and int8 and "greedy_b1" in fp32 and "greedy_b1" in int8:
        value = int8["greedy_b1"]["median_ms"] / fp32["greedy_b1"]["median_ms"]
    name = f"int8 / fp32 ms per step, greedy b1 {quant.get('new_tokens')} tokens"
    targets.append(target(name, value, "<= 0.5", value is not None and value <= 0.5, f"{report['meta']['size']} size"))
    quality = (report.get("quality") or {}).get("int8")
    note = "skipped: no trained model (see the quality line)" if "skipped" in (report.get("quality") or {}) else ""
    value = quality["chrf_delta"] if quality else None
    name = "int8 chrF - fp32 chrF (demo model, greedy)"
    targets.append(target(name, value, ">= -0.5", value is not None and value >= -0.5, note))
    value = quality["identical_outputs"] if quality else None
    name = "int8 greedy outputs identical to fp32 (demo model)"
    targets.append(target(name, value, ">= 0.90", value is not None and value >= 0.9))
    return targets


def _training_targets(report: dict) -> list[dict]:
    """The training step against the minimal yardstick, bf16 autocast's speed-up, checkpointing's memory cut."""
    train = {row["mode"]: row for row in report.get("training", []) if "error" not in row}
    t = lambda mode: train[mode]["step"]["median_ms"] if mode in train else None
    value = t("fp32") / t("minimal_fp32") if t("fp32") and t("minimal_fp32") else None
    name = "training step fp32 / minimal implementation"
    targets = [target(name, value, "<= 1.1", value is not None and value <= 1.1)]
    value = t("fp32") / t("bf16_autocast") if t("fp32") and t("bf16_autocast") else None
    name = "training step speed-up from bf16 autocast"
    targets.append(target(name, value, ">= 1.6x", value is not None and value >= 1.6))
    value = None
    if "fp32" in train and "grad_checkpointing" in train:
        base = train["fp32"]["activation_bytes_estimate"]
        value = 1 - train["grad_checkpointing"]["activation_bytes_estimate"] / base if base > 0 else None
    name = "activation memory cut by gradient checkpointing"
    targets.append(target(name, value, ">= 40%", value is not None and value >= 0.4))
    return targets
