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
    add_decoding_arguments,
    check_decoding_arguments,
    scan_input,
    start_command_run,
)
from xlm_swcm_hf.checks import (
    ScriptArgumentParser,
    cli_main,
)
from xlm_swcm_hf.recipe import DataRecipe
from xlm_swcm_hf.translation import check_language, known_languages


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
    add_decoding_arguments(parser)
    args = parser.parse_args(argv)
    backend = check_decoding_arguments(args)

    # Input, output, model folder, languages, lengths, memory and the resume record first: nothing is loaded or
    # written before they pass.
    check_language(args.language, None, "--language")
    languages = known_languages(args.model)
    check_language(args.source_language, languages, "--source-language")
    check_pairs_output(args.output)
    # A monolingual row's `lang` is its own language, not a tag of the reverse model: not checked against the model,
    # but it must be --language (refused here, while the scan reads every row anyway, rather than skipped: a
    # mislabelled file is the user's to split or fix, not to lose rows from silently).
    source = scan_input(args.input, args.text_column, None, column_option="--text-column", row_language=args.language)
    run = start_command_run(
        args, backend, source, args.text_column, args.source_language, "--source-language", languages
    )
    stats, counts = back_translate_file(
        run.model,
        run.tokenizer,
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
        group=run.group,
        summary=source,  # checked and hashed above: not read again
        full_vocabulary=args.full_vocabulary,
        **run.generation,
    )
    group = run.group
    print(stats.summary() if group.world == 1 else f"process {group.rank} of {group.world}: {stats.summary()}")
    if group.is_main:
        print(f"{counts.summary()}: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
