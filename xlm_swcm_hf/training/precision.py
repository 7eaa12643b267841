"""`training.bf16: auto` in a recipe: bf16 autocast where it measures faster than fp32 on the device at hand.

Whether bf16 pays depends on the hardware, not on its name: a CPU with AVX-512 bf16 or AMX tiles runs bf16 matrix
products faster than fp32, one with AVX2 only emulates them (on a 2-core AMD EPYC without AVX-512 this probe measured
bf16 at 16-25x fp32's time, and `make demo` ran 33 s a step, against 1.3 s on a CPU with avx512_bf16). So the choice
is a measurement: a few forward and backward passes of a transformer-sized feed-forward block, fp32 and under bf16
autocast, interleaved; bf16 when it takes at most BF16_MAX_TIME_SHARE of fp32's time. A second or two, once per
process. Each process of a launch measures for itself: CPUs land far from the threshold on either side (bf16 trained
at about 0.5x fp32's time per example on the avx512_bf16 CPU, 16-25x without), so they agree.
On a GPU the choice is whether it supports bf16.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Final


logger = logging.getLogger(__name__)

BF16_MAX_TIME_SHARE: Final[float] = 0.9  # bf16 must be clearly faster, not within noise of fp32
# The probe: a feed-forward block of a small encoder's width over one batch's tokens (one forward and backward
# pass is ~1 GFLOP in fp32: tens of milliseconds on one core, so emulated bf16 costs a second, not minutes).
PROBE_TOKENS, PROBE_HIDDEN, PROBE_INTERMEDIATE, PROBE_REPEATS = 512, 384, 1536, 3


@dataclass(frozen=True)
class Bf16Choice:
    use_bf16: bool
    device: str
    fp32_s: float | None
    bf16_s: float | None
    reason: str

    def summary(self) -> str:
        timing = (
            f" (fp32 {self.fp32_s * 1e3:.0f} ms, bf16 {self.bf16_s * 1e3:.0f} ms a probe step)" if self.fp32_s else ""
        )
        return f"training.bf16=auto -> {'bf16' if self.use_bf16 else 'fp32'} on {self.device}{timing}: {self.reason}"


def _probe_seconds(device: str, bf16: bool, block, inputs) -> float:
    import torch

    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        loss = block(inputs).float().square().mean()
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@functools.cache
def choose_bf16(device: str) -> Bf16Choice:
    """bf16 autocast or fp32 for training on `device` ("cpu" or "cuda"), by measurement (see the module)."""
    import torch

    if device == "cuda":
        # The probe is too small to time a GPU (kernel launches dominate, so its ratio sits near 1 and could differ
        # between the processes of one launch); a GPU with bf16 support runs it natively (`make gpu-check` times it).
        supported = torch.cuda.is_bf16_supported()
        return Bf16Choice(supported, device, None, None, f"this GPU {'supports' if supported else 'lacks'} bf16")
    generator = torch.Generator().manual_seed(0)
    block = torch.nn.Sequential(
        torch.nn.Linear(PROBE_HIDDEN, PROBE_INTERMEDIATE),
        torch.nn.GELU(),
        torch.nn.Linear(PROBE_INTERMEDIATE, PROBE_HIDDEN),
    ).to(device)
    inputs = torch.randn(PROBE_TOKENS, PROBE_HIDDEN, generator=generator).to(device)
    for bf16 in (False, True):  # warm-up: first calls pick kernels and allocate
        _probe_seconds(device, bf16, block, inputs)
    times = {False: [], True: []}
    for _ in range(PROBE_REPEATS):
        for bf16 in (False, True):
            times[bf16].append(_probe_seconds(device, bf16, block, inputs))
    fp32_s, bf16_s = min(times[False]), min(times[True])
    use_bf16 = bf16_s <= BF16_MAX_TIME_SHARE * fp32_s
    reason = f"bf16 takes {bf16_s / fp32_s:.2f}x fp32's time (bf16 when <= {BF16_MAX_TIME_SHARE})"
    choice = Bf16Choice(use_bf16, device, fp32_s, bf16_s, reason)
    logger.warning(choice.summary())
    return choice
