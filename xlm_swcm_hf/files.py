"""Writing output folders so that a failure never leaves a half-written one behind."""

import contextlib
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
