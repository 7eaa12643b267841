#!/usr/bin/env python
"""Translate a file with a trained XLM-SWCM folder: plain text (one source per line) or JSONL (a `.jsonl` input; the
source field is --source-column). Batched by length, written in the input's order to a temporary name and renamed
into place; finished batches go to <output>.partial.jsonl, so a rerun with the same model (by content), input and
options resumes (automatic); another run's resume file is refused unless --overwrite. Ctrl-C keeps the finished batches.
"""

import sys

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
from xlm_swcm_hf.recipe import GENERATION_BATCH_SIZE
from xlm_swcm_hf.translation import (
    check_batching,
    check_language,
    check_output,
    check_row_languages,
    check_sidecar,
    known_languages,
    model_identity,
    read_sources,
    resume_facts,
    sidecar_path,
    tagged,
    translate_file,
)


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="a trained XLM-SWCM folder or Hub name")
    parser.add_argument("--input", required=True, help="a text file (one source per line) or a .jsonl file")
    parser.add_argument("--output", required=True, help="the output file (text, or JSONL with a translation field)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an existing --output (and discard another run's resume file)"
    )
    parser.add_argument("--source-column", default="source", help="JSONL input: the source field (default: source)")
    parser.add_argument(
        "--target-language", help='prefix every source with the target-language tag "xx: " (one the model knows)'
    )
    parser.add_argument("--num-beams", type=int, help="default: the folder's generation_config")
    parser.add_argument("--max-new-tokens", type=int, help="default: the folder's generation_config")
    batching = parser.add_argument_group("batching (one of)")
    batching.add_argument("--batch-size", type=int, help=f"sentences per batch (default: {GENERATION_BATCH_SIZE})")
    batching.add_argument("--max-tokens-per-batch", type=int, help="padded source tokens per batch")
    add_backend_arguments(parser)
    parser.add_argument("--trust-remote-code", action="store_true", help="load through the folder's own code")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for name in ("num_beams", "max_new_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    check_batching(args.batch_size, args.max_tokens_per_batch)
    backend = backend_from_arguments(args)

    # Input, output, model folder, languages, lengths, memory and the resume record first: nothing is loaded or
    # written before they pass.
    languages = known_languages(args.model)
    if args.target_language is not None:
        check_language(args.target_language, languages, "--target-language")
    source = read_sources(args.input, args.source_column)
    check_row_languages(source, languages)
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
        facts = resume_facts(
            model_identity(args.model),
            backend,
            source.path,
            len(source.sources),
            args.source_column,
            args.target_language,
            generation,
        )
        check_sidecar(sidecar_path(output), facts, args.overwrite)
    sample = [tagged(text, args.target_language) for text in source.sources if text.strip()][:200]
    tokenizer = load_tokenizer(args.model, sample_texts=sample)

    model = load_for_inference(
        args.model, backend, trust_remote_code=args.trust_remote_code, onnx_cache=args.onnx_cache
    )
    stats = translate_file(
        model,
        tokenizer,
        args.input,
        args.output,
        source_column=args.source_column,
        target_language=args.target_language,
        batch_size=args.batch_size,
        max_tokens_per_batch=args.max_tokens_per_batch,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        model_source=args.model,
        **generation,
    )
    print(stats.summary())
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
