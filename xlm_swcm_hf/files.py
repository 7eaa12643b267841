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


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put back at once
    os.umask(mask)
    return mask


def ordinary_modes(path: str | os.PathLike) -> None:
    """Give `path` (and, for a folder, everything in it) the mode a plain `open`/`mkdir` gives under the umask:
    mkstemp, mkdtemp and safetensors' writer make owner-only files, unlike the rest of an output."""
    mask = _umask()
    path = Path(path)
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if entry.is_symlink():
            continue
        executable = entry.is_dir() or entry.stat().st_mode & 0o100
        entry.chmod((0o777 if executable else 0o666) & ~mask)


# A training run, or a folder of models: never replaced by an output, --overwrite or not.
RUN_PATTERNS = ("checkpoint-*", "trainer_state.json", "log_history.json")
MODEL_FILES = ("config.json", "adapter_config.json", "model.safetensors", "model.safetensors.index.json")


def _run_or_models_inside(folder: Path) -> str | None:
    for pattern in RUN_PATTERNS:
        if found := next(folder.glob(pattern), None):
            return f"holds a training run ({found.name})"
    for child in sorted(folder.iterdir()):
        if child.is_dir() and not child.is_symlink():
            for sub in (child, *sorted(entry for entry in child.iterdir() if entry.is_dir())):
                if any((sub / name).is_file() for name in MODEL_FILES):
                    return f"holds a model folder ({sub.relative_to(folder)})"
    return None


def replacement_refusal(
    output_dir: str | os.PathLike,
    *,
    what: str = "output folder",
    kind: str | None = None,
    recognise=None,
    inputs: dict | None = None,
) -> str | None:
    """Why `output_dir` must not be written, even with overwrite; None when it may be (if it exists, with overwrite).

    Refused: a path that is, lies inside or holds one of `inputs` (option -> path; Hub names and None skipped); an
    existing folder that `recognise(folder)` does not accept as the caller's own kind of output (`kind` names it);
    without `recognise`, an existing folder that holds a training run or model folders (a model folder itself stays
    replaceable: the converter, the vocabulary tools and train.py's final/ replace their own earlier output)."""
    from .checks import InputError, refuse_output_over_inputs

    try:
        refuse_output_over_inputs(output_dir, what, inputs or {})
    except InputError as error:
        return str(error)
    folder = Path(output_dir).expanduser()
    if not folder.is_dir() or not any(folder.iterdir()):  # an empty folder holds nothing to lose
        return None
    if recognise is not None:
        if recognise(folder):
            return None
        names = sorted(entry.name for entry in folder.iterdir())
        listed = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        reason = f"is not {kind or 'an output of this kind'} (it holds {listed or 'nothing'})"
    elif (reason := _run_or_models_inside(folder)) is None:
        return None
    return (
        f"{what} {os.fspath(output_dir)} {reason}; this command did not write it, so it is not replaced, even with "
        f"--overwrite. Choose another {what}."
    )


def check_output_dir(output_dir: str | os.PathLike, overwrite: bool, **refusal_options) -> None:
    """Before any work: `replacement_refusal`'s reason, or (without `overwrite`) an existing folder, as one
    InputError; --overwrite is suggested only where it would be accepted. Options as for `replacement_refusal`."""
    from .checks import InputError

    if reason := replacement_refusal(output_dir, **refusal_options):
        raise InputError(reason)
    if Path(output_dir).expanduser().exists() and not overwrite:
        what = refusal_options.get("what", "output folder")
        raise InputError(f"{what} {os.fspath(output_dir)} exists; pass --overwrite to replace it or choose another.")


@contextlib.contextmanager
def atomic_output_dir(output_dir: str | os.PathLike, overwrite: bool = False, **refusal_options):
    """Yield a temporary folder next to `output_dir`; it becomes `output_dir` only if the block succeeds.

    On any error the temporary folder is removed, so a half-written output folder is never left behind. An existing
    `output_dir` is replaced only with `overwrite=True`, and only after the new one is complete. What
    `replacement_refusal(output_dir, **refusal_options)` refuses (an input, a run, a folder of models, one that
    `recognise` rejects) is an InputError, overwrite or not.
    """
    if reason := replacement_refusal(output_dir, **refusal_options):
        from .checks import InputError

        raise InputError(reason)
    output_dir = Path(output_dir).resolve()
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} exists; choose another output folder or pass overwrite/--overwrite.")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    try:
        yield staging
        ordinary_modes(staging)
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
        ordinary_modes(temporary)
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
