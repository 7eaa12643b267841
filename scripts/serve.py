#!/usr/bin/env python
"""Try a trained XLM-SWCM in the browser: a Gradio page that translates a text into one of the model's languages.

    python scripts/serve.py --model artifacts/demo/swcm/final [--port 7860] [--quantize int8] [--share no]

The model loads through `AutoModelForSeq2SeqLM.from_pretrained(..., trust_remote_code=True)` (the folder's own code),
so this file also runs where xlm_swcm_hf is not installed: it is the `app.py` of a Hugging Face Space
(`push_to_hub.py --space-app DIR` writes one). Without --model it serves $XLM_SWCM_MODEL, else the first entry of
`models:` in the README.md beside this file (a Space's card). The target languages are the model card's
`target_languages` (an older card's `language` list; a newer one lists the source languages there too) or those of
--languages; the page adds the model's target-language tag (`ug: text`) for the user. Examples come from
--examples, else `examples.jsonl` beside this file or in the model folder, else the test predictions of the training
run the folder is the `final/` of (`../test/predictions.jsonl`).

The output box renders right-to-left for Arabic-script languages (Uyghur), top-to-bottom for traditional Mongolian
script, and uses Noto Serif Tibetan, Noto Sans Mongolian and Noto Naskh Arabic from Debian's fonts-noto-core
(/usr/share/fonts), which the app serves to the browser as web fonts; Chinese uses the browser's CJK font.
"""

import argparse
import functools
import html
import itertools
import json
import os
import re
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path


try:  # where the package is installed: its checks, tag and quantization (one home for each)
    from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_trained_model
    from xlm_swcm_hf.hub import TARGET_LANGUAGES_KEY
    from xlm_swcm_hf.quantization import quantize_for_cpu
    from xlm_swcm_hf.translation import LANGUAGE_TAG as LANGUAGE_CODE
    from xlm_swcm_hf.translation import TAG_TEMPLATE
except ImportError:  # a Space: only this file, the model and requirements.txt; the same behaviour, fewer checks
    TAG_TEMPLATE = "{lang}: {text}"  # translation.TAG_TEMPLATE (tests/scripts/test_serve.py keeps them equal)
    LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:_[A-Z][a-z]{3})?")  # translation.LANGUAGE_TAG (the test too)
    TARGET_LANGUAGES_KEY = "target_languages"  # hub.TARGET_LANGUAGES_KEY, the card's target languages (the test too)
    quantize_for_cpu = require_trained_model = None

    class InputError(ValueError):
        """Something the user gave cannot work (xlm_swcm_hf.checks.InputError)."""

    class ScriptArgumentParser(argparse.ArgumentParser):
        """A bad command line is one `error:` line, exit status 2 (xlm_swcm_hf.checks.ScriptArgumentParser)."""

        def error(self, message):
            raise InputError(f"{message} (see {self.prog} --help)")

    def cli_main(main):
        """Bad input or a file-system error becomes one `error: ...` line and exit status 2."""

        @functools.wraps(main)
        def wrapped(argv=None) -> int:
            try:
                return main(argv)
            except KeyboardInterrupt:
                print("error: interrupted (Ctrl-C) before the page was served; run the command again.", file=sys.stderr)
                return 130
            except (InputError, OSError) as error:
                print(f"error: {' '.join(str(error).split()) or type(error).__name__}", file=sys.stderr)
                return 2

        return wrapped


