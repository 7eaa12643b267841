"""Input checks shared by every entry point: they run before any work is spent and say in one sentence what to fix.

`InputError` is the base of every "you gave me something wrong" error (recipes, data, checkpoints, folders);
scripts turn it into one `error: ...` line and exit status 2 (`cli_main`).
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import re
import sys
from pathlib import Path


class InputError(ValueError):
    """Something the user gave cannot work; the message says what and how to fix it."""


# Files from which `AutoTokenizer` can build a real vocabulary. Without one of them it silently builds a tokenizer
# that knows only the special tokens and maps all text to <unk>.
TOKENIZER_VOCABULARY_FILES = (
    "tokenizer.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
)
# Above this share of <unk> in a data sample the tokenizer is not the one the data (or the model) needs.
MAX_UNK_SHARE = 0.5


def looks_like_local_path(name: str | os.PathLike) -> bool:
    """A Hub id is `name` or `owner/name`; anything else (absolute, ./, ~, more parts, an existing path) is local."""
    text = os.fspath(name)
    return Path(text).exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text


def require_local_path(path: str | os.PathLike, what: str, *, folder: bool | None = None, hint: str = "") -> Path:
    """`path` must exist (as a folder or a file when `folder` says so); otherwise an InputError naming it."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise InputError(f"{what} {os.fspath(path)} does not exist{'; ' + hint if hint else ''}.")
    if folder is True and not resolved.is_dir():
        raise InputError(f"{what} {os.fspath(path)} is a file; a folder is expected.")
    if folder is False and not resolved.is_file():
        raise InputError(f"{what} {os.fspath(path)} is a folder; a file is expected.")
    return resolved


def require_model_source(name: str | os.PathLike, what: str, hint: str = "") -> str:
    """A folder or Hub name: a local-looking path must exist and be a folder with a config.json."""
    if looks_like_local_path(name):
        folder = require_local_path(name, what, folder=True, hint=hint)
        if not (folder / "config.json").is_file():
            raise InputError(f"{what} {os.fspath(name)} has no config.json; is it a saved model folder?")
    return os.fspath(name)


def load_tokenizer(source: str | os.PathLike, *, vocab_size: int | None = None, sample_texts=None, what="tokenizer"):
    """`AutoTokenizer.from_pretrained(source)`, refusing a folder without vocabulary files, a tokenizer larger than
    the model's vocabulary, and one that turns a sample of the data into mostly <unk>."""
    from transformers import AutoTokenizer

    source = os.fspath(source)
    if looks_like_local_path(source):  # a folder with tokenizer files (an adapter folder has no config.json)
        require_local_path(source, what, folder=True)
    if Path(source).is_dir():
        present = [name for name in TOKENIZER_VOCABULARY_FILES if (Path(source) / name).is_file()]
        if not present:
            raise InputError(
                f"{what} folder {source} has no tokenizer files (none of {', '.join(TOKENIZER_VOCABULARY_FILES)}); "
                "save the tokenizer there (tokenizer.save_pretrained) or name a tokenizer folder explicitly."
            )
    tokenizer = AutoTokenizer.from_pretrained(source)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise InputError(
            f"The {what} from {source} has {len(tokenizer)} tokens but the model's vocabulary only {vocab_size}; "
            "use the encoder's own tokenizer (or resize the model's embeddings)."
        )
    if sample_texts:
        check_unk_share(tokenizer, sample_texts, f"the {what} from {source}")
    return tokenizer


SAFETENSORS_WEIGHTS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
OTHER_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
XLM_SWCM_MODEL_TYPE = "xlm-swcm"


