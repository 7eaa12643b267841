#!/usr/bin/env python
"""Evaluate a saved XLM-SWCM folder on a data file: batched generation with the folder's generation_config (options
override it), predictions file, metrics JSON/markdown (overall and per language when the data has a language column;
with the off-target share, xlm_swcm_hf.metrics.off_target_rate, where the language's script is known).
"""

import json
import sys
from pathlib import Path

from xlm_swcm_hf.checks import (
    InputError,
    ScriptArgumentParser,
    check_position_limit,
    cli_main,
    load_tokenizer,
    looks_like_local_path,
    refuse_output_over_inputs,
    require_model_source,
    require_trained_model,
    require_writable_output,
)
from xlm_swcm_hf.data import TASKS, format_examples, load_task_dataset
from xlm_swcm_hf.inference import (
    add_backend_arguments,
    backend_from_arguments,
    check_decoding_memory,
    load_for_inference,
    read_generation_settings,
)
from xlm_swcm_hf.output_vocabulary import add_full_vocabulary_argument
from xlm_swcm_hf.recipe import GENERATION_BATCH_SIZE, DataRecipe
from xlm_swcm_hf.training import evaluate_model, metrics_markdown
from xlm_swcm_hf.training.adapters import adapter_base, is_adapter_folder, load_adapter_model
from xlm_swcm_hf.training.evaluation import check_text_fields
from xlm_swcm_hf.translation import check_language, known_languages


# What marks a folder as a model or a training run: evaluation never writes into one.
MODEL_MARKERS = ("config.json", "adapter_config.json", "model.safetensors")
TRAINING_MARKERS = ("final", "log_history.json", "trainer_state.json")
EVALUATION_FILES = ("predictions.jsonl", "metrics.json", "metrics.md")


def default_output(model: str, data: str) -> Path:
    """Beside the model folder, never inside it (a pushed folder would carry the evaluation)."""
    model_path = Path(model)
    name = model_path.name if model_path.is_dir() else model.replace("/", "--")
    parent = model_path.parent if model_path.is_dir() else Path(".")
    return parent / f"{name}-eval-{Path(data).stem}"


def check_output(output: Path, model: str, overwrite: bool, data: str | None = None) -> None:
    """The evaluation's folder: never a model folder, a training run's folder or a folder inside one, nor one that
    holds the --data file (--overwrite or not); an earlier evaluation is replaced only with --overwrite."""
    require_writable_output(output, "--output")
    refuse_output_over_inputs(output, "--output", {"--data": data})
    resolved = output.resolve()
    if looks_like_local_path(model):
        model_folder = Path(model).resolve()
        if resolved == model_folder or model_folder in resolved.parents:
            raise InputError(
                f"--output {output} is inside the model folder {model}; evaluation never writes into a model "
                "folder (a pushed folder would carry it). Leave --output out (default: <model>-eval-<data>) or "
                "choose another folder."
            )
    found = [name for name in (*MODEL_MARKERS, *TRAINING_MARKERS) if (resolved / name).exists()]
    found += [path.name for path in resolved.glob("checkpoint-*")][:1]
    if found:
        raise InputError(
            f"--output {output} is a model or training folder (it holds {', '.join(found)}); evaluation never "
            "writes into one. Choose another --output."
        )
    for folder in resolved.parents:
        if any((folder / name).exists() for name in MODEL_MARKERS):
            raise InputError(
                f"--output {output} is inside the model folder {folder}; evaluation never writes into a model "
                "folder. Choose another --output."
            )
    earlier = [name for name in EVALUATION_FILES if (output / name).exists()]
    if earlier and not overwrite:
        raise InputError(
            f"--output {output} holds an earlier evaluation ({', '.join(earlier)}); pass --overwrite to replace "
            "it or choose another --output."
        )


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a saved model folder (or Hub name), or a LoRA adapter folder")
    parser.add_argument("--data", required=True, help="JSONL/CSV/Parquet file")
    parser.add_argument("--task", default="translation", choices=TASKS)
    parser.add_argument("--columns", type=json.loads, default=None, help='e.g. {"source": "text", "target": "summary"}')
    parser.add_argument("--drop-invalid", action="store_true", help="drop rows with a missing or empty field")
    parser.add_argument(
        "--output",
        help="folder for predictions.jsonl and metrics (default: <model>-eval-<data> beside the model folder)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in --output")
    parser.add_argument("--num-beams", type=int, help="default: the folder's generation_config")
    parser.add_argument("--max-new-tokens", type=int, help="default: the folder's generation_config")
    add_full_vocabulary_argument(parser)
    parser.add_argument("--batch-size", type=int, default=GENERATION_BATCH_SIZE)
    parser.add_argument(
        "--max-source-length",
        type=int,
        help=f"source tokens kept (default: {DataRecipe.max_source_length}, or less if the model embeds fewer)",
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    backend = backend_from_arguments(args)
    for name in ("num_beams", "max_new_tokens", "batch_size", "max_source_length"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")

    # The model folder's kind, the output, the lengths, the data and the tokenizer first: cheap, and what is most
    # often wrong. Nothing is loaded or written before they pass.
    adapter = is_adapter_folder(args.model)
    if not adapter:
        require_model_source(args.model, "--model")
    output = Path(args.output) if args.output else default_output(args.model, args.data)
    check_output(output, args.model, args.overwrite, args.data)
    raw = load_task_dataset(args.data, task=None, split="train")
    check_text_fields(raw, args.task, args.columns, where=f"{args.data}: ")
    dataset = format_examples(
        raw,
        args.task,
        args.columns,
        drop_invalid=args.drop_invalid,
        where=f"{args.data}: ",
    )
    if len(dataset) == 0:
        raise InputError(f"{args.data}: no usable rows.")
    base = adapter_base(args.model) if adapter else args.model
    languages = known_languages(args.model) or (known_languages(base) if adapter else None)
    if "lang" in dataset.column_names:  # the target-language tags the rows say they are in
        for row, language in enumerate(dataset["lang"]):
            check_language(language, languages, f"{args.data}: row {row}: column 'lang'")
    require_trained_model(base, "the adapter's base model" if adapter else "--model")
    limit = check_position_limit(
        base,
        "the model",
        {"--max-source-length": args.max_source_length, "--max-new-tokens": args.max_new_tokens},
    )
    max_source_length = args.max_source_length or min(DataRecipe.max_source_length, limit or 10**9)
    config, saved_generation = read_generation_settings(base)
    if config is not None:
        check_decoding_memory(
            config,
            read_generation_settings(args.model)[1] or saved_generation,
            num_beams=args.num_beams,
            sentences=args.batch_size,
            max_new_tokens=args.max_new_tokens,
        )
    tokenizer = load_tokenizer(args.model, sample_texts=list(dataset["source_text"][:200]))

    load_torch_model = None
    if adapter:  # a LoRA adapter folder: its base model with the adapter on top
        load_torch_model = lambda: load_adapter_model(args.model, trust_remote_code=args.trust_remote_code)  # noqa: E731
    model = load_for_inference(
        args.model,
        backend,
        trust_remote_code=args.trust_remote_code,
        onnx_cache=args.onnx_cache,
        load_torch_model=load_torch_model,
    )
    generation = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }
    metrics = evaluate_model(
        model,
        tokenizer,
        dataset,
        output,
        batch_size=args.batch_size,
        max_source_length=max_source_length,
        full_vocabulary=args.full_vocabulary,
        **generation,
    )
    print(metrics_markdown(metrics))
    print(f"wrote {output / 'predictions.jsonl'} and {output / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
