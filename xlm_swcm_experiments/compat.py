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

Where the results go: the full matrix writes docs/compat.{md,json}; a partial run (--versions, --ci) writes
<work-dir>/report/ unless --output names a folder, or --update-docs merges its rows into docs/compat.*.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from xlm_swcm_experiments import compat_checker
from xlm_swcm_experiments.compat_checker import CHECKS, FAIL, NOT_APPLICABLE, PASS
from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, read_json_file, require_writable_output


ROOT = Path(__file__).resolve().parents[1]
CHECKER_SCRIPT = Path(compat_checker.__file__).resolve()
DOCS_DIR = ROOT / "docs"
DEFAULT_WORK_DIR = ROOT / "artifacts" / "compat"
TORCH_VERSION = "2.13.0"

# Every transformers release from 4.46 on (`pip index versions transformers`, 2026); pinned so a run is repeatable.
# A new release: add it here (the matrix takes the latest patch of each minor).
KNOWN_RELEASES = (
    "4.46.0 4.46.1 4.46.2 4.46.3 4.47.0 4.47.1 4.48.0 4.48.1 4.48.2 4.48.3 4.49.0 4.50.0 4.50.1 4.50.2 4.50.3 "
    "4.51.0 4.51.1 4.51.2 4.51.3 4.52.1 4.52.2 4.52.3 4.52.4 4.53.0 4.53.1 4.53.2 4.53.3 4.54.0 4.54.1 "
    "4.55.0 4.55.1 4.55.2 4.55.3 4.55.4 4.56.0 4.56.1 4.56.2 4.57.1 4.57.2 4.57.3 4.57.4 4.57.5 4.57.6 "
    "5.0.0 5.1.0 5.2.0 5.3.0 5.4.0 5.5.0 5.5.1 5.5.2 5.5.3 5.5.4 5.6.0 5.6.1 5.6.2 5.7.0 5.8.0 5.8.1 5.9.0 "
    "5.10.1 5.10.2 5.10.4 5.11.0 5.12.0 5.12.1 5.13.0 5.13.1 5.14.0 5.14.1 5.15.0 5.15.1 5.16.0 5.16.1 5.17.0 "
    "5.18.0 5.19.0 5.20.0 5.20.1 5.20.2 5.21.0 5.21.1 5.22.0 5.22.1 5.22.2 5.23.0 5.24.0 5.25.0"
).split()

# The reference folder: tests/conftest.py's tiny encoder without dropout (the trainer step must be reproducible) and
# with larger initial weights (0.1, not 0.02): at 0.02 every source decodes to the same ids and beam equals greedy.
TINY_MODEL = dict(
    initializer_range=0.1,
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=6,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)
SOURCES = ("We learn languages.", "ང་ཚོ་སློབ།", "Біз тіл үйренеміз. Сендер де үйренесің бе?")
GENERATION = {
    "common": {"max_new_tokens": 8},
    "greedy": {"do_sample": False, "num_beams": 1},
    "beam": {"do_sample": False, "num_beams": 3},
    "sampling": {"do_sample": True, "num_beams": 1, "top_k": 20, "top_p": 0.9, "temperature": 0.8},
    "sampling_seed": 0,
}
TRAINING = {"learning_rate": 1e-3, "seed": 0}
SEED = 0


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def minor_of(version: str) -> str:
    return ".".join(version.split(".")[:2])


def latest_patches(releases=KNOWN_RELEASES) -> list[str]:
    """The latest patch release of each minor, oldest minor first."""
    latest: dict[str, str] = {}
    for release in releases:
        minor = minor_of(release)
        if minor not in latest or version_key(release) > version_key(latest[minor]):
            latest[minor] = release
    return sorted(latest.values(), key=version_key)


DEFAULT_VERSIONS = latest_patches()


