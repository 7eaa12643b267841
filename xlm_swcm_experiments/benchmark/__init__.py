"""Decode-latency, encoder and training-step benchmark for XLM-SWCM (CPU). Entry point: scripts/benchmark.py.

Compares in one run: this model with its KV cache, this model with `use_cache=False` (the reference's approach: the
whole decoder re-runs over the prefix each step) and transformers' `BartForConditionalGeneration` at matched
width/depth. All models have random weights; lengths are forced (min_new_tokens = max_new_tokens). Not part of the
Hub remote code. See docs/benchmark.md for how to read the output.

The package, one job a module; measuring apart from rendering:
- `settings.py`: sizes and their workloads, decode configs, implementations, training modes, quantization candidates;
- `models.py`: the models at random weights (ours, BART of the same shape), the weights a cached step reads, sources;
- `minimal.py`: the training-step yardstick, a minimal plain-PyTorch model of the same architecture;
- `timing.py`: run summaries, memory bandwidth, one generate call, the encoder alone, calls per generate;
- `memory.py`: resident memory, and a measurement in a fresh process of its own;
- `decode.py`: cached vs no-cache vs BART, the fast paths on and off, torch.compile;
- `quantization.py` and `quality.py`: the quantized CPU candidates, and their quality on the demo's trained model;
- `training.py`: training steps by mode (time, peak memory, activations);
- `targets.py`: each target's value, goal and whether it is met, from the measured record;
- `report.py`: benchmark.md and the plot from the record (the same record renders the same text: `--render-only`);
- `cli.py`: the options, the run in order, the files written.

The names below stay importable from `xlm_swcm_experiments.benchmark` (the GPU check and the serving benchmark
build on them).
"""

from .cli import build_parser, main, measure, parse_args, render_only
from .decode import run_ablations, run_decode, try_compile
from .memory import _rss_bytes, reset_peak_rss, rss_bytes, run_child
from .minimal import MinimalSWCM
from .models import build_bart, build_swcm, count, make_source, swcm_config, weights_read_per_token
from .quality import read_parallel_jsonl, run_quality
from .quantization import make_candidate, quant_memory_child, run_quantization, token_agreement, weight_bytes
from .report import markdown, plot, quantization_markdown
from .settings import DECODE_CONFIGS, DEMO_MODEL, DEMO_TEST, IMPLS, QUANT_CANDIDATES, SIZES, TRAIN_MODES
from .targets import evaluate_targets, find_row
from .timing import count_calls, encoder_time, generate_once, measure_bandwidth, summary
from .training import run_training, train_child


__all__ = [
    "DECODE_CONFIGS",
    "DEMO_MODEL",
    "DEMO_TEST",
    "IMPLS",
    "QUANT_CANDIDATES",
    "SIZES",
    "TRAIN_MODES",
    "MinimalSWCM",
    "_rss_bytes",
    "build_bart",
    "build_parser",
    "build_swcm",
    "count",
    "count_calls",
    "encoder_time",
    "evaluate_targets",
    "find_row",
    "generate_once",
    "main",
    "make_candidate",
    "make_source",
    "markdown",
    "measure",
    "measure_bandwidth",
    "parse_args",
    "plot",
    "quant_memory_child",
    "quantization_markdown",
    "read_parallel_jsonl",
    "render_only",
    "reset_peak_rss",
    "rss_bytes",
    "run_ablations",
    "run_child",
    "run_decode",
    "run_quality",
    "run_quantization",
    "run_training",
    "summary",
    "swcm_config",
    "token_agreement",
    "train_child",
    "try_compile",
    "weight_bytes",
    "weights_read_per_token",
]
