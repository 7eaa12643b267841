"""Extend an encoder's vocabulary to scripts it cannot spell (Tibetan, traditional Mongolian, ...).

XLM-R's 250K-piece Unigram vocabulary maps most Tibetan and traditional Mongolian characters to `<unk>`. Extension
learns Unigram pieces for text in those scripts and *appends* them to the tokenizer (`tokenizer.json`'s
`model.vocab`); the model's word embeddings (and an XLM-SWCM model's LM head and bias) grow with
`resize_token_embeddings` and the new rows start from the old model.

What stays as it was, by construction and checked on every run:

* every existing id keeps its piece, score and embedding; the special tokens keep their ids (XLM-R's `<mask>` is its
  last id; the new pieces come after it, so `<mask>` stays where it is and ids only keep growing);
* a new piece always contains a character of the new scripts (`languages`), or, without `languages`, a character the
  old tokenizer maps to `<unk>`. Unigram segmentation can only use a piece whose characters occur in the word, so
  text without such characters (Uyghur, Kazakh, Cyrillic Mongolian, Chinese, English, ...) tokenizes exactly as
  before. New scores are never below the old lowest score, which fixes the `<unk>` penalty (lowest score - 10) too.

New pieces are learned with `tokenizers`' `UnigramTrainer` (a port of sentencepiece's) behind the old tokenizer's own
normaliser and pre-tokenizer, so they are in the form the tokenizer sees (NFKC-style precompiled map, `▁` word
starts). With `languages`, every assigned character of those scripts' Unicode blocks that the tokenizer cannot spell
is added as a single-character piece too, so held-back text in the script does not hit `<unk>` on a character the
corpus happened not to contain.

New rows (`init`):

* `"subwords"` (default): the mean of the old rows of the pieces the *old* tokenizer produces for the piece's string,
  when that contains no `<unk>`; otherwise (most Tibetan / Mongolian pieces) the fallback: the mean of the old rows
  of the pieces written in the same script (`SCRIPT_BLOCKS`, if the old vocabulary has any), else the mean of all
  ordinary rows, plus Gaussian noise of `noise_scale` x the per-dimension standard deviation of the old rows.
* `"mean"`: the mean of all ordinary old rows plus the same noise, for every new piece.

The LM head of an (untied) XLM-SWCM model gets the same treatment (its rows and bias entries).
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from .checks import (
    InputError,
    load_tokenizer,
    read_json_file,
    require_local_path,
    require_model_source,
    require_trained_model,
    require_writable_output,
    unk_char_share,
    weight_keys,
)


__all__ = [
    "DEFAULT_NEW_PIECES",
    "INITIALISATIONS",
    "LANGUAGE_SCRIPTS",
    "SCRIPT_BLOCKS",
    "extend_tokenizer",
    "extend_vocabulary",
    "format_measures",
    "initial_rows",
    "measure_groups",
    "parse_languages",
    "read_corpus",
    "roundtrip_reference",
    "segmentation_report",
    "unk_char_share",
    "unspelled_characters",
]

#: Unicode blocks of the scripts extension knows by name.
SCRIPT_BLOCKS: dict[str, tuple[tuple[int, int], ...]] = {
    "Tibetan": ((0x0F00, 0x0FFF),),
    "Mongolian": ((0x1800, 0x18AF), (0x11660, 0x1167F)),
}
#: `languages` codes and their script. `mn` means the traditional (Uighur-Mongolian) script here: Cyrillic Mongolian
#: is already spelled by XLM-R-family vocabularies.
LANGUAGE_SCRIPTS: dict[str, str] = {"bo": "Tibetan", "dz": "Tibetan", "mn": "Mongolian", "mn-Mong": "Mongolian"}
INITIALISATIONS = ("subwords", "mean")
DEFAULT_NEW_PIECES = 4000
EXTENSION_RECORD = "vocabulary_extension.json"
_CORPUS_FIELDS = ("text", "source", "target")
_TRAINER_UNK = "<unk>"
_TIE_TOLERANCE = 2e-4


# ------------------------------------------------------------------------------------------------------- corpus


def _jsonl_texts(path: Path) -> list[tuple[str | None, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path} line {number} is not JSON ({error.msg}); give one object per line.") from None
        if not isinstance(row, dict):
            raise InputError(f"{path} line {number} is not a JSON object; give one JSON object per line.")
        for field in _CORPUS_FIELDS:
            value = row.get(field)
            if isinstance(value, str) and value.strip():
                language = row.get("src_lang") if field == "source" else row.get("lang")
                rows.append((language if isinstance(language, str) else None, value))
    return rows


def read_corpus(paths: str | os.PathLike | Sequence[str | os.PathLike], *, with_languages: bool = False):
    """Texts of corpus files: `.jsonl` (the string fields `text`, `source`, `target` of every row) or plain text
    (one text per non-blank line). `with_languages=True` gives `(language, text)` pairs instead, the language from a
    row's `lang` (`src_lang` for `source`) or else the file's name without extension.

    A missing file or one without any text is an `InputError`."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InputError("No corpus file given; name at least one text or JSONL file.")
    pairs: list[tuple[str, str]] = []
    for path in paths:
        path = require_local_path(path, "corpus file", folder=False)
        if path.suffix == ".jsonl":
            found = [(language or path.stem, text) for language, text in _jsonl_texts(path)]
        else:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise InputError(f"corpus file {path} is not UTF-8 text; give UTF-8 text or JSONL.") from None
            found = [(path.stem, line.strip()) for line in lines if line.strip()]
        if not found:
            raise InputError(f"corpus file {path} is empty; give a file with at least one line of text.")
        pairs.extend(found)
    return pairs if with_languages else [text for _, text in pairs]


