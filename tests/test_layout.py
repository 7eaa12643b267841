"""The house rules that keep one home for each thing."""

import ast
import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "xlm_swcm_hf"
REMOTE_CODE = ("configuration_xlm_swcm.py", "modeling_xlm_swcm.py")


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """(module, level) for every import in a file, including imports inside functions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=[str(p.relative_to(ROOT)) for p in LIBRARY_FILES])
def test_the_library_never_imports_the_experiments(path):
    offending = [module for module, level in imported_modules(path) if module.split(".")[0] == "xlm_swcm_experiments"]
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize("name", REMOTE_CODE)
def test_remote_code_imports_only_torch_transformers_and_each_other(name):
    allowed = {
        "torch",
        "transformers",
        "typing",
        "math",
        "dataclasses",
        "collections",
        "functools",
        "itertools",
        "warnings",
        "copy",
        "os",
        "json",
        "re",
        "enum",
        "abc",
        "__future__",
    }
    for module, level in imported_modules(LIBRARY / name):
        if level:  # relative: must be the other remote-code file
            assert f"{module}.py" in REMOTE_CODE, f"{name} imports .{module}, which does not travel to the Hub"
        else:
            assert module.split(".")[0] in allowed, f"{name} imports {module}, which a Hub user may not have"


def test_the_library_does_not_import_the_experiments_at_runtime():
    import subprocess
    import sys

    code = (
        "import sys, xlm_swcm_hf, xlm_swcm_hf.training, xlm_swcm_hf.data, xlm_swcm_hf.convert, xlm_swcm_hf.hub, "
        "xlm_swcm_hf.metrics, xlm_swcm_hf.vocabulary; "
        "print(sorted(m for m in sys.modules if m.startswith('xlm_swcm_experiments')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_scripts_are_thin_and_import_one_way(path):
    text = path.read_text(encoding="utf-8")
    assert "sys.path" not in text, "scripts import the installed package, never by editing sys.path"
    assert all(level == 0 for _, level in imported_modules(path)), "no relative imports in scripts"
    project = [m for m, _ in imported_modules(path) if m.split(".")[0] in ("xlm_swcm_hf", "xlm_swcm_experiments")]
    # `from xlm_swcm_hf.<module> import ...`; a bare `import xlm_swcm_hf` only registers the Auto classes.
    assert project and all(m.count(".") >= 1 or m == "xlm_swcm_hf" for m in project)
    assert "def main(" in text and "@cli_main" in text or path.stem == "benchmark"


def test_the_tests_mirror_the_tree():
    """tests/library tests xlm_swcm_hf, tests/experiments xlm_swcm_experiments, tests/scripts the command lines; the
    shared fixtures (conftest.py), these rules and the environment's (test_environment.py: the lock, .ci/) stay at
    the top. Basenames stay unique: pytest imports test files
    by basename (no __init__.py), so two of one name would collide."""
    tests = ROOT / "tests"
    assert sorted(p.name for p in tests.glob("*.py")) == ["conftest.py", "test_environment.py", "test_layout.py"]
    assert {p.name for p in tests.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))} == {
        "data",
        "experiments",
        "library",
        "scripts",
    }
    names = [p.name for p in tests.rglob("*.py") if "__pycache__" not in p.parts]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# ------------------------------------------------------------------------------------------ the README and docs/
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


FENCED = re.compile(r"^```.*?^```", flags=re.S | re.M)


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where a link or heading is one."""
    return re.sub(r"`[^`\n]*`", "", FENCED.sub("", text))


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCED.sub("", path.read_text(encoding="utf-8")), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", DOC_PAGES, ids=[str(p.relative_to(ROOT)) for p in DOC_PAGES])
def test_relative_links_in_the_docs_resolve(page):
    """Every relative link (and image) in the README and docs/ names a file that exists, and a heading there."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists() or anchor and anchor not in _anchors(path):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def _linked_pages(page: Path) -> set[Path]:
    return {
        (page.parent / target.partition("#")[0]).resolve()
        for target in re.findall(r"\]\(([^)\s#]+)[^)\s]*\)", _prose(page.read_text(encoding="utf-8")))
        if not re.match(r"[a-z]+:", target)
    }


def test_the_readme_links_every_docs_page():
    """The README is the entry page: every hand-written page in docs/ is linked from it, and every other page (the
    generated results, the demo's report) from it or from a page it links."""
    from_readme = _linked_pages(ROOT / "README.md")
    reachable = from_readme.union(*(_linked_pages(p) for p in from_readme if p.suffix == ".md" and p.exists()))
    top = [p for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in from_readme]
    deeper = [p for p in sorted((ROOT / "docs").rglob("*.md")) if p.resolve() not in reachable]
    assert not top, [str(p.relative_to(ROOT)) for p in top]
    assert not deeper, [str(p.relative_to(ROOT)) for p in deeper]
