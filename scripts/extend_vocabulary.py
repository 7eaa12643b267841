#!/usr/bin/env python
"""Extend an encoder's (or a saved XLM-SWCM model's) vocabulary to scripts it cannot spell, e.g. Tibetan and
traditional Mongolian: learn Unigram pieces from a corpus, append them, grow the embeddings (and LM head).

  python scripts/extend_vocabulary.py --model artifacts/e5-small-xlmr --corpus bo.txt mn.txt --languages bo,mn \\
      --output artifacts/e5-small-xlmr-bo-mn [--new-pieces 4000] [--init subwords|mean] \\
      [--held-out bo=bo_test.txt ...] [--unchanged train.jsonl ...] [--overwrite]

Corpus files: plain text (one text per line) or JSONL (fields text / source / target). Existing ids, special tokens
and the segmentation of text without the new scripts' characters stay as they were (checked on the corpus and on
--unchanged files). Prints, per --held-out and --unchanged set, the share of characters mapped to <unk>, pieces per
character, changed segmentations and round-trip failures before and after.
"""

import argparse
import json
import sys

from xlm_swcm_hf.checks import (
    InputError,
    ScriptArgumentParser,
    cli_main,
    load_tokenizer,
    refuse_output_over_inputs,
)
from xlm_swcm_hf.vocabulary_extension import (
    DEFAULT_NEW_PIECES,
    INITIALISATIONS,
    extend_vocabulary,
    format_measures,
    measure_groups,
    read_corpus,
)


def _groups(specs: list[str], suffix: str) -> dict[str, list[str]]:
    """`[NAME=]FILE` arguments -> texts by name (NAME, else a JSONL row's lang, else the file's name)."""
    groups: dict[str, list[str]] = {}
    for spec in specs:
        name, separator, path = spec.partition("=")
        if not separator:
            name, path = None, spec
        for language, text in read_corpus(path, with_languages=True):
            groups.setdefault(f"{name or language} ({suffix})", []).append(text)
    return groups


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="XLM-R-family encoder folder or saved XLM-SWCM folder")
    parser.add_argument("--corpus", required=True, nargs="+", help="text in the scripts to add (.txt or .jsonl)")
    parser.add_argument("--languages", help="restrict new pieces to these languages' scripts, e.g. bo,mn")
    parser.add_argument(
        "--new-pieces",
        type=int,
        default=DEFAULT_NEW_PIECES,
        help="at most this many learned pieces (default %(default)s)",
    )
    parser.add_argument("--init", choices=INITIALISATIONS, default="subwords", help="new rows (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fallback noise (default 0)")
    parser.add_argument(
        "--held-out", nargs="*", default=[], metavar="[NAME=]FILE", help="text to measure (not learned from)"
    )
    parser.add_argument(
        "--unchanged",
        nargs="*",
        default=[],
        metavar="[NAME=]FILE",
        help="text that must tokenize exactly as before (checked; the run fails otherwise)",
    )
    parser.add_argument("--output", required=True, help="folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    for option, values in (("--corpus", args.corpus), ("--held-out", args.held_out), ("--unchanged", args.unchanged)):
        for value in values:  # the output replaced with --overwrite must not take an input with it
            path = value.partition("=")[2] if option != "--corpus" and "=" in value else value
            refuse_output_over_inputs(args.output, "--output", {option: path})

    corpus = read_corpus(args.corpus)
    held_out = _groups(args.held_out, "held out")
    unchanged = _groups(args.unchanged, "unchanged")
    try:
        record = extend_vocabulary(
            args.model,
            corpus,
            args.output,
            languages=args.languages,
            new_pieces=args.new_pieces,
            init=args.init,
            seed=args.seed,
            unchanged_texts=[text for texts in unchanged.values() for text in texts],
            overwrite=args.overwrite,
        )
    except FileExistsError as error:
        raise InputError(str(error)) from error
    print(f"extended {args.model} ({record['model']}) -> {args.output}")
    print(
        f"  +{record['added_pieces']} pieces, ids {record['first_new_id']}..{record['new_vocab_size'] - 1}; "
        f"model rows {record['model_rows']}; new rows from {json.dumps(record['initialised_from'])}"
    )
    print(
        f"  {record['texts_checked_unchanged']} texts without the new characters checked to tokenize exactly as before"
    )
    if record["unchanged_texts_with_new_characters"]:
        print(
            f"  {record['unchanged_texts_with_new_characters']} --unchanged texts have the new characters (not checked)"
        )
    if held_out or unchanged:
        rows = measure_groups(load_tokenizer(args.model), load_tokenizer(args.output), {**held_out, **unchanged})
        print(format_measures(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
