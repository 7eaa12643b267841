#!/usr/bin/env python
"""Evaluate a saved XLM-SWCM folder on a data file: batched generation with the folder's generation_config (options
override it), predictions file, metrics JSON/markdown (overall and per language when the data has a language column).
"""

import argparse
import json
import sys
from pathlib import Path

from xlm_swcm_hf.checks import InputError, cli_main, load_tokenizer, require_model_source
from xlm_swcm_hf.data import TASKS, format_examples, load_task_dataset
from xlm_swcm_hf.quantization import quantize_for_cpu
from xlm_swcm_hf.recipe import DataRecipe
from xlm_swcm_hf.training import evaluate_model, metrics_markdown
from xlm_swcm_hf.training.adapters import is_adapter_folder, load_adapter_model


def default_output(model: str, data: str) -> Path:
    """Beside the model folder, never inside it (a pushed folder would carry the evaluation)."""
    model_path = Path(model)
    name = model_path.name if model_path.is_dir() else model.replace("/", "--")
    parent = model_path.parent if model_path.is_dir() else Path(".")
    return parent / f"{name}-eval-{Path(data).stem}"


@cli_main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a saved model folder (or Hub name), or a LoRA adapter folder")
    parser.add_argument("--data", required=True, help="JSONL/CSV/Parquet file")
    parser.add_argument("--task", default="translation", choices=TASKS)
    parser.add_argument("--columns", type=json.loads, default=None, help='e.g. {"source": "text", "target": "summary"}')
    parser.add_argument("--drop-invalid", action="store_true", help="drop rows with a missing or empty field")
    parser.add_argument(
        "--output",
        help="folder for predictions.jsonl and metrics (default: <model>-eval-<data> beside the model folder)",
    )
    parser.add_argument("--num-beams", type=int, help="default: the folder's generation_config")
    parser.add_argument("--max-new-tokens", type=int, help="default: the folder's generation_config")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-source-length", type=int, default=DataRecipe.max_source_length)
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8: quantize for CPU inference after loading (xlm_swcm_hf.quantization.quantize_for_cpu)",
    )
    args = parser.parse_args(argv)
    for name in ("num_beams", "max_new_tokens", "batch_size", "max_source_length"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")

    # Data and tokenizer first: cheap, and what is most often wrong.
    adapter = is_adapter_folder(args.model)
    if not adapter:
        require_model_source(args.model, "--model")
    loaded = format_examples(
        load_task_dataset(args.data, task=None, split="train"),
        args.task,
        args.columns,
        drop_invalid=args.drop_invalid,
        where=f"{args.data}: ",
    )
    dataset = loaded[0] if args.drop_invalid else loaded
    if len(dataset) == 0:
        raise InputError(f"{args.data}: no usable rows.")
    tokenizer = load_tokenizer(args.model, sample_texts=list(dataset["source_text"][:200]))

    from transformers import AutoModelForSeq2SeqLM

    if not args.trust_remote_code:
        import xlm_swcm_hf  # noqa: F401  registers the Auto classes
    if adapter:  # a LoRA adapter folder: its base model with the adapter on top
        model = load_adapter_model(args.model, trust_remote_code=args.trust_remote_code)
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    if args.quantize != "none":
        model = quantize_for_cpu(model, args.quantize)
    generation = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }
    output = Path(args.output) if args.output else default_output(args.model, args.data)
    metrics = evaluate_model(
        model,
        tokenizer,
        dataset,
        output,
        batch_size=args.batch_size,
        max_source_length=args.max_source_length,
        **generation,
    )
    print(metrics_markdown(metrics))
    print(f"wrote {output / 'predictions.jsonl'} and {output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
