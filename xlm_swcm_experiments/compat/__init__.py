"""A transformers version matrix for the saved XLM-SWCM folder (entry point: scripts/compat_matrix.py; `make compat`).

1. Build a tiny XLM-SWCM folder with this package (`save_pretrained` writes the remote-code files and `auto_map`)
   and measure its reference outputs right here: logits, greedy / beam / seeded sampling ids, one Seq2SeqTrainer
   step's losses, and the text greedy decoding gives each source (what the text2text pipeline must give).
2. For each requested transformers version, an environment with torch==2.13.0 and that version only (never
   xlm_swcm_hf): one base virtualenv holds torch and numpy, and each version's virtualenv sees it through a `.pth`
   file, so pip counts torch as installed and installs only transformers and what it needs (`requirements_for`).
   Environments are cached under --work-dir (artifacts/compat/) and rebuilt only when their requirements change.
3. In each environment run `compat_checker.py` (loads the folder through the Auto classes with trust_remote_code and
   compares with the reference), with a timeout; print a line per version and the table, write compat.json and
   compat.md. Exit status 0 only if every requested version passes; 1 otherwise; 2 bad input (before any work).

Where the results go: the full matrix writes docs/results/compat.{md,json}; a partial run (--versions, --ci) writes
<work-dir>/report/ unless --output names a folder, or --update-docs merges its rows into docs/results/compat.*.

The package, one job a module:
- `versions.py`: the pinned releases, the matrix (latest patch per minor), the CI subset, --versions, requirements;
- `reference.py`: the tiny folder and the reference outputs measured with this package;
- `environments.py`: the base and per-version virtualenvs, built with pip and cached;
- `checks.py`: the checker run in one version's environment (a row of the matrix), and the refusal below the floor;
- `report.py`: the table, compat.md, the progress lines, merging a partial run into an earlier report;
- `cli.py`: the options and the run in order.
`compat_checker.py` (beside this package) stays one standalone file: it runs where only torch and transformers are.

The names below stay importable from `xlm_swcm_experiments.compat`. A test that patches one of them (CHECKER_SCRIPT,
REFUSAL_SCRIPT, python_of) patches it in the module that uses it, `compat.checks`.
"""

from .checks import (
    BELOW_FLOOR_VERSION,
    CHECKER_SCRIPT,
    KEY_PACKAGES,
    REFUSAL,
    REFUSAL_SCRIPT,
    check_refusal,
    check_version,
    child_environment,
    failed_row_checks,
    run_checker,
)
from .cli import DEFAULT_WORK_DIR, DESCRIPTION, DOCS_DIR, ROOT, main, parse_args, run_matrix
from .environments import Builder, EnvironmentBuildError, python_of, site_packages
from .reference import GENERATION, SEED, SOURCES, TINY_MODEL, TRAINING, build_reference, quiet_and_single_threaded
from .report import (
    CELL,
    COLUMN_TITLES,
    failure_groups,
    merge_rows,
    progress_line,
    render_markdown,
    render_table,
    write_report,
)
from .versions import (
    DEFAULT_VERSIONS,
    KNOWN_RELEASES,
    MISSING_DEPENDENCIES,
    TORCH_VERSION,
    MissingDependency,
    ci_versions,
    latest_patches,
    minor_of,
    parse_versions,
    requirement_name,
    requirements_for,
    version_key,
)


__all__ = [
    "BELOW_FLOOR_VERSION",
    "Builder",
    "CELL",
    "CHECKER_SCRIPT",
    "COLUMN_TITLES",
    "DEFAULT_VERSIONS",
    "DEFAULT_WORK_DIR",
    "DESCRIPTION",
    "DOCS_DIR",
    "EnvironmentBuildError",
    "GENERATION",
    "KEY_PACKAGES",
    "KNOWN_RELEASES",
    "MISSING_DEPENDENCIES",
    "MissingDependency",
    "REFUSAL",
    "REFUSAL_SCRIPT",
    "ROOT",
    "SEED",
    "SOURCES",
    "TINY_MODEL",
    "TORCH_VERSION",
    "TRAINING",
    "build_reference",
    "check_refusal",
    "check_version",
    "child_environment",
    "ci_versions",
    "failed_row_checks",
    "failure_groups",
    "latest_patches",
    "main",
    "merge_rows",
    "minor_of",
    "parse_args",
    "parse_versions",
    "progress_line",
    "python_of",
    "quiet_and_single_threaded",
    "render_markdown",
    "render_table",
    "requirement_name",
    "requirements_for",
    "run_checker",
    "run_matrix",
    "site_packages",
    "version_key",
    "write_report",
]
