#!/usr/bin/env python
"""Back-translate monolingual text into synthetic training pairs: a reverse-direction XLM-SWCM folder (e.g. ug -> en)
translates every row of --input (text, .jsonl or .parquet of --language text) into --source-language, and each row
becomes a pair in the training format (source: the synthetic translation tagged "ug: ", target: the real text, lang,
src_lang, origin "back-translation", origin_model) in --output (.jsonl or .parquet). The same block engine as
translate.py: streamed, resumable, under torchrun / accelerate launch (docs/translate.md#back-translation).
"""

import sys

from xlm_swcm_hf.back_translation import back_translate_file, check_pairs_output
from xlm_swcm_hf.bulk_translation import (
    ProcessGroup,
    check_blocks,
    check_output,
    parts_folder,
    run_record,
    sample_sources,
    scan_input,
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
from xlm_swcm_hf.recipe import GENERATION_BATCH_SIZE, TRANSLATION_BLOCK_SIZE, DataRecipe
from xlm_swcm_hf.translation import check_batching, check_language, known_languages, model_identity, tagged


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a trained reverse-direction XLM-SWCM folder or Hub name")
    parser.add_argument("--input", required=True, help="monolingual text: a text file (one per line), .jsonl, .parquet")
    parser.add_argument("--output", required=True, help="the pairs: a .jsonl or .parquet file")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output (and discard another run's blocks)"
    )
    parser.add_argument(
        "--text-column", default=DataRecipe.text_column,
        help=f"JSONL/Parquet: the text field (default: {DataRecipe.text_column})",
    )  # fmt: skip
    parser.add_argument("--language", required=True, help="the monolingual text's language: the pairs' target (ug)")
    parser.add_argument(
        "--source-language", required=True,
        help='the synthetic sources\' language: the tag "xx: " the reverse model translates into (one it knows)',
    )  # fmt: skip
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
    check_language(args.language, None, "--language")
    languages = known_languages(args.model)
    check_language(args.source_language, languages, "--source-language")
    check_pairs_output(args.output)
    # a monolingual row's `lang` is its own language, not a tag of the reverse model: not checked against the model
    source = scan_input(args.input, args.text_column, None)
    output = check_output(args.output, source.path, args.overwrite, args.model)
    require_trained_model(args.model, "--model")
    if languages is None:
        print(
            f"note: {args.model} records no target languages (its README.md has no language list), so "
            f"--source-language {args.source_language} is not checked against them.",
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
            model_identity(args.model), backend, source, args.text_column, args.source_language, generation
        )
        check_blocks(parts_folder(output), record, args.overwrite)
    sample = [tagged(text, args.source_language) for text in sample_sources(source.path, args.text_column)]
    tokenizer = load_tokenizer(args.model, sample_texts=sample)

    group = ProcessGroup()  # the launch's processes (torchrun / accelerate launch), or this one alone
    model = load_for_inference(
        args.model, backend, trust_remote_code=args.trust_remote_code, onnx_cache=args.onnx_cache
    )
    if backend == "torch" and group.device is not None and group.device.type != "cpu":
        model = model.to(group.device)  # each process its own GPU
    stats, counts = back_translate_file(
        model,
        tokenizer,
        args.input,
        args.output,
        language=args.language,
        source_language=args.source_language,
        text_column=args.text_column,
        batch_size=args.batch_size,
        max_tokens_per_batch=args.max_tokens_per_batch,
        block_size=args.block_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        model_source=args.model,
        group=group,
        summary=source,  # checked and hashed above: not read again
        **generation,
    )
    print(stats.summary() if group.world == 1 else f"process {group.rank} of {group.world}: {stats.summary()}")
    if group.is_main:
        print(f"{counts.summary()}: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
