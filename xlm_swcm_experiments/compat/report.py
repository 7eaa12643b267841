"""The matrix's report: the table, compat.md (from compat.json's content alone: the same report renders the same
text), the progress line per version, and merging a partial run's rows into an earlier report."""

from __future__ import annotations

from pathlib import Path

from xlm_swcm_experiments.compat_checker import CHECKS, FAIL, NOT_APPLICABLE, PASS

from .versions import TORCH_VERSION, version_key


COLUMN_TITLES = {"trainer_step": "trainer step"}
CELL = {PASS: "pass", FAIL: "FAIL", NOT_APPLICABLE: "n/a"}


def render_table(rows: list[dict]) -> str:
    titles = ["transformers"] + [COLUMN_TITLES.get(name, name) for name in CHECKS]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for row in rows:
        cells = [row["version"]] + [CELL.get(row["checks"][name]["status"], "?") for name in CHECKS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _clean(text: str) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def render_markdown(report: dict) -> str:
    """compat.md from the report (compat.json's content): what was checked, the table, the refusal below the floor,
    the failures by error, and the environments."""
    lines = _summary_lines(report) + _below_floor_lines(report) + _failure_lines(report["rows"])
    lines += _environment_lines(report["rows"])
    return "\n".join(lines) + "\n"


def _summary_lines(report: dict) -> list[str]:
    rows = report["rows"]
    built = report["reference"]
    passed = sum(row["passed"] for row in rows)
    return [
        "# transformers compatibility matrix",
        "",
        "Written by `make compat` (`scripts/compat_matrix.py`); do not edit by hand.",
        f"A tiny XLM-SWCM folder saved by this package (transformers {built['transformers']}, torch {built['torch']})",
        "is loaded through the Auto classes with `trust_remote_code=True` in a clean environment per transformers",
        f"version (torch {TORCH_VERSION}, Python {built['python']}, no xlm_swcm_hf) and compared with the outputs",
        "measured where it was saved: logits (max |diff| <= 1e-5), greedy / beam (3) / seeded sampling ids",
        '(identical), one `Seq2SeqTrainer` step\'s losses (within 1e-5), and `pipeline("text2text-generation")`',
        "against greedy decoding (n/a where the task is gone). `loads` covers AutoConfig, AutoModelForSeq2SeqLM,",
        "AutoModel and AutoTokenizer (which must encode the sources to the same ids).",
        "",
        f"Run {report['generated']}: {passed} of {len(rows)} versions pass"
        + ("" if report["full_matrix"] else " (a partial run: not every version of the matrix)")
        + ".",
        "",
        render_table(rows),
        "",
    ]


def _below_floor_lines(report: dict) -> list[str]:
    if "below_floor" not in report:
        return []
    below_floor = report["below_floor"]
    verdict = "refuses to load, as it should" if below_floor["refused"] else "does NOT refuse as expected"
    return [
        f"Below the floor, transformers {below_floor['version']} {verdict}: `{_clean(below_floor['detail'])}`",
        "",
    ]


def _failure_lines(rows: list[dict]) -> list[str]:
    failures = [(row["version"], checks, detail) for row in rows for checks, detail in failure_groups(row)]
    if not failures:
        return []
    lines = ["## Failures", "", "| transformers | checks | error |", "|---|---|---|"]
    lines += [f"| {version} | {', '.join(checks)} | {_clean(detail)} |" for version, checks, detail in failures]
    return lines + [""]


def _environment_lines(rows: list[dict]) -> list[str]:
    lines = [
        "## Environments",
        "",
        "What pip installed beside torch and numpy (requirements) and the versions it chose; seconds to build the",
        "environment (when it was built, maybe in an earlier run) and to check the folder.",
        "",
        "| transformers | requirements | huggingface_hub | tokenizers | accelerate | build s | check s |",
        "|---|---|---|---|---|---:|---:|",
    ]
    return lines + [_environment_row(row) for row in rows]


def _environment_row(row: dict) -> str:
    environment = row.get("environment", {})
    packages = environment.get("packages", {})
    build = f"{environment['build_seconds']:.0f}" if environment.get("build_seconds") is not None else ""
    check = f"{row['check_seconds']:.0f}" if "check_seconds" in row else ""
    requirements = " ".join(f"`{item}`" for item in environment.get("requirements", [])[1:]) or "-"
    if "note" in environment:
        requirements += f" ({_clean(environment['note'])})"
    if "error" in environment:
        requirements = f"not built: {_clean(environment['error'])}"
    return (
        f"| {row['version']} | {requirements} | {packages.get('huggingface_hub', '')} | "
        f"{packages.get('tokenizers', '')} | {packages.get('accelerate', '')} | {build} | {check} |"
    )


def failure_groups(row: dict) -> list[tuple[list[str], str]]:
    """A row's failing checks grouped by their error, in CHECKS order: ([checks], error) pairs."""
    groups: dict[str, list[str]] = {}
    for name in CHECKS:
        verdict = row["checks"][name]
        if verdict["status"] == FAIL:
            groups.setdefault(verdict["detail"], []).append(COLUMN_TITLES.get(name, name))
    return [(checks, detail) for detail, checks in groups.items()]


def progress_line(row: dict, index: int, total: int) -> str:
    groups = failure_groups(row)
    verdict = "pass" if row["passed"] else "FAIL " + ", ".join(name for checks, _ in groups for name in checks)
    environment = row.get("environment", {})
    timing = []
    if "error" not in environment:
        timing.append(
            "environment cached"
            if environment.get("cached")
            else f"built in {environment.get('build_seconds', 0):.0f} s"
        )
    if "check_seconds" in row:
        timing.append(f"checked in {row['check_seconds']:.0f} s")
    line = f"[{index}/{total}] transformers {row['version']}: {verdict}" + (f" ({', '.join(timing)})" if timing else "")
    for checks, detail in groups:
        line += f"\n    {', '.join(checks)}: {detail if len(detail) <= 200 else detail[:196] + ' ...'}"
    if "note" in environment:
        line += f"\n    note: {environment['note']}"
    return line


def merge_rows(old_rows: list[dict], new_rows: list[dict]) -> list[dict]:
    """The old rows with the new ones in place of the same versions, sorted by version."""
    merged = {row["version"]: row for row in old_rows}
    merged.update({row["version"]: row for row in new_rows})
    return sorted(merged.values(), key=lambda row: version_key(row["version"]))


def write_report(report: dict, output: Path) -> tuple[Path, Path]:
    from xlm_swcm_hf.files import atomic_write_json, atomic_write_text

    json_path = atomic_write_json(output / "compat.json", report)
    markdown_path = atomic_write_text(output / "compat.md", render_markdown(report))
    return json_path, markdown_path