# The page's own settings; the decoding defaults are the model folder's generation_config.
MAX_BEAMS = 8
DEFAULT_SEED = 0
EXAMPLES_PER_LANGUAGE = 2
HISTORY_SIZE = 8
QUEUE_SIZE = 16  # requests waiting behind the one being translated; more are refused with Gradio's "queue is full"
MODEL_ENV = "XLM_SWCM_MODEL"
XLM_SWCM_MODEL_TYPE = "xlm-swcm"
TOKENIZER_FILES = ("tokenizer.json", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model", "vocab.json")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# A leading `xx: ` (or `xx_Abcd: `) is the model's target-language tag; the page adds it, so a typed one is checked.
TYPED_TAG = re.compile(r"\s*([a-z]{2,3}(?:_[A-Z][a-z]{3})?):(?:\s|$)")
LANGUAGE_NAMES = {
    "bo": "Tibetan",
    "ug": "Uyghur",
    "kk": "Kazakh",
    "kk_Arab": "Kazakh (Arabic script)",
    "mn": "Mongolian",
    "zh": "Chinese",
    "en": "English",
}
RIGHT_TO_LEFT = {"ar", "fa", "ug", "ur", "ps", "sd", "ckb", "he", "yi", "dv"}
RIGHT_TO_LEFT_SCRIPTS = {"Arab", "Hebr", "Thaa", "Syrc"}
MONGOLIAN_SCRIPT = re.compile("[\u1800-\u18af\U00011660-\U0001167f]")
# Web fonts the app serves from Debian's fonts-noto-core: (family, file, unicode-range).
FONT_DIRS = ("/usr/share/fonts/truetype/noto", "/usr/share/fonts", "/usr/local/share/fonts")
FONTS = (
    ("XLM-SWCM Tibetan", "NotoSerifTibetan-Regular.ttf", "U+0F00-0FFF, U+25CC"),
    ("XLM-SWCM Mongolian", "NotoSansMongolian-Regular.ttf", "U+1800-18AF, U+11660-1167F, U+180B-180F, U+202F"),
    (
        "XLM-SWCM Arabic",
        "NotoNaskhArabic-Regular.ttf",
        "U+0600-06FF, U+0750-077F, U+08A0-08FF, U+FB50-FDFF, U+FE70-FEFF",
    ),
)
# The served fonts first, then the installed families of the same (Tibetan stacks are shaped by these), then CJK.
TEXT_FONTS = (
    '"XLM-SWCM Tibetan", "Noto Serif Tibetan", "Noto Sans Tibetan", "XLM-SWCM Mongolian", "Noto Sans Mongolian", '
    '"XLM-SWCM Arabic", "Noto Naskh Arabic", "Noto Sans CJK SC", "Noto Sans", sans-serif'
)


# --------------------------------------------------------------------------------------------------- the folder
def language_name(code: str) -> str:
    return f"{LANGUAGE_NAMES[code]} ({code})" if code in LANGUAGE_NAMES else code


def text_direction(language: str) -> str:
    """`rtl` for a right-to-left language or script tag (ug, kk_Arab), else `auto` (the text's first letter)."""
    code, _, script = language.partition("_")
    return "rtl" if code in RIGHT_TO_LEFT or script in RIGHT_TO_LEFT_SCRIPTS else "auto"


def card_metadata(path: Path) -> dict:
    """The YAML block at the top of a model or Space card; {} when there is none."""
    import yaml

    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return {}
    try:
        metadata = yaml.safe_load(text[4:].split("\n---", 1)[0])
    except yaml.YAMLError as error:
        raise InputError(f"{path}: the card's metadata is not valid YAML ({error}).") from None
    return metadata if isinstance(metadata, dict) else {}


def default_model() -> str | None:
    """$XLM_SWCM_MODEL, else the first `models:` entry of the Space card beside this file."""
    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    metadata = card_metadata(Path(__file__).resolve().parent / "README.md")
    models = metadata.get("models") if "sdk" in metadata else None
    return str(models[0]) if isinstance(models, list) and models else None


def is_local(name: str) -> bool:
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.count("/") > 1


def local_folder(name: str) -> Path:
    """The model folder: a local path as it is, a Hub id downloaded (or taken from the cache) first."""
    if is_local(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise InputError(f"--model {name} {'is a file' if folder.exists() else 'does not exist'}; give a folder.")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name))
    except Exception as error:  # offline, unknown repository, no access: one line, nothing loaded
        raise InputError(f"--model {name}: cannot fetch it from the Hub ({type(error).__name__}: {error}).") from None


def read_config(folder: Path, name: str) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"--model {name} has no config.json; give a saved XLM-SWCM folder (a run's final/).")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"--model {name}: config.json is not valid JSON ({error}).") from None
    return config if isinstance(config, dict) else {}


