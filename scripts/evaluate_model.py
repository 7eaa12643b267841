#!/usr/bin/env python
"""Evaluate a saved XLM-SWCM folder on a data file: batched beam search, predictions file, metrics JSON/markdown
(overall and per language when the data has a language column)."""

import argparse
import json
import sys
from pathlib import Path

from xlm_swcm_hf.data import format_examples, load_task_dataset
from xlm_swcm_hf.training import evaluate_model, metrics_markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a saved model folder (or Hub name)")
    parser.add_argument("--data", required=True, help="JSONL/CSV/Parquet file")
    parser.add_argument("--task", default="translation", choices=["translation", "summarization", "mrc"])
    parser.add_argument("--columns", type=json.loads, default=None, help='e.g. {"source": "text", "target": "summary"}')
    parser.add_argument("--output", help="folder for predictions.jsonl and metrics (default: <model>/eval-<data name>)")
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-source-length", type=int, default=256)
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    args = parser.parse_args(argv)

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if not args.trust_remote_code:
        import xlm_swcm_hf  # noqa: F401  registers the Auto classes
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    dataset = format_examples(load_task_dataset(args.data, task=None, split="train"), args.task, args.columns)
    output = Path(args.output or Path(args.model) / f"eval-{Path(args.data).stem}")
    metrics = evaluate_model(
        model, tokenizer, dataset, output, batch_size=args.batch_size, max_source_length=args.max_source_length,
        generation={"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens},
    )
    print(metrics_markdown(metrics))
    print(f"wrote {output / 'predictions.jsonl'} and {output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
