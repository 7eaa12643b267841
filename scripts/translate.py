#!/usr/bin/env python
"""Translate a file with a trained XLM-SWCM folder: plain text (one source per line), JSONL (a `.jsonl` input; the
source field is --source-column) or Parquet (.parquet). Streamed in blocks sorted by length, merged in the input's
order into a temporary name and renamed into place; finished blocks stay in <output>.parts/, so a rerun with the same
arguments resumes (automatic). Under `torchrun --nproc-per-node N` or `accelerate launch` the processes share the
blocks (docs/translate.md).
"""

import sys

from xlm_swcm_hf.bulk_translation import (
    add_decoding_arguments,
    check_decoding_arguments,
    scan_input,
    start_command_run,
    translate_file,
)
from xlm_swcm_hf.checks import (
    ScriptArgumentParser,
    cli_main,
)
from xlm_swcm_hf.translation import check_language, known_languages


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
    add_decoding_arguments(parser)
    args = parser.parse_args(argv)
    backend = check_decoding_arguments(args)

    # Input, output, model folder, languages, lengths, memory and the resume record first: nothing is loaded or
    # written before they pass.
    languages = known_languages(args.model)
    if args.target_language is not None:
        check_language(args.target_language, languages, "--target-language")
    source = scan_input(args.input, args.source_column, languages)
    run = start_command_run(
        args, backend, source, args.source_column, args.target_language, "--target-language", languages
    )
    stats = translate_file(
        run.model,
        run.tokenizer,
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
        group=run.group,
        summary=source,  # checked and hashed above: not read again
        full_vocabulary=args.full_vocabulary,
        **run.generation,
    )
    group = run.group
    print(stats.summary() if group.world == 1 else f"process {group.rank} of {group.world}: {stats.summary()}")
    if group.is_main:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