def parse_languages(languages: str | Iterable[str] | None) -> tuple[str, ...]:
    """`"bo,mn"` or `["bo", "mn"]` -> `("bo", "mn")`; unknown codes are an `InputError`."""
    if languages is None:
        return ()
    codes = [code.strip() for code in (languages.split(",") if isinstance(languages, str) else languages)]
    codes = list(dict.fromkeys(code for code in codes if code))
    unknown = [code for code in codes if code not in LANGUAGE_SCRIPTS]
    if unknown:
        known = ", ".join(f"{code} ({script})" for code, script in LANGUAGE_SCRIPTS.items())
        raise InputError(f"No script is known for language(s) {', '.join(unknown)}; use some of: {known}.")
    return tuple(codes)


def _script_of(char: str) -> str | None:
    code = ord(char)
    for script, blocks in SCRIPT_BLOCKS.items():
        if any(start <= code <= end for start, end in blocks):
            return script
    return None


# ---------------------------------------------------------------------------------------------------- tokenizer


def _backend_json(tokenizer) -> dict:
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    if data["model"]["type"] != "Unigram":
        raise InputError(
            f"The tokenizer is a {data['model']['type']} model; only Unigram (sentencepiece, XLM-R-family) "
            "vocabularies can be extended."
        )
    return data


def _normalize(tokenizer, text: str) -> str:
    normalizer = tokenizer.backend_tokenizer.normalizer
    return normalizer.normalize_str(text) if normalizer is not None else text


def _spells(tokenizer, text: str) -> bool:
    """Whether the tokenizer's Unigram model covers `text` (already normalised) without `<unk>`."""
    model = tokenizer.backend_tokenizer.model
    unk = tokenizer.unk_token_id
    return all(token.id != unk for token in model.tokenize(text))


def unspelled_characters(tokenizer, texts: Iterable[str]) -> set[str]:
    """The (normalised, non-space) characters of `texts` that the tokenizer maps to `<unk>`."""
    chars = {ch for text in texts for ch in _normalize(tokenizer, text) if not ch.isspace() and ch != "▁"}
    return {ch for ch in chars if not _spells(tokenizer, ch)}