def safetensors_keys(path: str | os.PathLike, what: str = "weights file") -> set[str]:
    """The tensor names in a safetensors file, read from its header; a file that is cut short, not safetensors or
    whose header does not add up to its size is an InputError. Costs a few kilobytes of reading."""
    path = Path(path)
    problem = f"{what} {path} is corrupt or cut short (not a complete safetensors file); save or download it again."
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise InputError(problem)
        length = int.from_bytes(head, "little")
        if length < 2 or length > min(size - 8, 1 << 28):
            raise InputError(problem)
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
            ends = [info["data_offsets"][1] for name, info in header.items() if name != "__metadata__"]
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise InputError(problem) from None
    if 8 + length + max(ends, default=0) != size:
        raise InputError(problem)
    return {name for name in header if name != "__metadata__"}


def weight_keys(folder: str | os.PathLike, what: str = "model folder") -> set[str] | None:
    """The tensor names a saved folder's safetensors weights hold (one file or shards, each checked complete);
    None for weights in another format. A folder without weights is an InputError."""
    folder = Path(folder)
    if (folder / SAFETENSORS_INDEX).is_file():
        index = read_json_file(folder / SAFETENSORS_INDEX, f"{what}'s weights index")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise InputError(f"{folder / SAFETENSORS_INDEX} has no weight_map; save the model again.")
        keys = set()
        for shard in sorted(set(weight_map.values())):
            if not (folder / shard).is_file():
                raise InputError(f"{what} {folder}: weights shard {shard} is missing; save or download it again.")
            keys |= safetensors_keys(folder / shard, f"{what}'s weights shard")
        return keys
    if (folder / SAFETENSORS_WEIGHTS).is_file():
        return safetensors_keys(folder / SAFETENSORS_WEIGHTS, f"{what}'s weights")
    if any((folder / name).is_file() for name in OTHER_WEIGHTS):
        return None
    raise InputError(f"{what} {folder} has no weights ({SAFETENSORS_WEIGHTS}); save the model there again.")


def _summarise_keys(keys) -> str:
    groups = {}
    for key in sorted(keys):
        parts = key.split(".")
        group = ".".join(parts[:2]) if parts[0] == "model" else parts[0]
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{group}.* ({count})" for group, count in groups.items())


def missing_model_keys(config, present: set[str]) -> list[str]:
    """The XLM-SWCM tensors that `present` (a weights file's names) lacks, tied copies aside: what loading would
    leave randomly initialised. The model is built on the meta device (no memory, no initialisation)."""
    import torch

    from . import XLMSWCMForConditionalGeneration

    with torch.device("meta"):
        model = XLMSWCMForConditionalGeneration(config)
    tied = dict(getattr(model, "all_tied_weights_keys", None) or {})
    expected = set(model.state_dict())
    return sorted(key for key in expected - present if tied.get(key) not in present)


def require_trained_model(source: str | os.PathLike, what: str, output_vocabularies: bool = True) -> str:
    """A saved XLM-SWCM folder whose weights initialise every part of the model: not a plain encoder (a decoder
    and LM head would start random), not cut-short or missing weights, and (`output_vocabularies`) no
    output_vocabularies.json that loading would refuse. Checked from config.json, the weights' headers and that
    file, before any model is loaded; a Hub name is checked when it loads (`check_loading_info`)."""
    source = require_model_source(source, what)
    if not looks_like_local_path(source):
        return source
    folder = Path(source)
    config = read_json_file(folder / "config.json", f"{what}'s config")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != XLM_SWCM_MODEL_TYPE:
        raise InputError(
            f"{what} {source} is a {model_type or 'unknown'} model, not a trained XLM-SWCM folder: its decoder and "
            "LM head would start random. Give the folder of a trained XLM-SWCM (a run's final/ or a converted "
            "checkpoint); to start from an encoder use model.init=from_encoder model.encoder=<encoder>."
        )
    present = weight_keys(folder, what)
    if present is not None:
        from . import XLMSWCMConfig

        try:
            model_config = XLMSWCMConfig.from_pretrained(folder)
        except (ValueError, TypeError, KeyError) as error:
            raise InputError(f"{what} {source}: config.json is not a valid XLM-SWCM config ({error}).") from None
        missing = missing_model_keys(model_config, present)
        if missing:
            raise InputError(
                f"{what} {source}'s weights lack {len(missing)} tensors of the model, which would start random: "
                f"{_summarise_keys(missing)} (e.g. {missing[0]}); it is not a complete XLM-SWCM folder."
            )
    if output_vocabularies and isinstance(config.get("vocab_size"), int):
        from .output_vocabulary import read_output_vocabularies

        read_output_vocabularies(folder, config["vocab_size"], what)
    return source


