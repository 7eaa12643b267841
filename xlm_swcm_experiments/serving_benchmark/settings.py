"""The serving benchmark's settings: what it compares, the targets it judges, how it compiles."""

from __future__ import annotations

import torch

from xlm_swcm_hf.inference import BACKENDS


CANDIDATES = (*BACKENDS, "compiled", "compiled-int8")
REFERENCE = "torch"
COMPILED_IMPLS = ("eager", "no_cache", "compiled", "bart", "bart_compiled")
PARTS = ("candidates", "quality", "compiled", "throughput", "bulk")
DEFAULT_PARTS = PARTS[:4]  # bulk (translate.py in child processes, minutes on 1M lines) runs when named
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# The targets of the issue that asked for this benchmark (ratios inside one run).
TARGET_SPEED_RATIO = 0.30  # chosen path / fp32 eager ms per token, batch 1
TARGET_NLL_DELTA = 0.02  # nats per token
TARGET_CHRF_DELTA = 0.5
TARGET_BOUND_RATIO = 1.6  # fp32 (eager or compiled) ms per token / the weights-read bound
TARGET_GPU_COMPILED_RATIO = 0.3
TARGET_THROUGHPUT_RATIO = 2.0
TARGET_PROCESS_RATIO = 1.8  # translate.py sentences/s, 2 processes x 1 thread / 1 process x 1 thread
TARGET_MEMORY_RATIO = 1.2  # translate.py peak resident memory, 1M lines / 10K lines


def fresh_compiles() -> None:
    """Compile times as a user's first run sees them: inductor's on-disk and in-memory graph caches off, so a graph
    compiled for one part (or one model) is not reused by the next."""
    import torch._inductor.config

    torch._inductor.config.fx_graph_cache = False
    torch._inductor.config.autotune_local_cache = False


def forget_compiled() -> None:
    """Called as each part starts. Dynamo keeps compiled graphs per code object and guards on shapes, not on the
    module instance, so without this a part's compiled model would reuse the graphs an earlier part compiled for
    another instance of the same class, and its first call would not include compiling."""
    torch.compiler.reset()


def short_error(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def compile_forward(model) -> None:
    """`torch.compile(fullgraph=True)` of the forward, for every decoding mode (transformers' beam search calls the
    forward uncompiled whatever its compile config); on CUDA with CUDA graphs ("reduce-overhead")."""
    mode = "reduce-overhead" if next(model.parameters(), torch.empty(0)).is_cuda else None
    model.forward = torch.compile(model.forward, fullgraph=True, dynamic=False, mode=mode)