def _script_alphabet(tokenizer, scripts: Iterable[str]) -> list[str]:
    """Assigned characters of `scripts` that survive normalisation unchanged and that the tokenizer cannot spell."""
    alphabet = []
    for script in scripts:
        for start, end in SCRIPT_BLOCKS[script]:
            for code in range(start, end + 1):
                char = chr(code)
                if unicodedata.category(char) in ("Cn", "Co", "Cs") or char.isspace():
                    continue
                if _normalize(tokenizer, char) == char and not _spells(tokenizer, char):
                    alphabet.append(char)
    return alphabet


def _train_unigram(tokenizer, words: list[str], vocab_size: int) -> list[tuple[str, float]]:
    """Unigram pieces (best first) for `words`, behind the tokenizer's own normaliser and pre-tokenizer."""
    from tokenizers import Tokenizer, trainers
    from tokenizers.models import Unigram

    learner = Tokenizer(Unigram())
    learner.normalizer = tokenizer.backend_tokenizer.normalizer
    learner.pre_tokenizer = tokenizer.backend_tokenizer.pre_tokenizer
    alphabet = {ch for word in words for ch in word} | {"▁"}
    trainer = trainers.UnigramTrainer(
        vocab_size=max(vocab_size, len(alphabet) + 2),  # the trainer refuses fewer pieces than characters
        unk_token=_TRAINER_UNK,
        special_tokens=[_TRAINER_UNK],
        show_progress=False,
    )
    learner.train_from_iterator(words, trainer)
    pieces = json.loads(learner.to_str())["model"]["vocab"]
    pieces = sorted(
        ((str(piece), float(score)) for piece, score in pieces if piece != _TRAINER_UNK), key=lambda item: -item[1]
    )
    # Determinism: the trainer scores the characters it must keep `min_score - 0.0001 * i` in hash-map order, which
    # varies between runs. Give each such chain of near-equal scores one score (its best) and order it by piece.
    canonical, group_score, previous = [], 0.0, None
    for piece, score in pieces:
        if previous is None or previous - score > _TIE_TOLERANCE:
            group_score = round(score, 6)
        canonical.append((piece, group_score))
        previous = score
    return sorted(canonical, key=lambda item: (-item[1], item[0]))


def _new_piece_filter(tokenizer, texts: Sequence[str], languages: tuple[str, ...]):
    """The characters a new piece must contain one of, and a description of them for messages."""
    if languages:
        scripts = sorted({LANGUAGE_SCRIPTS[code] for code in languages})
        return (lambda ch: _script_of(ch) in scripts), f"characters of the {' and '.join(scripts)} script(s)"
    unknown = unspelled_characters(tokenizer, texts)
    if not unknown:
        raise InputError(
            "The tokenizer already spells every character of the corpus, so there is nothing to extend; pass "
            "languages (--languages bo,mn) to add pieces for a script anyway."
        )
    return unknown.__contains__, "characters the tokenizer cannot spell"


