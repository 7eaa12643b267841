"""The installed packages must be exactly a lock file's (`python .ci/check_lock.py requirements/dev.txt`).

Prints one `error:` line naming the first difference (a version, a missing package or one the lock does not hold)
and exits 1; prints one line saying how many packages matched and exits 0 otherwise. The project itself, installed
editable after the lock, is the one package allowed beyond it. Only the standard library and `packaging` (locked)
are used, so the check runs in the core virtualenv too.
"""

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name


PROJECT = "xlm-swcm-hf"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def locked_versions(lock: Path) -> dict[str, str]:
    """`name==version` lines of a pip-compile output (hash and comment lines skipped), by canonical name."""
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def installed_versions() -> dict[str, str]:
    return {canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}


def first_difference(locked: dict[str, str], installed: dict[str, str]) -> str | None:
    for name in sorted(locked):
        if name not in installed:
            return f"{name}=={locked[name]} is in the lock but not installed"
        if installed[name] != locked[name]:
            return f"{name} {installed[name]} is installed, the lock has {locked[name]}"
    for name in sorted(set(installed) - set(locked) - {PROJECT}):
        return f"{name} {installed[name]} is installed but not in the lock"
    return None


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("error: usage: python .ci/check_lock.py LOCK_FILE (an existing requirements/*.txt)", file=sys.stderr)
        return 2
    lock = Path(argv[0])
    locked = locked_versions(lock)
    difference = first_difference(locked, installed_versions())
    if difference:
        print(
            f"error: {sys.prefix} does not match {lock}: {difference} "
            "(rebuild it with `make install`, or `make lock` if pyproject.toml changed)",
            file=sys.stderr,
        )
        return 1
    print(f"{sys.prefix} matches {lock}: {len(locked)} packages")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
