"""Serving benchmark: which CPU path decodes fastest at what quality, compiled static-cache decoding next to eager and
BART, and translate.py's throughput against a plain loop. Entry point: scripts/benchmark_serving.py.

Three parts, each interleaving what it compares inside every repeat (so load changes on a shared machine hit all
alike; compare ratios within one run):
- `candidates`: the CPU backends of `xlm_swcm_hf.inference` plus compiled fp32/int8 and bf16 weights, each also
  decoding as one target language with a 20,000-row output vocabulary (`+vocab`), and the peers: BART of the same
  shape in PyTorch and in CTranslate2 int8; at random full-size weights: ms per token (greedy, forced length, batch 1
  and 8) against the weights-read bounds, resident memory (a fresh process each), conversion time; then
  quality on a trained model (the demo's): test NLL per token, chrF of greedy outputs, share of outputs identical to
  fp32's.
- `compiled`: `generate(cache_implementation="static")` with a `torch.compile(fullgraph=True)` forward, for this model
  and for BART of the same shape, against their eager (dynamic cache) paths and this model without a cache; greedy
  batch 1 and 8 and beam 5; the compile time apart from the steady ms per token.
- `throughput`: `translation.translate_texts` (length-sorted batches) against a loop of `generate` calls over the
  input in its order at the same batch size, on the trained model's test sources.
- `bulk` (named in --parts, not run by default): translate.py past one process: 2 processes under torchrun against 1,
  the batching engine against the plain loop, and peak resident memory on 10K against 1M lines (--bulk-scale smoke for
  seconds), on a tiny random model and generated input.

Modules: settings (what is compared, targets), measure (CPU paths, memory, quality), peers (BART, CTranslate2),
decoding (compiled rows, throughput), bulk (translate.py in child processes), report (targets, chosen path,
markdown), cli. Not part of the Hub remote code. See docs/benchmark.md ("Serving") for how to read it,
docs/translate.md ("How fast") for bulk.
"""

from .cli import main, merge_parts, parse_args
from .measure import memory_child, nll_per_token, prepare_candidate, run_candidates, run_quality
from .report import choose_path, evaluate_targets, markdown


__all__ = [
    "choose_path",
    "evaluate_targets",
    "main",
    "markdown",
    "memory_child",
    "merge_parts",
    "nll_per_token",
    "parse_args",
    "prepare_candidate",
    "run_candidates",
    "run_quality",
]
