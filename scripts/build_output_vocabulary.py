#!/usr/bin/env python
"""Build a saved XLM-SWCM's per-language output vocabularies from its training data, so that
`model.generate(..., output_languages="ug")` computes only the Uyghur rows of the output layer.

  python scripts/build_output_vocabulary.py --model out/final --data train.jsonl [more.jsonl ...] \\
      [--held-out test.jsonl] [--languages ug,zh] [--min-count 1] [--overwrite]

--data and --held-out: JSONL rows with `target` and `lang` (the training files). A language's vocabulary is every
piece its tokenized targets use (at least --min-count times) plus pad, eos, bos, unk and the decoder start token.
Writes MODEL/output_vocabularies.json (which from_pretrained loads and save_pretrained keeps); prints each
language's size and, with --held-out, the share of held-out target tokens inside it (what the restriction loses).
"""

import argparse
import sys

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, load_tokenizer, require_trained_model
from xlm_swcm_hf.output_vocabulary import (
    DEFAULT_MIN_COUNT,
    build_output_vocabularies,
    coverage,
    format_report,
    output_vocabularies_path,
    read_pairs,
    special_ids,
    write_output_vocabularies,
)
from xlm_swcm_hf.translation import check_language, known_languages


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="saved XLM-SWCM folder (the file is written into it)")
    parser.add_argument("--data", required=True, nargs="+", help="JSONL files with target and lang (training data)")
    parser.add_argument("--held-out", nargs="*", default=[], help="JSONL files to measure coverage on")
    parser.add_argument("--languages", help="only these tags, e.g. ug,zh (default: every lang of --data)")
    parser.add_argument(
        "--min-count", type=int, default=DEFAULT_MIN_COUNT, help="uses a piece needs (default %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output_vocabularies.json")
    args = parser.parse_args(argv)

    # a broken output_vocabularies.json is what --overwrite replaces: not refused here
    require_trained_model(args.model, "--model", output_vocabularies=False)
    if args.min_count < 1:
        raise InputError(f"--min-count must be >= 1, got {args.min_count}.")
    path = output_vocabularies_path(args.model)
    if path.exists() and not args.overwrite:
        raise InputError(f"{path} exists already; pass --overwrite to replace it.")
    known = known_languages(args.model)
    languages = None
    if args.languages is not None:
        languages = [tag.strip() for tag in args.languages.split(",") if tag.strip()]
        for tag in languages or [args.languages]:
            check_language(tag, known, "--languages")
    pairs = read_pairs(args.data, "--data")
    for tag in sorted({tag for tag, _ in pairs}):
        check_language(tag, known, "--data's lang")
    held_out = read_pairs(args.held_out, "--held-out") if args.held_out else None

    from xlm_swcm_hf import XLMSWCMConfig

    config = XLMSWCMConfig.from_pretrained(args.model)
    tokenizer = load_tokenizer(args.model, vocab_size=config.vocab_size, what="--model's tokenizer")
    vocabularies = build_output_vocabularies(
        tokenizer, pairs, special_ids(tokenizer, config), min_count=args.min_count, languages=languages
    )
    measured = coverage(vocabularies, tokenizer, held_out) if held_out is not None else None
    write_output_vocabularies(args.model, vocabularies, config.vocab_size, overwrite=args.overwrite)
    print(f"wrote {path}: {len(vocabularies)} languages")
    print(format_report(vocabularies, measured, config.vocab_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
