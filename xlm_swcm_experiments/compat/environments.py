"""The environments the matrix runs in, built with pip and cached under the work folder: one base virtualenv holds
torch and numpy, and each transformers version's virtualenv sees it through a `.pth` file, so pip counts torch as
installed and installs only transformers and what it needs (`requirements_for`). An environment is rebuilt only when
its requirements change (or with --rebuild)."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .versions import MISSING_DEPENDENCIES, TORCH_VERSION, requirement_name, requirements_for


class EnvironmentBuildError(RuntimeError):
    """An environment could not be built; the message is pip's (or venv's) last error line."""


def last_lines(text: str, count: int = 1) -> str:
    """The last `count` non-empty lines of a child's output, joined by ` | ` (pip's "is ignored" notices left out)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and "is ignored: it is neither" not in line]
    return " | ".join(lines[-count:]) if lines else ""


def _run(command: list[str], timeout: float, what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"{what}: timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        error = [line for line in result.stderr.splitlines() if line.startswith("ERROR")] or [result.stderr]
        raise EnvironmentBuildError(f"{what}: {last_lines(error[-1]) or f'exit status {result.returncode}'}")


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
            raise EnvironmentBuildError(f"{distribution}'s requirements: {last_lines(result.stderr)}")
        return json.loads(result.stdout)

    def packages(self, environment: Path) -> dict:
        """name -> version of what the environment sees (its own packages and the base's); names as
        `checks.KEY_PACKAGES` spells them (lower case, `_`), whatever the distribution's metadata says."""
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