def check_folder(folder: Path, name: str) -> dict:
    """What can be told from the folder before loading: an XLM-SWCM config with its remote code, weights, tokenizer
    files (and, where xlm_swcm_hf is installed, weights that initialise every tensor). Returns config.json."""
    config = read_config(folder, name)
    if config.get("model_type") != XLM_SWCM_MODEL_TYPE:
        raise InputError(
            f"--model {name} is a {config.get('model_type') or 'unknown'} model, not an XLM-SWCM folder; give a "
            "trained XLM-SWCM folder (a run's final/ or a converted checkpoint)."
        )
    auto_map = config.get("auto_map") or {}
    code = sorted({reference.split("--")[-1].split(".")[0] + ".py" for reference in auto_map.values()})
    missing = [module for module in code if not (folder / module).is_file()]
    if "AutoModelForSeq2SeqLM" not in auto_map or missing:
        raise InputError(
            f"--model {name} does not carry its model code (config.json's auto_map"
            + (f" names {', '.join(missing)}, which are missing" if missing else " lacks AutoModelForSeq2SeqLM")
            + "); save it with xlm_swcm_hf (train.py or save_hub_folder) so that it loads with trust_remote_code."
        )
    if not any((folder / weights).is_file() for weights in WEIGHT_FILES):
        raise InputError(f"--model {name} has no weights (model.safetensors); save or download the model again.")
    if not any((folder / tokenizer).is_file() for tokenizer in TOKENIZER_FILES):
        raise InputError(f"--model {name} has no tokenizer files (none of {', '.join(TOKENIZER_FILES)}).")
    if require_trained_model is not None:
        require_trained_model(folder, "--model")
    return config


def model_languages(folder: Path, given: str | None, name: str) -> list[str]:
    """The model card's target languages ("multilingual" aside), or those of --languages, which must be among them
    where the card names any (a tag the model was not trained with would serve nonsense)."""
    metadata = card_metadata(folder / "README.md")
    listed = metadata.get(TARGET_LANGUAGES_KEY, metadata.get("language")) or []
    trained = [str(code) for code in (listed if isinstance(listed, list) else [listed]) if code != "multilingual"]
    if given is not None:
        languages = [code.strip() for code in given.split(",") if code.strip()]
        source = "--languages"
    else:
        languages, source = trained, f"the model card ({Path(name).name if is_local(name) else name}'s README.md)"
        if not languages:
            raise InputError(
                f"--model {name}: the model card names no target languages; pass them, e.g. --languages bo,ug,kk,mn,zh."
            )
    bad = [code for code in languages if not LANGUAGE_CODE.fullmatch(code)]
    if bad or not languages:
        raise InputError(f"{source}: {', '.join(bad) or 'nothing'} is not a language code like ug or kk_Arab.")
    unknown = [code for code in languages if trained and code not in trained]
    if unknown:
        raise InputError(
            f"--languages: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not among the languages the "
            f"model was trained with ({', '.join(trained)}); give some of those."
        )
    return list(dict.fromkeys(languages))


def display_name(name: str) -> str:
    """What the page shows of the model: a Hub id as it is, a local folder by its base name only (the page may be
    public with --share: no local path, user or host name on it)."""
    return Path(name).expanduser().resolve().name if is_local(name) else name