def extend_tokenizer(
    tokenizer,
    texts: Sequence[str],
    *,
    languages: str | Iterable[str] | None = None,
    new_pieces: int = DEFAULT_NEW_PIECES,
):
    """A copy of `tokenizer` (XLM-R-style, Unigram) with up to `new_pieces` learned pieces appended, plus, with
    `languages`, the missing characters of their scripts. Returns `(tokenizer, [(piece, score), ...])`, the added
    pieces in id order (the first gets id `len(old vocabulary)`)."""
    from tokenizers import Tokenizer

    _check_new_pieces(new_pieces)
    languages = parse_languages(languages)
    data = _backend_json(tokenizer)
    vocab = data["model"]["vocab"]
    known = {piece for piece, _ in vocab}
    allowed, description = _new_piece_filter(tokenizer, texts, languages)

    # Learn only from the words that contain the new characters: the rest would spend the budget on pieces that
    # are dropped anyway.
    words = [word for text in texts for word in _normalize(tokenizer, text).split() if any(map(allowed, word))]
    if not words:
        raise InputError(f"The corpus has no {description}; give text in the scripts to add.")
    learned = [
        (piece, score)
        for piece, score in _train_unigram(tokenizer, words, new_pieces + 1)
        if piece not in known and any(map(allowed, piece))
    ][:new_pieces]

    floor = min(score for _, score in vocab)  # scores below it would change the <unk> penalty of all text
    added = [(piece, max(score, floor)) for piece, score in learned]
    taken = {piece for piece, _ in added}
    scripts = sorted({LANGUAGE_SCRIPTS[code] for code in languages})
    added += [(char, floor) for char in _script_alphabet(tokenizer, scripts) if char not in taken]
    if not added:
        raise InputError(f"The corpus adds no new piece: its {description} are all in the vocabulary already.")

    extended = json.loads(json.dumps(data))
    extended["model"]["vocab"] = vocab + [[piece, score] for piece, score in added]
    backend = Tokenizer.from_str(json.dumps(extended, ensure_ascii=False))
    return _wrap_like(tokenizer, backend), added


def _check_new_pieces(new_pieces) -> None:
    if isinstance(new_pieces, bool) or not isinstance(new_pieces, int) or new_pieces < 1:
        raise InputError(f"new_pieces (--new-pieces) must be a positive number of pieces, not {new_pieces!r}.")


def _wrap_like(tokenizer, backend):
    from transformers import XLMRobertaTokenizer

    specials = {
        name: getattr(tokenizer, name)
        for name in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
        if getattr(tokenizer, name, None) is not None
    }
    wrapped = XLMRobertaTokenizer(tokenizer_object=backend, model_max_length=tokenizer.model_max_length, **specials)
    for name in ("bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id", "mask_token_id"):
        if getattr(wrapped, name) != getattr(tokenizer, name):
            raise RuntimeError(f"Extension moved {name} from {getattr(tokenizer, name)} to {getattr(wrapped, name)}.")
    return wrapped


# ----------------------------------------------------------------------------------------------------- measures


def roundtrip_reference(tokenizer, text: str) -> str:
    """What `decode(encode(text))` should give back: the tokenizer's normalisation of `text` (for XLM-R a
    precompiled NFKC-style map, e.g. U+202F NARROW NO-BREAK SPACE becomes a space) with runs of whitespace
    collapsed to one space and the ends stripped."""
    return " ".join(_normalize(tokenizer, text).split())


def segmentation_report(old_tokenizer, new_tokenizer, texts: Sequence[str]) -> dict:
    """Before/after figures for `texts`: share of non-space characters mapped to `<unk>`, pieces per non-space
    character, texts whose pieces changed, and texts where `decode(encode(text))` differs from
    `roundtrip_reference`."""
    texts = [text for text in texts if text.strip()]
    chars = sum(not ch.isspace() for text in texts for ch in text)
    report = {"texts": len(texts), "characters": chars}
    for name, tokenizer in (("before", old_tokenizer), ("after", new_tokenizer)):
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        share = unk_char_share(tokenizer, texts)
        decoded = [tokenizer.decode(row, skip_special_tokens=False) for row in ids]
        report[name] = {
            "unk_char_share": share,
            "pieces_per_char": sum(map(len, ids)) / max(1, chars),
            "roundtrip_failures": sum(out != roundtrip_reference(tokenizer, text) for out, text in zip(decoded, texts)),
        }
        report[f"_{name}_ids"] = ids
    before, after = report.pop("_before_ids"), report.pop("_after_ids")
    # Pieces, not ids: a pruned tokenizer renumbers the pieces it keeps without changing any segmentation.
    report["changed_segmentations"] = sum(
        old_tokenizer.convert_ids_to_tokens(row_before) != new_tokenizer.convert_ids_to_tokens(row_after)
        for row_before, row_after in zip(before, after)
    )
    return report