def ci_versions(versions=None) -> list[str]:
    """The CI subset: the oldest, the middle and the newest version of the matrix."""
    versions = list(versions or DEFAULT_VERSIONS)
    return sorted({versions[0], versions[len(versions) // 2], versions[-1]}, key=version_key)


def parse_versions(text: str, releases=KNOWN_RELEASES) -> list[str]:
    """`4.46.3,5.0,5.25.0` -> known releases, sorted and without repeats; a minor (`5.0`) means its latest patch."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError("--versions needs at least one transformers version, e.g. --versions 4.46.3,5.25.0.")
    latest = {minor_of(version): version for version in latest_patches(releases)}
    chosen = []
    for item in items:
        if item in releases:
            chosen.append(item)
        elif re.fullmatch(r"\d+\.\d+", item) and item in latest:
            chosen.append(latest[item])
        else:
            raise InputError(
                f"unknown transformers version {item!r}; known: {releases[0]} ... {releases[-1]} (a minor such as "
                f"5.0 means its latest patch). A newer release: add it to KNOWN_RELEASES in {Path(__file__).name}."
            )
    return sorted(set(chosen), key=version_key)


def requirements_for(version: str) -> list[str]:
    """What pip installs beside torch for `version`: transformers, accelerate (the Trainer needs it) and the pins that
    release needs to import and run, found by trying each one (see docs/compat.md)."""
    requirements = [f"transformers=={version}", "accelerate"]
    return requirements


@dataclasses.dataclass(frozen=True)
class MissingDependency:
    """A dependency a release declares that no package index here serves: the release is installed without it
    (`pip install --no-deps`, then its other declared dependencies), and the checker runs with `environment`."""

    packages: tuple[str, ...]
    environment: dict
    note: str


MISSING_DEPENDENCIES = {
    # 5.25.0 requires kernels>=0.19.1,<0.20 and turns Hub kernels on by default in from_pretrained (which then
    # refuses to load without them); the newest kernels pip finds is 0.17.2, so `pip install transformers==5.25.0`
    # fails. USE_HUB_KERNELS=0 is transformers' own switch for them.
    "5.25.0": MissingDependency(
        ("kernels",),
        {"USE_HUB_KERNELS": "0"},
        "its kernels>=0.19.1,<0.20 is on no package index: installed without it, checked with USE_HUB_KERNELS=0",
    ),
}


def requirement_name(requirement: str) -> str:
    """`Tokenizers<0.24,>=0.23.1; python_version>'3'` -> `tokenizers` (PEP 503 normalised)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


# ------------------------------------------------------------------------------------------------ the reference


@contextlib.contextmanager
def quiet_and_single_threaded():
    """One torch thread, as the checker runs (the same reduction order), and none of transformers' load reports,
    progress bars or trainer logs between the progress lines."""
    import torch
    import transformers

    threads, verbosity = torch.get_num_threads(), transformers.logging.get_verbosity()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        torch.set_num_threads(threads)
        transformers.logging.set_verbosity(verbosity)
        transformers.logging.enable_progress_bar()


def build_reference(folder: Path) -> dict:
    """Save the tiny model and tokenizer into `folder` and measure, with this package, what every version must
    reproduce. Returns {"request": ..., "expected": ..., "built_with": ...}."""
    with quiet_and_single_threaded():
        return _build_reference(folder)


def _build_reference(folder: Path) -> dict:
    import torch
    import transformers
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration, XLMSWCMModel
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    torch.manual_seed(SEED)
    model = XLMSWCMForConditionalGeneration(XLMSWCMConfig(**TINY_MODEL)).eval()
    with torch.no_grad():  # non-trivial LayerNorms and biases, as in the tests, so a misplaced norm shows
        for parameter in model.parameters():
            if parameter.dim() == 1:
                parameter.add_(0.1 * torch.randn_like(parameter))
    tokenizer = build_tiny_xlmr_tokenizer()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    encoded = tokenizer(list(SOURCES), padding=True)
    # Right-padded labels (-100 where there is no token): one batch of all three pairs, each target a source reversed.
    targets = tokenizer(list(reversed(SOURCES)), padding=True)
    labels = [
        [token if keep else -100 for token, keep in zip(ids, mask)]
        for ids, mask in zip(targets["input_ids"], targets["attention_mask"])
    ]
    request = {
        "sources": list(SOURCES),
        "generation_inputs": {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]},
        "logits_inputs": {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "decoder_input_ids": [[0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16]],
        },
        "generation": GENERATION,
        "training": {
            **TRAINING,
            "batch": {
                "input_ids": encoded["input_ids"],
                "attention_mask": encoded["attention_mask"],
                "labels": labels,
            },
        },
    }
    loaders = {
        "config": lambda: XLMSWCMConfig.from_pretrained(folder),
        "model": lambda: XLMSWCMForConditionalGeneration.from_pretrained(folder),
        "base_model": lambda: XLMSWCMModel.from_pretrained(folder),
        "tokenizer": lambda: AutoTokenizer.from_pretrained(folder),
    }
    measured = compat_checker.measure(loaders, request)
    reloaded, reloaded_tokenizer = loaders["model"]().eval(), loaders["tokenizer"]()
    pipeline_texts = compat_checker.greedy_texts_one_by_one(reloaded, reloaded_tokenizer, request)
    problems = {name: entry["error"] for name, entry in measured.items() if "error" in entry}
    if problems:
        raise RuntimeError(f"the reference cannot be measured with this package: {problems}")
    expected = {name: measured[name]["value"] for name in ("tokenizer_ids", "logits", "greedy", "beam", "sampling")}
    expected["trainer_step"] = measured["trainer_step"]["value"]
    expected["pipeline"] = pipeline_texts
    # The reference must pass its own comparison (the pipeline too, where this transformers has the task).
    verdicts = compat_checker.compare(expected, measured)
    if not compat_checker.all_passed(verdicts):
        raise RuntimeError(f"the reference does not reproduce itself: {verdicts}")
    built_with = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    return {"request": request, "expected": expected, "built_with": built_with}


# ------------------------------------------------------------------------------------------------ environments


class EnvironmentBuildError(RuntimeError):
    """An environment could not be built; the message is pip's (or venv's) last error line."""


def _last_lines(text: str, count: int = 1) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and "is ignored: it is neither" not in line]
    return " | ".join(lines[-count:]) if lines else ""


def _run(command: list[str], timeout: float, what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"{what}: timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        error = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or [result.stderr]
        raise EnvironmentBuildError(f"{what}: {_last_lines(error[-1]) or f'exit status {result.returncode}'}")


def site_packages(environment: Path) -> Path:
    """The site-packages folder of a virtualenv made by this interpreter's Python version."""
    return environment / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def python_of(environment: Path) -> Path:
    return environment / "bin" / "python"


@dataclasses.dataclass
class Builder:
    """Creates and caches the base and per-version environments under `work_dir`."""

    work_dir: Path
    install_timeout: float = 1200
    rebuild: bool = False

    @property
    def constraints(self) -> Path:
        return self.work_dir / "constraints.txt"

    @property
    def base(self) -> Path:
        return self.work_dir / f"base-torch-{TORCH_VERSION}-py{sys.version_info.major}.{sys.version_info.minor}"

    def environment(self, version: str) -> Path:
        return self.work_dir / "envs" / f"transformers-{version}"

    def _pip_install(self, environment: Path, requirements: list[str], what: str) -> None:
        # pip from this interpreter acting on the target (--python): the environments need no pip of their own.
        command = [sys.executable, "-m", "pip", "--python", str(python_of(environment)), "install", "-q"]
        command += ["--no-input", "-c", str(self.constraints), *requirements]
        _run(command, self.install_timeout, what)

    def _create(self, environment: Path, requirements: list[str], marker_extra: dict, what: str) -> dict:
        """(Re)create `environment` unless its marker records the same requirements; returns the marker."""
        marker_path = environment / "compat-environment.json"
        wanted = {"requirements": requirements, "python": platform.python_version(), **marker_extra}
        if marker_path.is_file() and not self.rebuild:
            marker = json.loads(marker_path.read_text(encoding="utf-8"))
            if {key: marker.get(key) for key in wanted} == wanted:
                return {**marker, "cached": True}
        shutil.rmtree(environment, ignore_errors=True)
        started = time.perf_counter()
        _run([sys.executable, "-m", "venv", "--without-pip", str(environment)], 300, f"{what}: venv")
        if "base_site_packages" in marker_extra:  # torch and numpy come from the base environment
            (site_packages(environment) / "_compat_base.pth").write_text(marker_extra["base_site_packages"] + "\n")
        without = marker_extra.get("without")
        if without:  # the release without its unavailable dependencies (MISSING_DEPENDENCIES), then the rest
            self._pip_install(environment, ["--no-deps", requirements[0]], what)
            declared = self._declared_requirements(environment, requirement_name(requirements[0]))
            kept = [item for item in declared if requirement_name(item) not in without]
            self._pip_install(environment, kept + requirements[1:], what)
        else:
            self._pip_install(environment, requirements, what)
        marker = {
            **wanted,
            "build_seconds": round(time.perf_counter() - started, 1),
            "packages": self.packages(environment),
        }
        marker_path.write_text(json.dumps(marker, indent=1), encoding="utf-8")  # written last: a built environment
        return {**marker, "cached": False}

    def _declared_requirements(self, environment: Path, distribution: str) -> list[str]:
        """An installed distribution's own requirements (not its extras'), as its metadata declares them."""
        script = (
            "import json, sys, importlib.metadata as m; "
            "print(json.dumps([r for r in m.requires(sys.argv[1]) or [] if 'extra ==' not in r]))"
        )
        command = [str(python_of(environment)), "-I", "-c", script, distribution]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise EnvironmentBuildError(f"{distribution}'s requirements: {_last_lines(result.stderr)}")
        return json.loads(result.stdout)

    def packages(self, environment: Path) -> dict:
        """name -> version of what the environment sees (its own packages and the base's); names as
        `KEY_PACKAGES` spells them (lower case, `_`), whatever the distribution's metadata says."""
        script = (
            "import json, importlib.metadata as m; "
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
        )
        result = subprocess.run(
            [str(python_of(environment)), "-I", "-c", script], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            return {}
        return dict(
            sorted((requirement_name(name).replace("-", "_"), v) for name, v in json.loads(result.stdout).items())
        )

    def ensure_base(self) -> dict:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Never any other torch: the CPU build on local disk, whatever a transformers release asks for.
        self.constraints.write_text(f"torch=={TORCH_VERSION}\n", encoding="utf-8")
        return self._create(self.base, [f"torch=={TORCH_VERSION}", "numpy"], {}, "base environment")

    def ensure(self, version: str) -> dict:
        extra = {"base_site_packages": str(site_packages(self.base))}
        if version in MISSING_DEPENDENCIES:
            extra["without"] = list(MISSING_DEPENDENCIES[version].packages)
        return self._create(self.environment(version), requirements_for(version), extra, f"transformers {version}")


# ------------------------------------------------------------------------------------------------ checking


def failed_row_checks(reason: str) -> dict:
    return {name: {"status": FAIL, "detail": reason} for name in CHECKS}


def child_environment(scratch: str, extra_environment: dict | None = None) -> dict:
    """The environment a version's child process runs in: ours without PYTHON*/HF_*/TRANSFORMERS_* variables, then
    offline, quiet, and a modules cache of its own under `scratch` (the folder's code is copied there fresh)."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HF_", "TRANSFORMERS_"))
    }
    environment.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(Path(scratch) / "hf-home"),
        HF_MODULES_CACHE=str(Path(scratch) / "modules"),
        TOKENIZERS_PARALLELISM="false",
        TRANSFORMERS_VERBOSITY="error",
        OMP_NUM_THREADS="1",
    )
    environment.update(extra_environment or {})
    return environment


def run_checker(
    python: Path, folder: Path, reference_path: Path, timeout: float, expected: dict, extra_environment=None
) -> dict:
    """Run the checker in the environment of `python`: its answer ({"verdicts", "measured", ...}), with verdicts
    for every check also when it timed out (what it finished is kept) or stopped without an answer.
    `extra_environment`: variables that version needs (MISSING_DEPENDENCIES)."""
    with tempfile.TemporaryDirectory(prefix="compat-check-") as scratch:
        answer_path = Path(scratch) / "answer.json"
        environment = child_environment(scratch, extra_environment)
        # -I: no script folder or user site on sys.path, no PYTHON* variables; the .pth files still apply.
        command = [str(python), "-I", str(CHECKER_SCRIPT), str(folder), str(reference_path), str(answer_path)]
        stopped = "the checker stopped"
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                env=environment,
                cwd=scratch,
            )
            stopped = f"the checker stopped: {_last_lines(result.stderr) or f'exit status {result.returncode}'}"
        except subprocess.TimeoutExpired:
            stopped = f"timed out after {timeout:.0f} s"
        answer = json.loads(answer_path.read_text(encoding="utf-8")) if answer_path.is_file() else {}
    if answer.get("finished"):
        return answer
    if not answer:
        return {"measured": {}, "verdicts": failed_row_checks(stopped), "finished": False}
    return {**answer, "verdicts": compat_checker.compare(expected, answer["measured"], missing=stopped)}


def check_version(
    builder: Builder, version: str, folder: Path, reference_path: Path, expected: dict, timeout: float
) -> dict:
    """Build (or reuse) the version's environment and check the folder there: one row of the matrix."""
    row = {"version": version}
    try:
        environment = builder.ensure(version)
    except EnvironmentBuildError as error:
        row.update(checks=failed_row_checks(f"environment not built: {error}"), environment={"error": str(error)})
        row["passed"] = False
        return row
    started = time.perf_counter()
    missing = MISSING_DEPENDENCIES.get(version)
    python = python_of(builder.environment(version))
    answer = run_checker(python, folder, reference_path, timeout, expected, missing and missing.environment)
    verdicts = row["checks"] = answer["verdicts"]
    row["check_seconds"] = round(time.perf_counter() - started, 1)
    packages = environment.get("packages", {})
    row["environment"] = {
        "cached": environment["cached"],
        "build_seconds": environment.get("build_seconds"),
        "requirements": environment["requirements"],
        "packages": {name: packages[name] for name in KEY_PACKAGES if name in packages},
    }
    if missing:
        row["environment"]["note"] = missing.note
    row["passed"] = compat_checker.all_passed(verdicts)
    return row


# The newest release below the supported range: loading the folder there must stop at once with its one-line refusal.
BELOW_FLOOR_VERSION = "4.45.2"
REFUSAL = "XLM-SWCM needs transformers>=4.46 (found {version})"
REFUSAL_SCRIPT = """
import sys
sys.modules["xlm_swcm_hf"] = None
from transformers import AutoModelForSeq2SeqLM
try:
    AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True)
except ImportError as error:
    print(str(error).splitlines()[0])
    sys.exit(0)
sys.exit("the folder loaded")
"""


def check_refusal(builder: Builder, folder: Path, timeout: float, version: str = BELOW_FLOOR_VERSION) -> dict:
    """Load the folder under `version` (below the floor): {"version", "refused", "detail"}, refused only when the
    first line of the error is the folder's own refusal, not an ImportError from inside transformers."""
    try:
        builder.ensure(version)
    except EnvironmentBuildError as error:
        return {"version": version, "refused": False, "detail": f"environment not built: {error}"}
    with tempfile.TemporaryDirectory(prefix="compat-refusal-") as scratch:
        environment = child_environment(scratch)
        command = [str(python_of(builder.environment(version))), "-I", "-c", REFUSAL_SCRIPT, str(folder)]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=scratch
            )
        except subprocess.TimeoutExpired:
            return {"version": version, "refused": False, "detail": f"timed out after {timeout:.0f} s"}
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else _last_lines(result.stderr)
    refused = result.returncode == 0 and line.startswith(REFUSAL.format(version=version))
    return {"version": version, "refused": refused, "detail": line}


KEY_PACKAGES = ("transformers", "torch", "huggingface_hub", "tokenizers", "accelerate", "safetensors", "numpy")


# ------------------------------------------------------------------------------------------------ rendering


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
    rows = report["rows"]
    built = report["reference"]
    passed = sum(row["passed"] for row in rows)
    lines = [
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
    if "below_floor" in report:
        below_floor = report["below_floor"]
        verdict = "refuses to load, as it should" if below_floor["refused"] else "does NOT refuse as expected"
        lines += [
            f"Below the floor, transformers {below_floor['version']} {verdict}: `{_clean(below_floor['detail'])}`",
            "",
        ]
    failures = [(row["version"], checks, detail) for row in rows for checks, detail in failure_groups(row)]
    if failures:
        lines += ["## Failures", "", "| transformers | checks | error |", "|---|---|---|"]
        lines += [f"| {version} | {', '.join(checks)} | {_clean(detail)} |" for version, checks, detail in failures]
        lines.append("")
    lines += [
        "## Environments",
        "",
        "What pip installed beside torch and numpy (requirements) and the versions it chose; seconds to build the",
        "environment (when it was built, maybe in an earlier run) and to check the folder.",
        "",
        "| transformers | requirements | huggingface_hub | tokenizers | accelerate | build s | check s |",
        "|---|---|---|---|---|---:|---:|",
    ]
    for row in rows:
        environment = row.get("environment", {})
        packages = environment.get("packages", {})
        build = f"{environment['build_seconds']:.0f}" if environment.get("build_seconds") is not None else ""
        check = f"{row['check_seconds']:.0f}" if "check_seconds" in row else ""
        requirements = " ".join(f"`{item}`" for item in environment.get("requirements", [])[1:]) or "-"
        if "note" in environment:
            requirements += f" ({_clean(environment['note'])})"
        if "error" in environment:
            requirements = f"not built: {_clean(environment['error'])}"
        lines.append(
            f"| {row['version']} | {requirements} | {packages.get('huggingface_hub', '')} | "
            f"{packages.get('tokenizers', '')} | {packages.get('accelerate', '')} | {build} | {check} |"
        )
    return "\n".join(lines) + "\n"


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


# ------------------------------------------------------------------------------------------------ the command


def parse_args(argv=None) -> argparse.Namespace:
    parser = ScriptArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--versions", help="comma-separated transformers versions (5.0 = its latest patch)")
    which.add_argument("--ci", action="store_true", help="the CI subset: oldest, middle and newest version")
    parser.add_argument("--list", action="store_true", help="print the versions that would run and exit")
    parser.add_argument("--output", help="folder for compat.json and compat.md (default: see above)")
    parser.add_argument("--update-docs", action="store_true", help="merge a partial run's rows into docs/compat.*")
    parser.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help="environments and scratch (cached)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for one version's checks")
    parser.add_argument("--install-timeout", type=float, default=1200, help="seconds for one environment's pip")
    parser.add_argument("--jobs", type=int, default=1, help="versions built and checked at a time")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached environments")
    args = parser.parse_args(argv)
    args.versions = ci_versions() if args.ci else parse_versions(args.versions) if args.versions else DEFAULT_VERSIONS
    args.full_matrix = set(args.versions) == set(DEFAULT_VERSIONS)
    for option in ("timeout", "install_timeout", "jobs"):
        if getattr(args, option) <= 0:
            raise InputError(f"--{option.replace('_', '-')} must be positive, got {getattr(args, option)}.")
    if args.update_docs and args.output:
        raise InputError("--update-docs writes docs/compat.*; do not combine it with --output.")
    if args.output:
        args.output = Path(args.output)
    elif args.full_matrix or args.update_docs:
        args.output = DOCS_DIR
    else:
        args.output = Path(args.work_dir) / "report"
    args.work_dir = Path(args.work_dir)
    require_writable_output(args.work_dir, "--work-dir")
    require_writable_output(args.output, "--output")
    args.merge_into = None
    if args.update_docs and not args.full_matrix and (DOCS_DIR / "compat.json").is_file():
        args.merge_into = read_json_file(DOCS_DIR / "compat.json", "docs/compat.json")
        if not isinstance(args.merge_into, dict) or not isinstance(args.merge_into.get("rows"), list):
            raise InputError("docs/compat.json has no rows to merge into; run the full matrix (make compat) instead.")
    return args


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


def main(argv=None) -> int:
    from xlm_swcm_hf.files import output_lock

    args = parse_args(argv)
    if args.list:
        print("\n".join(args.versions))
        return 0
    with output_lock(args.work_dir, "--work-dir"):
        return run_matrix(args)


def run_matrix(args) -> int:
    started = time.perf_counter()
    builder = Builder(args.work_dir, install_timeout=args.install_timeout, rebuild=args.rebuild)
    print(f"transformers compatibility: {len(args.versions)} version(s), environments in {args.work_dir}", flush=True)
    folder = args.work_dir / "folder"
    shutil.rmtree(folder, ignore_errors=True)
    reference = build_reference(folder)
    reference_path = args.work_dir / "reference.json"
    reference_path.write_text(json.dumps(reference), encoding="utf-8")
    base = builder.ensure_base()
    print(
        f"base environment (torch {TORCH_VERSION}): "
        + ("cached" if base["cached"] else f"built in {base['build_seconds']:.0f} s"),
        flush=True,
    )

    rows = []
    check = lambda version: check_version(builder, version, folder, reference_path, reference["expected"], args.timeout)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(check, version) for version in args.versions]
        for index, future in enumerate(as_completed(futures), start=1):
            rows.append(future.result())
            print(progress_line(rows[-1], index, len(args.versions)), flush=True)
    rows.sort(key=lambda row: version_key(row["version"]))
    below_floor = check_refusal(builder, folder, args.timeout)
    print(
        f"transformers {below_floor['version']} (below the floor): "
        + ("refused as it should: " if below_floor["refused"] else "NOT refused as expected: ")
        + below_floor["detail"],
        flush=True,
    )
    if args.merge_into is not None:
        rows = merge_rows(args.merge_into["rows"], rows)
    report = {
        "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "full_matrix": {row["version"] for row in rows} >= set(DEFAULT_VERSIONS),
        "reference": reference["built_with"],
        "torch": TORCH_VERSION,
        "tolerances": {"logits": compat_checker.LOGITS_TOLERANCE, "loss": compat_checker.LOSS_TOLERANCE},
        "rows": rows,
        "below_floor": below_floor,
    }
    print()
    print(render_table(rows))
    json_path, markdown_path = write_report(report, args.output)
    failed = [row["version"] for row in rows if not row["passed"] and row["version"] in args.versions]
    if not below_floor["refused"]:
        failed.append(f"{below_floor['version']} (not refused)")
    summary = (
        f"all {len(args.versions)} pass"
        if not failed
        else f"{len(failed)} of {len(args.versions)} fail: {', '.join(failed)}"
    )
    print(f"\n{summary} ({time.perf_counter() - started:.0f} s); wrote {markdown_path} and {json_path}")
    return 0 if not failed else 1
