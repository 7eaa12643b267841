"""A trained XLM-SWCM loaded for inference on one of the CPU backends that scripts/translate.py and
scripts/evaluate_model.py offer (`--backend`). docs/benchmark.md measures them against each other.

- `torch`: the model as trained, float32 (exact);
- `torch-int8`: `quantization.quantize_for_cpu` (PyTorch's dynamic int8 Linear layers);
- `onnxruntime`: the model exported to ONNX (`onnx_runtime.export_onnx`), float32, run by ONNX Runtime;
- `onnxruntime-int8`: the same graphs with onnxruntime's dynamic int8 quantization.

The ONNX backends export once and keep the graphs in a cache folder keyed by the model's files (a changed folder is
exported again), so later runs start from the graphs without loading the PyTorch model at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from .checks import InputError, load_trained_model, looks_like_local_path


BACKENDS = ("torch", "torch-int8", "onnxruntime", "onnxruntime-int8")
DEFAULT_BACKEND = "torch"
BACKEND_ATTRIBUTE = "_xlm_swcm_inference_backend"  # set on the loaded model; part of translate's resume fingerprint


def default_onnx_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "xlm_swcm_hf" / "onnx"


def inference_backend(model) -> str:
    """The backend `load_for_inference` loaded `model` with (`torch` for any other model)."""
    return getattr(model, BACKEND_ATTRIBUTE, "torch")


def check_backend(backend: str) -> None:
    """Refuses an unknown backend, or an ONNX one without onnxruntime/onnxscript installed, before anything loads."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}.")
    if backend.startswith("onnxruntime"):
        from .onnx_runtime import require_onnx_libraries

        require_onnx_libraries()


def add_backend_arguments(parser) -> None:
    """`--backend`, its `--quantize int8` shorthand and `--onnx-cache` (translate.py, evaluate_model.py)."""
    parser.add_argument("--backend", choices=BACKENDS, help=f"how to run the model (default: {DEFAULT_BACKEND})")
    parser.add_argument("--quantize", choices=("none", "int8"), help="int8: the same as --backend torch-int8")
    parser.add_argument("--onnx-cache", help=f"where ONNX exports are kept (default: {default_onnx_cache()})")


def backend_from_arguments(args) -> str:
    """The backend the command line asks for, checked (installed libraries included) before anything loads."""
    backend = args.backend or DEFAULT_BACKEND
    if args.quantize == "int8":
        if args.backend not in (None, "torch-int8"):
            raise InputError(f"--quantize int8 means --backend torch-int8; it cannot go with --backend {args.backend}.")
        backend = "torch-int8"
    check_backend(backend)
    return backend


def model_files_key(source: str | os.PathLike, backend: str) -> str:
    """A name for the export of `source` with `backend`: a local folder by its files' names, sizes and modification
    times; a Hub model by the commit its cached snapshot resolves to."""
    from .onnx_runtime import EXPORT_FORMAT

    facts = {"backend": backend, "format": EXPORT_FORMAT}
    if looks_like_local_path(source):
        folder = Path(source).resolve()
        facts["folder"] = str(folder)
        facts["files"] = sorted(
            (path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in folder.iterdir() if path.is_file()
        )
    else:
        from huggingface_hub import snapshot_download

        facts["snapshot"] = snapshot_download(str(source), allow_patterns=["config.json"])
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def load_for_inference(
    source: str | os.PathLike,
    backend: str = DEFAULT_BACKEND,
    what: str = "--model",
    trust_remote_code: bool = False,
    onnx_cache: str | os.PathLike | None = None,
    load_torch_model=None,
):
    """The model at `source` on `backend`. `load_torch_model()` (default: `checks.load_trained_model` through
    AutoModelForSeq2SeqLM) gives the float32 PyTorch model, e.g. a LoRA adapter merged into its base; the ONNX
    backends call it only when no export of this source is cached under `onnx_cache`."""
    check_backend(backend)
    if load_torch_model is None:

        def load_torch_model():
            from transformers import AutoModelForSeq2SeqLM

            if not trust_remote_code:
                import xlm_swcm_hf  # noqa: F401  registers the Auto classes
            return load_trained_model(source, what, AutoModelForSeq2SeqLM, trust_remote_code=trust_remote_code)

    if backend.startswith("torch"):
        model = load_torch_model()
        if backend == "torch-int8":
            from .quantization import quantize_for_cpu

            model = quantize_for_cpu(model, "int8")
    else:
        from .onnx_runtime import OnnxRuntimeXLMSWCM, export_onnx

        directory = Path(onnx_cache or default_onnx_cache()) / model_files_key(source, backend)
        if not directory.is_dir():
            directory.parent.mkdir(parents=True, exist_ok=True)
            print(f"exporting {source} for {backend} to {directory} (once; later runs reuse it) ...", file=sys.stderr)
            quantize = "int8" if backend.endswith("-int8") else None
            export_onnx(load_torch_model(), directory, quantize=quantize)
        model = OnnxRuntimeXLMSWCM.from_exported(directory)
        model.config._name_or_path = str(source)
    setattr(model, BACKEND_ATTRIBUTE, backend)
    return model