def example_rows(path: Path) -> list[dict]:
    """The rows of a JSONL examples file (`source`, optional `lang`); a file that cannot serve is an InputError."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"--examples {path}: line {number} is not valid JSON ({error.msg}).") from None
        if not isinstance(row, dict) or not isinstance(row.get("source"), str):
            raise InputError(f"--examples {path}: line {number} has no text 'source' field.")
        rows.append(row)
    return rows


def find_examples(folder: Path, given: str | None, languages: list[str]) -> tuple[list[list[str]], Path | None]:
    """Up to EXAMPLES_PER_LANGUAGE [text, language] pairs per language (the tag taken off the text), and the file."""
    if given is not None:
        path = Path(given)
        if not path.is_file():
            raise InputError(f"--examples {given} {'is a folder' if path.exists() else 'does not exist'}.")
    else:
        candidates = [Path(__file__).resolve().parent / "examples.jsonl", folder / "examples.jsonl"]
        candidates.append(folder.parent / "test" / "predictions.jsonl")
        path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            return [], None
    chosen: dict[str, list[str]] = {language: [] for language in languages}
    for row in example_rows(path):
        source, language = row["source"].strip(), row.get("lang")
        tag = TYPED_TAG.match(source)
        if tag and (language is None or tag.group(1) == language):
            language, source = tag.group(1), source[tag.end() :].strip()
        if language in chosen and source and len(chosen[language]) < EXAMPLES_PER_LANGUAGE:
            chosen[language].append(source)
    return [[text, language] for language in languages for text in chosen[language]], path


def font_files() -> dict[str, Path]:
    """The fonts of FONTS found on this machine (family -> file)."""
    found = {}
    for family, name, _ in FONTS:
        for directory in FONT_DIRS:
            matches = sorted(Path(directory).rglob(name)) if Path(directory).is_dir() else []
            if matches:
                found[family] = matches[0]
                break
    return found


def check_port(port: int | None) -> None:
    if port is None:
        return
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be between 1 and 65535, got {port}.")
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a closed one's port is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InputError(f"--port {port} is not free on {host} ({error.strerror}); choose another port.") from None


# --------------------------------------------------------------------------------------------------- translating
@dataclass
class Result:
    """One request's answer: the translation, or an error; notes the user should read; time and tokens."""

    text: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tokens: int = 0
    language: str = ""
    request: int = field(default_factory=itertools.count(1).__next__)  # shown in the page, so a test can wait for it

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class Translator:
    """The model, its tokenizer and languages; `translate` checks a request and returns what `generate` gives."""

    def __init__(self, model, tokenizer, languages: list[str], full_vocabulary: bool = False):
        self.model, self.tokenizer, self.languages = model, tokenizer, languages
        # a language with one of the model's output vocabularies decodes within it, unless --full-vocabulary
        self.output_vocabularies = {} if full_vocabulary else getattr(model, "output_vocabularies", None) or {}
        config, generation = model.config, model.generation_config
        limits = [config.max_position_embeddings - config.pad_token_id - 1]
        if isinstance(tokenizer.model_max_length, int) and 0 < tokenizer.model_max_length < 10**8:
            limits.append(tokenizer.model_max_length)
        self.source_limit = min(limits)
        self.max_new_tokens_limit = config.max_position_embeddings - config.pad_token_id - 1
        default_length = generation.max_new_tokens or (generation.max_length or 21) - 1
        self.defaults = {
            "num_beams": min(MAX_BEAMS, max(1, generation.num_beams or 1)),
            "max_new_tokens": max(1, min(default_length, self.max_new_tokens_limit)),
            "do_sample": bool(generation.do_sample),
            "seed": DEFAULT_SEED,
        }

    def check(self, text, language, num_beams, max_new_tokens, sample, seed) -> tuple[str, dict, list[str]]:
        """The model input (tagged text) and generate's arguments, or an InputError saying what to change."""
        if language not in self.languages:
            raise InputError(
                f"Unknown target language {language!r}: this model translates into "
                f"{', '.join(self.languages)}. Pick one from the list."
            )
        text = text.strip() if isinstance(text, str) else ""
        if not text:
            raise InputError("Type or paste a text to translate first.")
        notes = []
        typed = TYPED_TAG.match(text)
        if typed and typed.group(1) not in self.languages:
            raise InputError(
                f"The text starts with '{typed.group(1)}:', a target-language tag this model does not know (its "
                f"languages: {', '.join(self.languages)}). Remove it and pick the target language from the list: the "
                "page adds the tag."
            )
        if typed:
            text = text[typed.end() :].strip()
            notes.append(
                f"The text started with the tag '{typed.group(1)}:'; it was removed and the chosen target language's "
                f"tag '{language}:' is used."
            )
            if not text:
                raise InputError("There is no text after the tag; type a text to translate.")
        settings = {"num_beams": num_beams, "max_new_tokens": max_new_tokens, "seed": seed}
        for name, value in settings.items():
            try:
                whole = not isinstance(value, bool) and float(value).is_integer()
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole:
                raise InputError(f"{name.replace('_', ' ')} must be a whole number, got {value!r}.")
            settings[name] = int(float(value))
        for name, low, high in (("num_beams", 1, MAX_BEAMS), ("max_new_tokens", 1, self.max_new_tokens_limit)):
            if not low <= settings[name] <= high:
                raise InputError(f"{name.replace('_', ' ')} must be between {low} and {high}, got {settings[name]}.")
        if settings["seed"] < 0:
            raise InputError(f"The seed must be 0 or more, got {settings['seed']}.")
        generation = {
            "num_beams": settings["num_beams"],
            "max_new_tokens": settings["max_new_tokens"],
            "do_sample": bool(sample),
        }
        if sample:
            generation["seed"] = settings["seed"]
        return TAG_TEMPLATE.format(lang=language, text=text), generation, notes

    def translate(self, text, language, num_beams, max_new_tokens, sample=False, seed=DEFAULT_SEED) -> Result:
        import torch

        try:
            source, generation, notes = self.check(text, language, num_beams, max_new_tokens, sample, seed)
        except InputError as error:
            return Result(error=str(error), language=language if language in self.languages else "")
        result = Result(notes=notes, language=language)
        length = len(self.tokenizer(source, verbose=False)["input_ids"])
        if length > self.source_limit:
            result.notes.append(
                f"The text is {length} tokens long, more than the {self.source_limit} this model reads: only its "
                f"first {self.source_limit} tokens (the tag included) were translated."
            )
        batch = self.tokenizer([source], return_tensors="pt", truncation=True, max_length=self.source_limit)
        seed = generation.pop("seed", None)
        if language in self.output_vocabularies:
            generation["output_languages"] = language
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)
                output = self.model.generate(**batch, **generation)[0]
        except Exception as error:  # the page says what went wrong and the server goes on serving
            traceback.print_exc()
            return Result(error=f"Translation failed: {type(error).__name__}: {error}", language=language)
        result.seconds = time.perf_counter() - started
        special = set(self.tokenizer.all_special_ids)
        result.tokens = sum(1 for token in output[1:].tolist() if token not in special)
        result.text = self.tokenizer.decode(output, skip_special_tokens=True).strip()
        if not result.text:
            result.notes.append(f"The model's output is empty: the {result.tokens} token(s) it generated are no text.")
        return result


