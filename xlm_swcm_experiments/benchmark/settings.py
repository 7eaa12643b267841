"""What the benchmark measures: model sizes with their workloads, decode configurations, implementations, training
modes, quantization candidates and where the demo's trained model lives."""

from pathlib import Path


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
WORKLOAD_KEYS = ("source_length", "train_batch", "train_target_length")  # the rest of a size is model dimensions
DECODE_CONFIGS = {
    "greedy_b1": dict(batch=1, beams=1),
    "greedy_b8": dict(batch=8, beams=1),
    "beam5": dict(batch=1, beams=5),
}
IMPLS = ("cached", "no_cache", "bart")
TRAIN_MODES = ("fp32", "bf16_autocast", "grad_checkpointing", "minimal_fp32")
# Candidates beside the fp32 baseline: "bf16" (weights cast to bfloat16) and xlm_swcm_hf.quantization's methods.
QUANT_CANDIDATES = ("bf16", "int8", "torchao-int8", "torchao-int8-weight-only", "torchao-int4-weight-only")
DEMO_MODEL = Path("artifacts/demo/swcm/final")
DEMO_TEST = Path("artifacts/demo-data/test.jsonl")
