#!/usr/bin/env python
"""Upload a saved XLM-SWCM folder (model, tokenizer, remote code, model card, metrics) to the Hugging Face Hub.

--dry-run validates the folder (auto_map and every referenced code file, weights, tokenizer files, card metadata
as huggingface_hub parses it, model-index included, and a load through the folder's own code in a process where
xlm_swcm_hf is not importable) and lists what would be uploaded, without network access.

--space-app DIR also writes a Hugging Face Space that serves the model: app.py (scripts/serve.py, which needs no
xlm_swcm_hf), requirements.txt, packages.txt (fonts), README.md naming the model, examples.jsonl. Upload it with
`hf upload USER/NAME-demo DIR --repo-type space`.
"""

import sys
from pathlib import Path

from xlm_swcm_hf.checks import ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.files import check_output_dir
from xlm_swcm_hf.hub import push_folder_to_hub, space_app_output_options, write_space_app


SERVE_SCRIPT = Path(__file__).resolve().with_name("serve.py")


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="folder written by train.py / convert / make demo")
    parser.add_argument("--repo-id", required=True, help="USER/NAME on the Hub")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="validate and list, upload nothing")
    parser.add_argument("--space-app", metavar="DIR", help="also write a Space folder that serves the model")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a Space app this script wrote earlier in --space-app"
    )
    args = parser.parse_args(argv)
    if args.space_app:  # before validating: a Space folder replaces only a Space app, never the model or a run
        require_writable_output(args.space_app, "--space-app")
        check_output_dir(args.space_app, args.overwrite, **space_app_output_options(args.model, SERVE_SCRIPT))
    files = push_folder_to_hub(args.model, args.repo_id, private=args.private, dry_run=args.dry_run)
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{args.model}: valid; {verb} {len(files)} files to {args.repo_id}:")
    for name in files:
        print(f"  {name}")
    if args.space_app:
        written = write_space_app(args.space_app, args.repo_id, SERVE_SCRIPT, args.model, overwrite=args.overwrite)
        print(f"wrote the Space app {args.space_app} ({', '.join(written)}); upload it with:")
        print(f"  hf upload {args.repo_id}-demo {args.space_app} --repo-type space")
    return 0


if __name__ == "__main__":
    sys.exit(main())