def check_loading_info(source, info: dict, what: str) -> None:
    """After `from_pretrained(..., output_loading_info=True)`: refuse a model whose weights left tensors random."""
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise InputError(
            f"{what} {source}'s weights lack {len(missing)} tensors of the model, which would start random: "
            f"{_summarise_keys(missing)} (e.g. {missing[0]}); it is not a complete XLM-SWCM folder."
        )


def load_trained_model(source, what: str, model_class=None, **kwargs):
    """`model_class.from_pretrained(source)` (default AutoModelForSeq2SeqLM) for a trained XLM-SWCM, refusing a
    folder or Hub model whose weights leave any of it randomly initialised."""
    require_trained_model(source, what)
    if model_class is None:
        from transformers import AutoModelForSeq2SeqLM as model_class
    model, info = model_class.from_pretrained(source, output_loading_info=True, **kwargs)
    check_loading_info(source, info, what)
    return model


def position_limit(source: str | os.PathLike) -> tuple[int, str] | None:
    """(positions, how) the model or encoder at a local folder can embed: XLM-R's position table starts at
    pad_token_id + 1, so max_position_embeddings - pad_token_id - 1. None for a Hub name or an unusual config."""
    if not looks_like_local_path(source) or not (Path(source) / "config.json").is_file():
        return None
    config = read_json_file(Path(source) / "config.json", "config")
    if not isinstance(config, dict):
        return None
    size, pad = config.get("max_position_embeddings"), config.get("pad_token_id", 1)
    if not isinstance(size, int) or not isinstance(pad, int):
        return None
    return size - pad - 1, f"max_position_embeddings {size} - pad_token_id {pad} - 1"


def check_position_limit(source: str | os.PathLike, what: str, lengths: dict[str, int | None]) -> int | None:
    """Every length in `lengths` (name -> number of positions it needs) fits the position table of `source`;
    checked before any work, so a run cannot fail at its first forward pass or at the evaluation after training."""
    found = position_limit(source)
    if found is None:
        return None
    limit, how = found
    for name, value in lengths.items():
        if value is not None and value > limit:
            raise InputError(
                f"{name} needs {value} positions, but {what} {os.fspath(source)} embeds at most {limit} ({how}); "
                f"lower it to fit."
            )
    return limit


def unk_char_share(tokenizer, texts) -> float:
    """Share of the non-space characters of `texts` inside pieces that the tokenizer maps to `<unk>`. Characters,
    not tokens: a Unigram tokenizer folds a run of unknown characters into one `<unk>`."""
    unk = tokenizer.unk_token_id
    texts = [text for text in texts if text and text.strip()]
    if unk is None or not texts:
        return 0.0
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    unknown = total = 0
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"]):
        total += sum(not ch.isspace() for ch in text)
        unknown += sum(
            sum(not ch.isspace() for ch in text[start:end]) for token, (start, end) in zip(ids, offsets) if token == unk
        )
    return unknown / max(1, total)


def check_unk_share(tokenizer, texts, description: str) -> float:
    """`unk_char_share` of `texts`; an InputError above MAX_UNK_SHARE."""
    share = unk_char_share(tokenizer, texts)
    if share > MAX_UNK_SHARE:
        raise InputError(
            f"{description} maps {share:.0%} of the characters of a data sample to <unk>; it does not cover this "
            "text (wrong tokenizer, or a folder whose tokenizer files are missing)."
        )
    return share


