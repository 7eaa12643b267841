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


# The share of physical memory the decoding state (logits, scores, caches) of one batch may take; the rest is the
# model's, the data's and the system's.
DECODING_MEMORY_SHARE = 0.5
FLOAT_BYTES = 4


def physical_memory() -> int:
    """This machine's physical memory in bytes."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _field(config, name, default=None):
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def bytes_per_sequence(config, max_new_tokens: int) -> int:
    """An estimate of one decoded sequence's (a beam of a sentence) float32 state: three vocabulary-sized rows
    (logits, log-probabilities, beam scores) and the decoder's self-attention keys and values for max_new_tokens
    (the source's cross-attention cache aside: this bounds absurd settings, not a batch of long sources)."""
    vocab = int(_field(config, "vocab_size", 0) or 0)
    hidden = int(_field(config, "hidden_size", 0) or 0)
    layers = len(_field(config, "decoder_layout", None) or []) or int(_field(config, "num_hidden_layers", 0) or 0)
    return FLOAT_BYTES * (3 * vocab + 2 * layers * hidden * max(1, max_new_tokens))


def check_decoding_memory(
    config, generation, *, num_beams=None, sentences=1, max_new_tokens=None, num_return_sequences=None, what=""
) -> int:
    """Refuse, before any work, a batch whose beams (sentences x beams, or x num_return_sequences) cannot fit in
    DECODING_MEMORY_SHARE of physical memory (`bytes_per_sequence`). `generation`: the folder's generation_config
    (a dict or object) for the values not given. Returns the bound (sequences)."""
    beams = int(num_beams or _field(generation, "num_beams", 1) or 1)
    returned = int(num_return_sequences or _field(generation, "num_return_sequences", 1) or 1)
    length = max_new_tokens or _field(generation, "max_new_tokens", None) or _field(generation, "max_length", 20)
    per_sequence = bytes_per_sequence(config, int(length))
    memory = physical_memory()
    bound = max(1, int(memory * DECODING_MEMORY_SHARE // max(1, per_sequence)))
    sequences = sentences * max(beams, returned)
    if sequences > bound:
        asked = f"{beams} beams" if returned <= beams else f"{returned} returned sequences"
        batch = f" x {sentences} sentences per batch" if sentences > 1 else ""
        raise InputError(
            f"{asked}{batch} = {sequences} sequences decoded at once, but at most {bound} fit in this machine's "
            f"memory ({DECODING_MEMORY_SHARE:.0%} of {memory / 2**30:.1f} GiB at about "
            f"{per_sequence / 2**10:.0f} KiB a sequence: vocabulary {_field(config, 'vocab_size')} and "
            f"{length} new tokens); lower --num-beams{' or the batch size' if sentences > 1 else ''}{what}."
        )
    return bound


def read_generation_settings(source) -> tuple[dict | None, dict]:
    """config.json and generation_config.json of a local folder ({} where a file is missing); (None, {}) for a
    Hub name (its model is checked once it is loaded)."""
    from .checks import read_json_file

    if not looks_like_local_path(source) or not (Path(source) / "config.json").is_file():
        return None, {}
    config = read_json_file(Path(source) / "config.json", "config")
    path = Path(source) / "generation_config.json"
    generation = read_json_file(path, "generation config") if path.is_file() else {}
    return (config if isinstance(config, dict) else None), (generation if isinstance(generation, dict) else {})


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
