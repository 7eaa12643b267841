"""Which transformers versions the matrix runs and what pip installs for each: the pinned releases, the latest patch
of each minor, the CI subset, `--versions` parsing, and the requirements (with the releases whose dependencies no
package index serves)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from xlm_swcm_hf.checks import InputError


TORCH_VERSION = "2.13.0"
_THIS_FILE = f"{Path(__file__).parent.name}/{Path(__file__).name}"  # compat/versions.py, named in an error

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
                f"5.0 means its latest patch). A newer release: add it to KNOWN_RELEASES in {_THIS_FILE}."
            )
    return sorted(set(chosen), key=version_key)


def requirements_for(version: str) -> list[str]:
    """What pip installs beside torch for `version`: transformers, accelerate (the Trainer needs it) and the pins that
    release needs to import and run, found by trying each one (see docs/results/compat.md)."""
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