def require_writable_output(path: str | os.PathLike, what: str, *, folder: bool = True) -> Path:
    """An output location that can be created: not an existing file where a folder is meant (or the reverse), and
    its nearest existing parent a folder this process may write to. Checked before any work."""
    target = Path(path).expanduser()
    if target.exists():
        if folder and not target.is_dir():
            raise InputError(f"{what} {os.fspath(path)} is a file; name a folder (it is created if missing).")
        if not folder and target.is_dir():
            raise InputError(f"{what} {os.fspath(path)} is a folder; name a file.")
    parent = target if folder and target.is_dir() else target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{what} {os.fspath(path)}: {parent} is a file, so nothing can be created under it.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{what} {os.fspath(path)}: {parent} is not writable; choose another location.")
    return target


def refuse_output_over_inputs(output: str | os.PathLike, what: str, inputs: dict) -> None:
    """An output (file or folder) that is, holds or lies inside an input (a data file, a model folder) would
    overwrite or mix with it: refused, `--overwrite` or not. `inputs`: option -> path (Hub names and None skipped)."""
    target = Path(os.path.realpath(Path(output).expanduser()))
    for option, source in inputs.items():
        if source is None or not looks_like_local_path(source):
            continue
        source_path = Path(os.path.realpath(Path(source).expanduser()))
        if target == source_path:
            relation = "is"
        elif source_path in target.parents:
            relation = "lies inside"
        elif target in source_path.parents:
            relation = "holds"
        else:
            continue
        raise InputError(
            f"{what} {os.fspath(output)} {relation} {option} {os.fspath(source)}; writing there would overwrite or "
            f"mix with an input, so it is refused even with --overwrite. Choose another {what}."
        )


def read_json_file(path: str | os.PathLike, what: str = "file"):
    """A JSON file's content; an unreadable, non-UTF-8 or invalid file is an InputError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {error.start}); is it the right file?") from None
    except json.JSONDecodeError as error:
        raise InputError(f"{what} {path} is not valid JSON ({error.msg}, line {error.lineno}).") from None


def require_utf8(path: str | os.PathLike, what: str = "file", chunk: int = 1 << 20) -> None:
    """A text file must decode as UTF-8; read in chunks, so a large file costs one pass and little memory."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                raise InputError(
                    f"{what} {os.fspath(path)} is not UTF-8 text (byte {offset + error.start}); convert it, e.g. "
                    f"iconv -f <its encoding> -t utf-8."
                ) from None
            offset += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{what} {os.fspath(path)} ends in the middle of a UTF-8 character.") from None


def _os_error_message(error: OSError) -> str:
    advice = {
        errno.EACCES: "you may not read or write it; fix its permissions or choose another path",
        errno.EPERM: "you may not read or write it; fix its permissions or choose another path",
        errno.EROFS: "it is on a read-only file system; choose another path",
        errno.ENOSPC: "the disk is full; free space or write elsewhere",
        errno.EDQUOT: "the disk quota is used up; free space or write elsewhere",
        errno.ENOTDIR: "a part of it is a file, not a folder; choose another path",
        errno.EISDIR: "it is a folder where a file is expected",
        errno.ENOENT: "it does not exist",
        errno.EEXIST: "it exists; choose another path or pass the script's overwrite flag",
    }.get(error.errno, "check the path")
    if not error.filename:  # e.g. a write() that hits a full disk names no file; the advice still applies
        return f"{error.strerror or error}; {advice}." if error.errno in ADVISED_ERRNOS else str(error)
    path = os.fspath(error.filename)
    return f"{path}: {error.strerror or type(error).__name__}; {advice}."


ADVISED_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)
# torch.save's zip writer reports a failed write (a full disk, mostly) as a RuntimeError without an errno.
TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed writing", "unexpected pos", "file write failed")