def load_translator(
    name: str, folder: Path, languages: list[str], quantize: str, full_vocabulary: bool = False
) -> Translator:
    """The model through its own code (trust_remote_code), as where xlm_swcm_hf is not installed."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    except Exception as error:  # a folder that passed the checks and still fails: one line, no page
        message = str(error).strip().splitlines()[-1] if str(error).strip() else ""
        raise InputError(f"--model {name} failed to load: {type(error).__name__}: {message}") from None
    if quantize == "int8":
        model = quantize_for_cpu(model, "int8")
    return Translator(model, tokenizer, languages, full_vocabulary)


# --------------------------------------------------------------------------------------------------- the page
def is_vertical(language: str, text: str) -> bool:
    """Traditional Mongolian is written top to bottom, columns left to right: its tag (mn_Mong) or its letters."""
    return language.endswith("_Mong") or bool(MONGOLIAN_SCRIPT.search(text))


def text_html(text: str, language: str, element: str = "div", css_class: str = "swcm-output") -> str:
    """A text in its language's direction, and vertical where it is traditional Mongolian."""
    vertical = " vertical" if is_vertical(language, text) else ""
    return (
        f'<{element} class="{css_class}{vertical}" lang="{html.escape(language.replace("_", "-"))}" '
        f'dir="{text_direction(language)}">{html.escape(text)}</{element}>'
    )


def output_html(result: Result) -> str:
    return text_html(result.text, result.language)


def status_html(result: Result) -> str:
    lines = [f'<p class="swcm-error">{html.escape(result.error)}</p>'] if result.error else []
    lines += [f'<p class="swcm-note">{html.escape(note)}</p>' for note in result.notes]
    return f'<div class="swcm-status" data-request="{result.request}">{"".join(lines)}</div>'


def stats_text(result: Result) -> str:
    if result.error:
        return ""
    return f"{result.seconds:.2f} s · {result.tokens} tokens · {result.tokens_per_second:.1f} tokens/s"


