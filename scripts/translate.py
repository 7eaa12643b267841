#!/usr/bin/env python
"""Translate a file with a trained XLM-SWCM folder: plain text (one source per line), JSONL (a `.jsonl` input; the
source field is --source-column) or Parquet (.parquet). Streamed in blocks sorted by length, merged in the input's
order into a temporary name and renamed into place; finished blocks stay in <output>.parts/, so a rerun with the same
arguments resumes (automatic). Under `torchrun --nproc-per-node N` or `accelerate launch` the processes share the
blocks (docs/translate.md).
"""

import sys

from xlm_swcm_hf.bulk_translation import (
    ProcessGroup,
    check_blocks,
    check_output,
    parts_folder,
    run_record,
    sample_sources,
    scan_input,
    translate_file,
)
from xlm_swcm_hf.checks import (
    InputError,
    ScriptArgumentParser,
    check_position_limit,
    cli_main,
    load_tokenizer,
    require_trained_model,
)
from xlm_swcm_hf.inference import (
    add_backend_arguments,
    backend_from_arguments,
    check_decoding_memory,
    load_for_inference,
    read_generation_settings,
)
from xlm_swcm_hf.recipe import GENERATION_BATCH_SIZE, TRANSLATION_BLOCK_SIZE
from xlm_swcm_hf.translation import check_batching, check_language, known_languages, model_identity, tagged


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a trained XLM-SWCM folder or Hub name")
    parser.add_argument("--input", required=True, help="a text file (one source per line), a .jsonl or a .parquet")
    parser.add_argument(
        "--output", required=True, help="the output: text (one translation per line), or .jsonl / .parquet (the rows "
        "with a translation field)"
    )  # fmt: skip
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output (and discard another run's blocks)"
    )
    parser.add_argument("--source-column", default="source", help="JSONL/Parquet: the source field (default: source)")
    parser.add_argument(
        "--target-language", help='prefix every source with the target-language tag "xx: " (one the model knows)'
    )
    parser.add_argument("--num-beams", type=int, help="default: the folder's generation_config")
    parser.add_argument("--max-new-tokens", type=int, help="default: the folder's generation_config")
    batching = parser.add_argument_group("batching (one of)")
    batching.add_argument("--batch-size", type=int, help=f"sentences per batch (default: {GENERATION_BATCH_SIZE})")
    batching.add_argument("--max-tokens-per-batch", type=int, help="padded source tokens per batch")
    parser.add_argument(
        "--block-size", type=int, help=f"rows per block: sorted by length, resumed, dealt to processes (default: "
        f"{TRANSLATION_BLOCK_SIZE})"
    )  # fmt: skip
    add_backend_arguments(parser)
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("num_beams", "max_new_tokens", "block_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    check_batching(args.batch_size, args.max_tokens_per_batch)
    backend = backend_from_arguments(args)

    # Input, output, model folder, languages, lengths, memory and the resume record first: nothing is loaded or
    # written before they pass.
    languages = known_languages(args.model)
    if args.target_language is not None:
        check_language(args.target_language, languages, "--target-language")
    source = scan_input(args.input, args.source_column, languages)
    output = check_output(args.output, source.path, args.overwrite, args.model)
    require_trained_model(args.model, "--model")
    if args.target_language is not None and languages is None:
        print(
            f"note: {args.model} records no target languages (its README.md has no language list), so "
            f"--target-language {args.target_language} is not checked against them.",
            file=sys.stderr,
        )
    check_position_limit(args.model, "the model", {"--max-new-tokens": args.max_new_tokens})
    generation = {
        key: value
        for key, value in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens))
        if value is not None
    }
    config, saved_generation = read_generation_settings(args.model)
    if config is not None:  # a token budget's batches are known once tokenized: translate_file checks them again
        sentences = args.batch_size or (1 if args.max_tokens_per_batch else GENERATION_BATCH_SIZE)
        check_decoding_memory(config, saved_generation, sentences=sentences, **generation)
        record = run_record(
            model_identity(args.model), backend, source, args.source_column, args.target_language, generation
        )
        check_blocks(parts_folder(output), record, args.overwrite)
    sample = [tagged(text, args.target_language) for text in sample_sources(source.path, args.source_column)]
    tokenizer = load_tokenizer(args.model, sample_texts=sample)

    group = ProcessGroup()  # the launch's processes (torchrun / accelerate launch), or this one alone
    model = load_for_inference(
        args.model, backend, trust_remote_code=args.trust_remote_code, onnx_cache=args.onnx_cache
    )
    if backend == "torch" and group.device is not None and group.device.type != "cpu":
        model = model.to(group.device)  # each process its own GPU
    stats = translate_file(
        model,
        tokenizer,
        args.input,
        args.output,
        source_column=args.source_column,
        target_language=args.target_language,
        batch_size=args.batch_size,
        max_tokens_per_batch=args.max_tokens_per_batch,
        block_size=args.block_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        model_source=args.model,
        known_languages=languages,
        group=group,
        summary=source,  # checked and hashed above: not read again
        **generation,
    )
    print(stats.summary() if group.world == 1 else f"process {group.rank} of {group.world}: {stats.summary()}")
    if group.is_main:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
