"""Training steps measured (AdamW): fp32, bf16 autocast, gradient checkpointing and the minimal yardstick, each mode in
a fresh process by default so its peak memory is its own: step time, peak RSS, memory the forward keeps."""

import gc
import time

import torch

from .memory import reset_peak_rss, rss_bytes, run_child
from .minimal import MinimalSWCM
from .models import count, make_source, swcm_config
from .settings import SIZES
from .timing import summary


def train_child(size: str, mode: str, repeats: int) -> dict:
    """One training configuration in a fresh process: step time and peak RSS above the pre-step baseline."""
    spec = SIZES[size]
    model, step_loss = _training_model(size, mode)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    times, rows, reset_ok = _measure_steps(mode, step_loss, optimizer, repeats)
    best = min(rows, key=lambda row: row["step_peak"])
    return {
        "mode": mode,
        "batch": spec["train_batch"],
        "source_length": spec["source_length"],
        "target_length": spec["train_target_length"],
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


def _training_model(size: str, mode: str):
    """The model in training mode and a function computing its loss on a fixed random batch."""
    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    torch.manual_seed(0)
    config = swcm_config(size)
    config._attn_implementation = "sdpa"
    batch, target = SIZES[size]["train_batch"], SIZES[size]["train_target_length"]
    source = make_source(size, batch)
    labels = torch.randint(5, config.vocab_size, (batch, target), generator=torch.Generator().manual_seed(2))
    if mode == "minimal_fp32":
        model = MinimalSWCM(config).train()
        decoder_input_ids = torch.cat([torch.zeros(batch, 1, dtype=torch.long), labels[:, :-1]], dim=1)
        return model, lambda: model(source["input_ids"], source["attention_mask"], decoder_input_ids, labels)
    model = XLMSWCMForConditionalGeneration(config).train()
    if mode == "grad_checkpointing":
        enable = getattr(model, "activation_checkpointing_enable", None)  # the transformers >= 5.x name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, lambda: model(**source, labels=labels).loss


def _measure_steps(mode: str, step_loss, optimizer, repeats: int) -> tuple[list[float], list[dict], bool]:
    """A warm-up step (it allocates AdamW's state), then `repeats` timed steps with their memory readings."""
    memory = {}

    def step():
        optimizer.zero_grad(set_to_none=True)
        if mode == "bf16_autocast":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = step_loss()
        else:
            loss = step_loss()
        memory["after_forward"] = rss_bytes("VmRSS")  # what the forward keeps for the backward
        memory["forward_peak"] = rss_bytes("VmHWM")
        loss.backward()
        memory["backward_peak"] = rss_bytes("VmHWM")
        optimizer.step()
        return loss.item()

    step()  # warm-up: allocates AdamW state
    times, rows, reset_ok = [], [], False
    for _ in range(repeats):
        optimizer.zero_grad(set_to_none=True)
        gc.collect()
        baseline = rss_bytes("VmRSS")
        reset_ok = reset_peak_rss()
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        rows.append(dict(memory, baseline=baseline, step_peak=rss_bytes("VmHWM")))
    return times, rows, reset_ok


def run_training(args, log) -> list[dict]:
    rows = []
    for mode in args.train_modes:
        if args.train_in_process:  # quick (tests): memory figures then include what earlier modes left behind
            row = train_child(args.size, mode, args.train_repeats)
            rows.append(row)
            log(f"  train {mode:20s}: {row['step']['median_ms'] / 1e3:7.2f} s/step (in process)")
            continue
        # A fresh process per mode, so its peak memory is its own.
        options = ["--train-child", mode, "--size", args.size, "--train-repeats", str(args.train_repeats)]
        row, error = run_child([*options, "--threads", str(torch.get_num_threads())])
        if row is None:
            rows.append({"mode": mode, "error": error})
            log(f"  train {mode}: FAILED\n{error}")
            continue
        rows.append(row)
        log(
            f"  train {mode:20s}: {row['step']['median_ms'] / 1e3:7.2f} s/step, peak RSS "
            f"{row['peak_rss_bytes'] / 2**30:.2f} GiB, activations ~{row['activation_bytes_estimate'] / 2**30:.2f} GiB"
        )
    return rows