def write_failure(error: BaseException) -> OSError | None:
    """The file-system error behind `error`: itself when an OSError, the one that safetensors (a SafetensorError
    "... (os error 28)") or torch.save (a RuntimeError) wraps when saving weights; None for anything else."""
    if isinstance(error, OSError):
        return error
    text = str(error)
    if type(error).__name__ == "SafetensorError" and (code := re.search(r"os error (\d+)", text)):
        return OSError(int(code.group(1)), os.strerror(int(code.group(1))))
    if isinstance(error, RuntimeError) and any(marker in text for marker in TORCH_WRITE_FAILURES):
        return OSError(errno.ENOSPC, "torch.save could not write a file")
    return None


def error_message(error: BaseException) -> str | None:
    """The one-line message for an error the user can fix (bad input, the file system, an undecodable file), or
    None for anything else (a bug: its traceback is kept)."""
    from .files import OutputBusyError

    if isinstance(error, (InputError, OutputBusyError)):
        return str(error)
    if (failure := write_failure(error)) is not None:
        return _os_error_message(failure)
    if isinstance(error, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({error.reason} at byte {error.start}); convert it to UTF-8."
    if type(error).__name__ == "SafetensorError":
        return f"a weights file is corrupt or truncated ({error}); save or download it again."
    return None


class ScriptArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad command line is `InputError` (one `error: ...` line from `cli_main`, exit status 2) instead
    of argparse's usage block plus `prog: error: ...`."""

    def error(self, message):
        raise InputError(f"{message} (see {self.prog} --help)")


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class Interrupted(Exception):
    """A run stopped by Ctrl-C; the message says what was kept and how to go on (`cli_main`: exit status 130)."""


# The command line of the script `cli_main` is running (None outside one), for advice such as "rerun: <command>".
_running_command: list[str] | None = None


def same_command(add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> str | None:
    """The running script's command line, shell-quoted, with the flags in `remove` left out and those in `add`
    appended (once); None when no script runs (a library call)."""
    import shlex

    if _running_command is None:
        return None
    parts = [part for part in _running_command if part not in remove]
    return shlex.join(["python", *parts, *(flag for flag in add if flag not in parts)])


def _script_path(main) -> str:
    path = main.__code__.co_filename
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


INTERRUPTED_MESSAGE = (
    "interrupted (Ctrl-C) before the command finished; outputs are renamed into place only when complete, so none "
    "is half-written. Run the same command again to finish"
)


def report_interrupts_while_starting() -> None:
    """In this project's scripts, a Ctrl-C while they import (torch, transformers: seconds, before `cli_main` runs)
    ends in one `error:` line, not a traceback (Python still exits with status 130). Elsewhere nothing changes."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    if not main_file or Path(main_file).resolve().parent != scripts:
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            print(f"error: {INTERRUPTED_MESSAGE}.", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    sys.excepthook = hook


def cli_main(main):
    """Wrap a script's `main(argv)`: bad input, a file-system error (missing, not writable, a file where a folder is
    meant, disk full) or an undecodable file becomes one `error: ...` line and exit status 2; Ctrl-C one `error:`
    line and exit status 130; other errors (bugs) keep their traceback. While it runs, `same_command` gives its
    command line."""

    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        global _running_command
        outer = _running_command
        _running_command = [_script_path(main), *(sys.argv[1:] if argv is None else argv)]
        try:
            return main(argv)
        except KeyboardInterrupt:  # Ctrl-C where no step says what it kept (`Interrupted` does)
            print(f"error: {INTERRUPTED_MESSAGE}: {same_command()}", file=sys.stderr)
            return INTERRUPTED_EXIT_CODE
        except Interrupted as error:
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
            return INTERRUPTED_EXIT_CODE
        except Exception as error:
            message = error_message(error)
            if message is None:
                raise
            message = " ".join(message.split()) or type(error).__name__
            print(f"error: {message}", file=sys.stderr)
            return 2
        finally:
            _running_command = outer

    return wrapped
