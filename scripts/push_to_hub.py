#!/usr/bin/env python
"""Upload a saved XLM-SWCM folder (model, tokenizer, remote code, model card, metrics) to the Hugging Face Hub.

--dry-run validates the folder (auto_map and every referenced code file, weights, tokenizer files, card metadata,
and a load through the folder's own code in a process where xlm_swcm_hf is not importable) and lists what would be
uploaded, without network access.
"""

import sys

from xlm_swcm_hf.checks import ScriptArgumentParser, cli_main
from xlm_swcm_hf.hub import push_folder_to_hub


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="folder written by train.py / convert / make demo")
    parser.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="validate and list, upload nothing")
    args = parser.parse_args(argv)
    files = push_folder_to_hub(args.model, args.repo_id, private=args.private, dry_run=args.dry_run)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{args.model}: valid; {verb} {len(files)} files to {args.repo_id}:")
    for name in files:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