def measure_groups(old_tokenizer, new_tokenizer, groups: dict[str, Sequence[str]]) -> list[dict]:
    """`segmentation_report` for each named group of texts, as rows `{"set": name, ...}`."""
    return [{"set": name, **segmentation_report(old_tokenizer, new_tokenizer, texts)} for name, texts in groups.items()]


def format_measures(rows: Sequence[dict]) -> str:
    """A markdown table of `measure_groups` rows."""
    lines = [
        "| text | texts | chars | <unk> chars before -> after | pieces/char before -> after | changed "
        "segmentations | round-trip failures before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        b, a = row["before"], row["after"]
        lines.append(
            f"| {row['set']} | {row['texts']} | {row['characters']} | "
            f"{b['unk_char_share']:.2%} -> {a['unk_char_share']:.2%} | {b['pieces_per_char']:.3f} -> "
            f"{a['pieces_per_char']:.3f} | {row['changed_segmentations']} | "
            f"{b['roundtrip_failures']} -> {a['roundtrip_failures']} |"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------- model


def _model_kind(model_dir: str) -> str:
    config = read_json_file(Path(model_dir) / "config.json", "the model's config")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type == "xlm-swcm":
        return "xlm-swcm"
    if model_type in ("xlm-roberta", "roberta", "camembert", "xlm-roberta-xl", "bert"):
        return "encoder"
    raise InputError(
        f"{model_dir} holds a {model_type!r} model; give an XLM-R-family encoder folder or a saved XLM-SWCM folder."
    )


def _has_pooler(model_dir: str) -> bool:
    from safetensors import safe_open

    folder = Path(model_dir)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = json.loads(index.read_text())["weight_map"]
    elif (folder / "model.safetensors").is_file():
        with safe_open(folder / "model.safetensors", framework="pt") as weights:
            names = list(weights.keys())
    else:
        return False
    return any("pooler." in name for name in names)


def _load_model(model_dir: str, kind: str):
    if kind == "xlm-swcm":
        from .modeling_xlm_swcm import XLMSWCMForConditionalGeneration

        return XLMSWCMForConditionalGeneration.from_pretrained(model_dir)
    from transformers import AutoModel

    return AutoModel.from_pretrained(model_dir, add_pooling_layer=_has_pooler(model_dir))


def _script_rows(old_tokenizer, script: str) -> list[int]:
    """Ids of old pieces written only in `script` (ignoring the word-start mark)."""
    rows = []
    for piece, index in old_tokenizer.get_vocab().items():
        letters = piece.replace("▁", "")
        if letters and all(_script_of(ch) == script for ch in letters):
            rows.append(index)
    return sorted(rows)


def initial_rows(
    matrix, old_tokenizer, pieces: Sequence[str], *, init: str = "subwords", noise_scale: float = 0.1, generator=None
):
    """Starting values for the rows of `pieces` in `matrix` (old rows: embeddings, LM-head weights, or a bias as a
    one-column matrix), following `init` (see the module docstring). Returns `(rows, sources)`, `sources` saying per
    piece which rule gave its row: `subwords`, `script:<name>` or `mean`."""
    import torch

    if init not in INITIALISATIONS:
        raise InputError(f"init={init!r} is not known; use one of {', '.join(INITIALISATIONS)}.")
    matrix = matrix.detach().float()
    special = set(old_tokenizer.all_special_ids)
    ordinary = [index for index in range(len(old_tokenizer)) if index not in special and index < matrix.shape[0]]
    mean_row, std_row = matrix[ordinary].mean(dim=0), matrix[ordinary].std(dim=0)
    model = old_tokenizer.backend_tokenizer.model
    script_means: dict[str, object] = {}
    rows, sources = [], []
    for piece in pieces:
        ids = [token.id for token in model.tokenize(piece)] if init == "subwords" else []
        if ids and old_tokenizer.unk_token_id not in ids:
            rows.append(matrix[ids].mean(dim=0))
            sources.append("subwords")
            continue
        script = next((_script_of(ch) for ch in piece if _script_of(ch)), None) if init == "subwords" else None
        if script is not None and script not in script_means:
            known = _script_rows(old_tokenizer, script)
            script_means[script] = matrix[known].mean(dim=0) if known else None
        base = script_means.get(script) if script is not None else None
        sources.append(f"script:{script}" if base is not None else "mean")
        base = mean_row if base is None else base
        noise = torch.randn(matrix.shape[1], generator=generator) * std_row * noise_scale
        rows.append(base + noise)
    return (torch.stack(rows) if rows else matrix.new_zeros((0, matrix.shape[1]))), sources


def _grow_model(model, kind: str, old_tokenizer, new_tokenizer, added: Sequence[str], init: str, seed: int) -> dict:
    """Resize the model to the new vocabulary and fill the new rows; returns how each row was initialised."""
    import torch

    first = len(old_tokenizer)  # the first new id
    embeddings = model.get_input_embeddings()
    old_rows = embeddings.weight.detach().clone()
    head = model.get_output_embeddings() if kind == "xlm-swcm" else None
    tied = head is not None and head.weight is embeddings.weight
    old_head = head.weight.detach().clone() if head is not None and not tied else None
    old_bias = head.bias.detach().clone() if head is not None and getattr(head, "bias", None) is not None else None

    size = max(old_rows.shape[0], len(new_tokenizer))
    model.resize_token_embeddings(size, mean_resizing=False)
    generator = torch.Generator().manual_seed(seed)
    new_ids = slice(first, first + len(added))
    with torch.no_grad():
        rows, sources = initial_rows(old_rows, old_tokenizer, added, init=init, generator=generator)
        model.get_input_embeddings().weight[new_ids] = rows.to(old_rows.dtype)
        new_head = model.get_output_embeddings() if kind == "xlm-swcm" else None
        if old_head is not None:
            head_rows, _ = initial_rows(old_head, old_tokenizer, added, init=init, generator=generator)
            new_head.weight[new_ids] = head_rows.to(old_head.dtype)
        if old_bias is not None:
            bias_rows, _ = initial_rows(old_bias[:, None], old_tokenizer, added, init=init, noise_scale=0.0)
            new_head.bias[new_ids] = bias_rows[:, 0].to(old_bias.dtype)
    counts: dict[str, int] = {}
    for source in sources:
        counts[source] = counts.get(source, 0) + 1
    return {"rows": size, "initialised_from": counts, "lm_head": "tied" if tied else ("resized" if head else None)}


def _check_unchanged(old_tokenizer, new_tokenizer, texts: Sequence[str]) -> int:
    old_ids = old_tokenizer(list(texts), add_special_tokens=True)["input_ids"] if texts else []
    new_ids = new_tokenizer(list(texts), add_special_tokens=True)["input_ids"] if texts else []
    for text, before, after in zip(texts, old_ids, new_ids):
        if before != after:
            raise RuntimeError(f"Extension changed the segmentation of {text!r}; this is a bug, please report it.")
    return len(texts)


def extend_vocabulary(
    model_dir: str | os.PathLike,
    texts: Sequence[str],
    output_dir: str | os.PathLike,
    *,
    languages: str | Iterable[str] | None = None,
    new_pieces: int = DEFAULT_NEW_PIECES,
    init: str = "subwords",
    seed: int = 0,
    unchanged_texts: Sequence[str] = (),
    overwrite: bool = False,
) -> dict:
    """Write a copy of the model folder `model_dir` (an XLM-R-family encoder, or a saved XLM-SWCM model) whose
    vocabulary also spells the scripts of `texts` (restricted to `languages`' scripts when given).

    `unchanged_texts` (e.g. the training data of the languages the tokenizer already covered) and the corpus texts
    are checked to tokenize exactly as before where they have none of the new pieces' characters (those with such
    characters are counted in `unchanged_texts_with_new_characters`, not checked); a difference fails the run.
    The output folder holds the model, the tokenizer (`tokenizer.json`; `AutoTokenizer` loads it without custom
    code) and `vocabulary_extension.json` (what was added and how the rows were initialised); it appears only when
    complete.
    Returns that record."""
    from .files import atomic_output_dir, replacement_refusal

    model_dir = require_model_source(model_dir, "model folder")
    require_local_path(model_dir, "model folder", folder=True)
    old_tokenizer = load_tokenizer(model_dir, what="tokenizer")
    kind = _model_kind(model_dir)
    if kind == "xlm-swcm":
        require_trained_model(model_dir, "model folder")  # weights complete, nothing left to start random
    else:
        weight_keys(model_dir, "model folder")  # weights present and not cut short
    require_writable_output(output_dir, "output folder")
    texts = [text for text in texts if text and text.strip()]
    if not texts:
        raise InputError("The corpus has no text; give at least one non-blank line.")
    if init not in INITIALISATIONS:
        raise InputError(f"init={init!r} is not known; use one of {', '.join(INITIALISATIONS)}.")
    _check_new_pieces(new_pieces)
    parse_languages(languages)
    if reason := replacement_refusal(output_dir, inputs={"model folder": model_dir}):  # never the model or a run
        raise InputError(reason)
    if Path(output_dir).exists() and not overwrite:
        raise InputError(f"{output_dir} exists; choose another output folder or pass overwrite (--overwrite).")

    new_tokenizer, added = extend_tokenizer(old_tokenizer, texts, languages=languages, new_pieces=new_pieces)
    pieces = [piece for piece, _ in added]
    new_chars = set("".join(pieces)) - {"▁"}

    # Text with the new characters is meant to change; everything else must not.
    def touched(text: str) -> bool:
        return bool(new_chars.intersection(_normalize(old_tokenizer, text)))

    skipped = sum(map(touched, unchanged_texts))
    checked = _check_unchanged(
        old_tokenizer, new_tokenizer, [text for text in [*unchanged_texts, *texts] if not touched(text)]
    )

    model = _load_model(model_dir, kind)
    growth = _grow_model(model, kind, old_tokenizer, new_tokenizer, pieces, init, seed)
    record = {
        "source": os.fspath(model_dir),
        "model": kind,
        "languages": list(parse_languages(languages)),
        "init": init,
        "seed": seed,
        "old_vocab_size": len(old_tokenizer),
        "new_vocab_size": len(new_tokenizer),
        "model_rows": growth["rows"],
        "added_pieces": len(pieces),
        "first_new_id": len(old_tokenizer),
        "initialised_from": growth["initialised_from"],
        "corpus_texts": len(texts),
        "texts_checked_unchanged": checked,
        "unchanged_texts_with_new_characters": skipped,
        "pieces": pieces,
    }
    with atomic_output_dir(output_dir, overwrite=overwrite, inputs={"model folder": model_dir}) as staging:
        model.save_pretrained(staging)
        new_tokenizer.save_pretrained(staging)
        generation = Path(model_dir) / "generation_config.json"
        if kind == "xlm-swcm" and generation.is_file() and not (staging / generation.name).is_file():
            (staging / generation.name).write_bytes(generation.read_bytes())
        (staging / EXTENSION_RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False), encoding="utf-8")
        _verify_folder(staging, new_tokenizer, [*texts[:64], *unchanged_texts[:64]])
    return record


def _verify_folder(folder: Path, tokenizer, probe_texts: Sequence[str]) -> None:
    """The written folder loads with plain `AutoTokenizer`, tokenizes like `tokenizer`, and fits the model."""
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(folder)
    probe = list(probe_texts)
    if len(reloaded) != len(tokenizer) or reloaded(probe)["input_ids"] != tokenizer(probe)["input_ids"]:
        raise RuntimeError(f"The tokenizer saved in {folder} does not reload identically.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config["vocab_size"] < len(tokenizer):
        raise RuntimeError(f"The model in {folder} has fewer rows ({config['vocab_size']}) than pieces.")
