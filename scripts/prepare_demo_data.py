#!/usr/bin/env python
"""Build the offline English→X demo data set (see `xlm_swcm_experiments.demo.data`).

Needs the `demo` extra (babel, django, pycountry, maqal).  Example:

    python scripts/prepare_demo_data.py --output artifacts/demo-data --force
    python scripts/prepare_demo_data.py --languages ug zh --output /tmp/demo --force
"""

from __future__ import annotations

import sys
from pathlib import Path

from xlm_swcm_experiments.demo import data as demo_data
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_writable_output
from xlm_swcm_hf.training.reporting import markdown_table


def _languages(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out += [v for v in value.replace(",", " ").split() if v]
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="artifacts/demo-data", help="output directory (default: %(default)s)")
    parser.add_argument(
        "--languages",
        nargs="+",
        default=list(demo_data.DEFAULT_LANGUAGES),
        help="target languages, space- or comma-separated; supported: "
        f"{' '.join(demo_data.SUPPORTED_LANGUAGES)} (default: all)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output directory")
    parser.add_argument(
        "--tag-template", default=demo_data.TAG_TEMPLATE, help="source tag template (default: %(default)r)"
    )
    parser.add_argument(
        "--placeholder-policy",
        choices=demo_data.PLACEHOLDER_POLICIES,
        default="keep",
        help="what to do with pairs that contain format placeholders (default: %(default)s)",
    )
    parser.add_argument(
        "--unique-sources",
        action="store_true",
        help="keep one target per English text and language (default: keep alternatives)",
    )
    parser.add_argument(
        "--no-monolingual",
        action="store_true",
        help="do not write Uyghur proverbs (monolingual_ug.jsonl is then empty)",
    )
    parser.add_argument(
        "--allow-other-versions",
        action="store_true",
        help="build even if the data packages differ from the demo extra's pins (the corpus then differs too)",
    )
    args = parser.parse_args(argv)
    require_writable_output(args.output, "--output")
    if Path(args.output).exists() and not args.force:
        raise InputError(f"--output {args.output} exists; pass --force to replace it, or choose another --output.")

    try:
        stats = demo_data.build_demo_dataset(
            args.output,
            _languages(args.languages),
            force=args.force,
            tag_template=args.tag_template,
            placeholder_policy=args.placeholder_policy,
            include_monolingual=not args.no_monolingual,
            unique_sources=args.unique_sources,
            allow_other_versions=args.allow_other_versions,
        )
    except (FileExistsError, ValueError) as exc:
        raise InputError(str(exc)) from exc

    splits = list(demo_data.SPLITS)
    rows = [[lang, *(v[s] for s in splits), v["total"]] for lang, v in stats["languages"].items()]
    rows.append(["all", *(stats["splits"][s] for s in splits), sum(stats["splits"].values())])
    print(markdown_table(["lang", *splits, "total"], rows))
    origins = [[o, *(v[s] for s in splits), v["total"]] for o, v in stats["origins"].items()]
    print(markdown_table(["origin", *splits, "total"], origins))
    print()
    print(f"monolingual ug (maqal): {stats['monolingual']['ug']}")
    dropped = {lang: d for lang, d in stats["dropped"].items() if d}
    if dropped:
        print(
            "dropped: "
            + "; ".join(f"{lang} " + ", ".join(f"{r}={n}" for r, n in d.items()) for lang, d in dropped.items())
        )
    for lang, v in stats["languages"].items():
        if not v["total"]:
            print(f"warning: no pairs for {lang}", file=sys.stderr)
    if stats["skipped_sources"]:
        print(
            f"warning: packages missing, sources skipped: {', '.join(stats['skipped_sources'])} "
            "(pip install 'xlm-swcm-hf[demo]')",
            file=sys.stderr,
        )
    print(
        "licences: "
        + ", ".join(f"{n}={s['license']} ({s['package']} {s['version']})" for n, s in stats["sources"].items())
    )
    print(f"corpus sha256 {stats['corpus_sha256']}")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