def shortened(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_html(history: list[dict]) -> str:
    rows = "".join(
        f'<tr><td class="swcm-lang">{html.escape(language_name(item["language"]))}</td>'
        f'<td class="swcm-source">{text_html(shortened(item["source"]), "", css_class="swcm-source-text")}</td>'
        f"<td>{text_html(item['text'], item['language'])}</td></tr>"
        for item in reversed(history)
    )
    return f'<table class="swcm-history"><tbody>{rows}</tbody></table>' if rows else ""


# Gradio draws the text box and the examples table itself, so the page marks, as they change, the ones that hold
# traditional Mongolian letters; the CSS writes those top to bottom, columns left to right.
VERTICAL_TEXT_JS = (
    "() => {"
    r" const mongolian = /[\u1800-\u18af\u{11660}-\u{1167f}]/u;"  # MONGOLIAN_SCRIPT's ranges
    " const mark = () => {"
    "  document.querySelectorAll('#source textarea').forEach("
    "   box => box.classList.toggle('swcm-vertical', mongolian.test(box.value)));"
    "  document.querySelectorAll('#examples td').forEach("
    "   cell => cell.classList.toggle('swcm-vertical', mongolian.test(cell.textContent)));"
    " };"
    " document.addEventListener('input', mark, true);"
    " document.addEventListener('click', () => setTimeout(mark, 100), true);"
    " new MutationObserver(mark).observe(document.body, {childList: true, subtree: true, characterData: true});"
    " mark();"
    " }"
)


def page_css(fonts: dict[str, Path]) -> str:
    faces = "".join(
        f'@font-face {{ font-family: "{family}"; src: url("/gradio_api/file={fonts[family]}") format("truetype"); '
        f"unicode-range: {unicode_range}; font-display: swap; }}\n"
        for family, _, unicode_range in FONTS
        if family in fonts
    )
    return faces + (
        f".swcm-output, #source textarea {{ font-family: {TEXT_FONTS}; font-size: 1.3rem; line-height: 1.7; }}\n"
        ".swcm-output { text-align: start; white-space: pre-wrap; overflow-wrap: anywhere; min-height: 2.5em; "
        "padding: 0.5em 0.75em; "
        "border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); "
        "background: var(--background-fill-secondary); }\n"
        ".swcm-output.vertical, .swcm-source-text.vertical, :lang(mn-Mong), #source textarea.swcm-vertical, "
        "#examples td.swcm-vertical { writing-mode: vertical-lr; text-orientation: mixed; }\n"
        "#source textarea.swcm-vertical { min-height: 12em; resize: horizontal; }\n"
        f"#examples td {{ font-family: {TEXT_FONTS}; }}\n"
        ".swcm-output.vertical { min-height: 8em; max-height: 24em; overflow-x: auto; }\n"
        ".swcm-history .swcm-output { font-size: 1.1rem; min-height: 0; }\n"
        ".swcm-history { width: 100%; table-layout: fixed; }\n"
        ".swcm-history td { vertical-align: top; padding: 0.25em 0.5em; }\n"
        ".swcm-history td.swcm-lang { width: 13em; } .swcm-history td.swcm-source { width: 35%; }\n"
        ".swcm-lang { white-space: nowrap; } .swcm-error { color: var(--error-text-color, #b91c1c); }\n"
    )


def build_page(translator: Translator, name: str, examples: list[list[str]], fonts: dict[str, Path]):
    import gradio as gr

    choices = [(language_name(code), code) for code in translator.languages]
    defaults = translator.defaults
    with gr.Blocks(title="XLM-SWCM", analytics_enabled=False) as page:
        gr.Markdown(
            f"## XLM-SWCM: translate\nModel: `{display_name(name)}`. The page adds the target-language tag "
            f"(`ug: text`) for you; texts longer than {translator.source_limit} tokens are cut to that length."
        )
        with gr.Row():
            with gr.Column():
                source = gr.Textbox(label="Text", lines=4, elem_id="source", placeholder="A text to translate")
                language = gr.Dropdown(choices, value=translator.languages[0], label="Into", elem_id="language")
                with gr.Accordion("Decoding", open=False, elem_id="decoding"):
                    beams = gr.Slider(1, MAX_BEAMS, value=defaults["num_beams"], step=1, label="Beams", elem_id="beams")
                    max_new = gr.Slider(
                        1,
                        translator.max_new_tokens_limit,
                        value=defaults["max_new_tokens"],
                        step=1,
                        label="Max new tokens",
                        elem_id="max-new-tokens",
                    )
                    sample = gr.Checkbox(value=defaults["do_sample"], label="Sample", elem_id="sample")
                    seed = gr.Number(value=defaults["seed"], precision=0, label="Seed (sampling)", elem_id="seed")
                button = gr.Button("Translate", variant="primary", elem_id="translate")
            with gr.Column():
                gr.Markdown("Translation")
                output = gr.HTML(output_html(Result()), elem_id="translation")
                stats = gr.Markdown("", elem_id="stats")
                status = gr.HTML(status_html(Result()), elem_id="status")
        if examples:
            gr.Examples(
                examples,
                inputs=[source, language],
                label="Examples (from the test data)",
                elem_id="examples",
                examples_per_page=max(10, len(examples)),
            )
        history_state = gr.State([])
        gr.Markdown("Recent translations")
        history = gr.HTML("", elem_id="history")

        def run(text, target, num_beams, max_new_tokens, do_sample, seed_value, past):
            result = translator.translate(text, target, num_beams, max_new_tokens, do_sample, seed_value)
            if result.error is None:
                past = (past + [{"language": result.language, "source": text.strip(), "text": result.text}])[
                    -HISTORY_SIZE:
                ]
            return output_html(result), stats_text(result), status_html(result), past, history_html(past)

        def translate(
            text: str,
            language: str,
            num_beams: int = defaults["num_beams"],
            max_new_tokens: int = defaults["max_new_tokens"],
            sample: bool = defaults["do_sample"],
            seed: int = defaults["seed"],
        ) -> str:
            """The translation of `text` into `language` (one of the model's language codes), as plain text."""
            return api_translation(translator, text, language, num_beams, max_new_tokens, sample, seed)

        inputs = [source, language, beams, max_new, sample, seed, history_state]
        outputs = [output, stats, status, history_state, history]
        # one queue for the page and the API: one generate at a time
        button.click(run, inputs, outputs, api_name="translate_page", concurrency_id="generate")
        source.submit(run, inputs, outputs, api_name=False, concurrency_id="generate")
        gr.api(translate, api_name="translate", concurrency_id="generate")  # what scripts call: text in, text out
    return page


def api_translation(translator: Translator, text, language, num_beams, max_new_tokens, sample, seed) -> str:
    """The page's API endpoint (`/translate`): the translation's text, or a `gr.Error` with the message the page
    would show (gradio_client raises it as an AppError)."""
    import gradio as gr

    result = translator.translate(text, language, num_beams, max_new_tokens, sample, seed)
    if result.error is not None:
        raise gr.Error(result.error)
    return result.text


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", help=f"a trained XLM-SWCM folder or Hub id (default: ${MODEL_ENV} or the Space card)"
    )
    parser.add_argument("--port", type=int, help="default: Gradio's ($GRADIO_SERVER_PORT, else 7860 or the next free)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none", help="int8: quantize for CPU")
    parser.add_argument("--share", choices=("no", "yes"), default="no", help="yes: a public gradio.live link")
    parser.add_argument("--languages", help="target languages, e.g. bo,ug,kk,mn,zh (default: the model card's)")
    parser.add_argument("--examples", help="a JSONL file with `source` (and `lang`) fields (default: see above)")
    parser.add_argument(
        "--full-vocabulary", action="store_true", help="decode with the whole vocabulary (default: a language with "
        "one of the model's output vocabularies, output_vocabularies.json, decodes within it)"
    )  # fmt: skip
    args = parser.parse_args(argv)

    # Everything that can be told from the command line and the folder, before the model or Gradio is loaded.
    name = args.model or default_model()
    if not name:
        raise InputError(f"give --model FOLDER_OR_HUB_ID (or set ${MODEL_ENV}).")
    check_port(args.port)
    if args.quantize == "int8" and quantize_for_cpu is None:
        raise InputError("--quantize int8 needs xlm_swcm_hf (pip install xlm-swcm-hf); leave it out here.")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise InputError("gradio is not installed: pip install 'xlm-swcm-hf[serve]' (or gradio).") from None
    folder = local_folder(name)
    check_folder(folder, name)
    languages = model_languages(folder, args.languages, name)
    examples, examples_file = find_examples(folder, args.examples, languages)
    fonts = font_files()
    missing_fonts = [family for family, _, _ in FONTS if family not in fonts]
    if missing_fonts:
        print(
            f"note: {', '.join(file for family, file, _ in FONTS if family in missing_fonts)} not found under "
            f"{', '.join(FONT_DIRS)} (Debian: apt-get install fonts-noto-core); the browser's own fonts are used.",
            file=sys.stderr,
        )

    translator = load_translator(name, folder, languages, args.quantize, args.full_vocabulary)
    print(
        f"serving {name}: {', '.join(languages)}; {len(examples)} examples"
        + (f" from {examples_file}" if examples_file else "")
        + f"; source limit {translator.source_limit} tokens",
        flush=True,
    )
    import gradio as gr

    gr.set_static_paths(list(fonts.values()))
    page = build_page(translator, name, examples, fonts)
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE).launch(
        server_port=args.port,
        share=args.share == "yes",
        css=page_css(fonts),
        js=VERTICAL_TEXT_JS,
        footer_links=["api", "gradio"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
