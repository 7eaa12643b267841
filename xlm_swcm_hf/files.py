"""Writing outputs so that a failure never leaves a half-written one behind, and two runs never share one.

- `atomic_output_dir`: a folder appears complete or not at all.
- `atomic_output_file` (a stream), `atomic_write_text` / `atomic_write_json`: a file is written to a temporary name
  beside it and renamed into place.
- `output_lock`: one run per output folder at a time; the operating system releases it when the process ends, so a
  crashed run never leaves it stuck.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output_dir(output_dir: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder next to `output_dir`; it becomes `output_dir` only if the block succeeds.

    On any error the temporary folder is removed, so a half-written output folder is never left behind. An existing
    `output_dir` is replaced only with `overwrite=True`, and only after the new one is complete.
    """
    output_dir = Path(output_dir).resolve()
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} exists; choose another output folder or pass overwrite/--overwrite.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it owner-only; the result is an ordinary shared folder
    try:
        yield staging
        if output_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
            os.replace(output_dir, retired / "old")
            os.replace(staging, output_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_output_file(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Yield a stream to a temporary file beside `path`, renamed into place if the block succeeds (removed if not):
    `path` is old or new, never half. For outputs written piece by piece (a streamed translation)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, mode, encoding=None if "b" in mode else encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; the result is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to a temporary file beside `path`, then rename it into place: `path` is old or new, never half."""
    with atomic_output_file(path, encoding=encoding) as stream:
        stream.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data, **dumps_options) -> Path:
    options = {"indent": 2, "ensure_ascii": False, **dumps_options}
    return atomic_write_text(path, json.dumps(data, **options))


class OutputBusyError(RuntimeError):
    """Another process holds the output folder's lock."""


def lock_path(output_dir: str | os.PathLike) -> Path:
    """The lock file of an output folder: outside the folder (nothing is created in the tree), keyed by its path."""
    resolved = os.path.realpath(os.path.expanduser(os.fspath(output_dir)))
    digest = hashlib.sha256(resolved.encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / f"xlm-swcm-locks-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.lock"


@contextlib.contextmanager
def output_lock(output_dir: str | os.PathLike, what: str = "output folder"):
    """Hold the lock of `output_dir` for the block, or raise OutputBusyError at once if another process holds it.

    `flock` locks belong to the open file: the kernel drops them when the process ends in any way (exit, crash,
    SIGKILL), so a crashed run never leaves the folder locked. Only processes on this machine are excluded.
    """
    import fcntl

    path = lock_path(output_dir)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise OutputBusyError(
                f"{what} {os.fspath(output_dir)} is in use by {holder}; wait for that run to end or choose another "
                "output folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        yield path
    finally:
        handle.close()  # releases the lock
