"""translate.py past one process (`--parts bulk`): two processes under torchrun against one, one process against a
plain unsorted loop of generate, and peak resident memory on a small against a large input.

Everything runs on a tiny random XLM-SWCM folder built here (the library's tiny tokenizer) with a few new tokens per
sentence, on inputs generated into the benchmark's temporary folder: lines of 1 to 12 words of the tiny tokenizer's
own texts, seeded, so lengths vary as real text does (what length-sorted batches gain from). Each translate.py run
is a fresh child process at one thread (torchrun: one thread per process); its wall time and its peak resident
memory (ru_maxrss from wait4, the largest of the child and the processes it waited for) are what count.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from ..benchmark import summary
from .decoding import time_against_plain_loop


# Lines of input per scale: the two-process comparison's (the plain loop's: its first loop_lines), and the memory
# comparison's small and large inputs. full: about 20 minutes on 2 idle cores. The process comparison's input is
# large enough (about a minute in one process) that start-up, rendezvous and merging weigh as they do in a bulk job,
# not as in a 15-second one (20,000 lines: 1.57x, most of the difference start-up).
BULK_SCALES = {
    "full": {"lines": 100_000, "loop_lines": 5_000, "memory_lines": (10_000, 1_000_000)},
    "smoke": {"lines": 240, "loop_lines": 240, "memory_lines": (200, 2_000)},
}
# The memory runs' batches (both sizes alike): a budget of padded source tokens, so a batch's activations are bounded
# whatever the input's longest lines are (256 sentences a batch grew peak memory with the input: the longest lines of
# 1M are longer than those of 10K); large enough for 1M lines in minutes.
MEMORY_TOKENS_PER_BATCH = 4096
BULK_NEW_TOKENS = 4  # a few tokens per sentence: the engine's cost, not the tiny model's, is what is measured
ROOT = Path(__file__).resolve().parents[2]


def build_bulk_model(folder: Path) -> Path:
    """A tiny random XLM-SWCM folder with the library's tiny tokenizer, BULK_NEW_TOKENS new tokens by default."""
    from xlm_swcm_hf import XLMSWCMConfig, XLMSWCMForConditionalGeneration
    from xlm_swcm_hf.testing import build_tiny_xlmr_tokenizer

    from ..benchmark.settings import SIZES

    positions = 256  # room for the longest generated line (12 words of Tibetan or Mongolian run to ~100 pieces)
    tokenizer = build_tiny_xlmr_tokenizer(model_max_length=positions - 2)  # the plain loop's truncation limit
    dims = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    config = XLMSWCMConfig(
        vocab_size=len(tokenizer), max_position_embeddings=positions, **{key: SIZES["tiny"][key] for key in dims},
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = XLMSWCMForConditionalGeneration(config).eval()
    model.generation_config.max_new_tokens = BULK_NEW_TOKENS
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_input(path: Path, lines: int, seed: int = 0) -> Path:
    """`lines` lines of 1 to 12 words drawn from the tiny tokenizer's texts, streamed to disk (1M lines is ~50 MB)."""
    from xlm_swcm_hf.testing import TINY_MULTILINGUAL_TEXTS

    words = [word for text in TINY_MULTILINGUAL_TEXTS for word in text.split()]
    draw = random.Random(seed)
    with open(path, "w", encoding="utf-8") as stream:
        for _ in range(lines):
            stream.write(" ".join(draw.choices(words, k=draw.randint(1, 12))) + "\n")
    return path


def run_child(command: list[str], work: Path) -> dict:
    """One translate.py command in a fresh process at one thread: its wall seconds, peak resident bytes, stdout."""
    import tempfile

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Output to files, not pipes: Popen.communicate would reap the child before wait4 could read its usage.
    with tempfile.TemporaryFile("w+", dir=work) as stdout, tempfile.TemporaryFile("w+", dir=work) as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        stdout.seek(0), stderr.seek(0)
        if child.returncode:
            raise RuntimeError(f"{' '.join(command[:4])} ... failed ({child.returncode}): {stderr.read()[-800:]}")
        return {"seconds": seconds, "peak_rss_bytes": usage.ru_maxrss * 1024, "stdout": stdout.read()}


def translate_command(
    model: Path, source: Path, output: Path, batch_size: int | None, block_size: int, processes: int,
    tokens_per_batch: int | None = None,
):  # fmt: skip
    """translate.py's command line: batches of `batch_size` sentences, or of `tokens_per_batch` padded tokens."""
    script = [str(ROOT / "scripts" / "translate.py"), "--model", str(model), "--input", str(source)]
    script += ["--output", str(output), "--overwrite", "--no-progress", "--num-beams", "1"]
    script += ["--max-new-tokens", str(BULK_NEW_TOKENS), "--block-size", str(block_size)]
    if tokens_per_batch is not None:
        script += ["--max-tokens-per-batch", str(tokens_per_batch)]
    else:
        script += ["--batch-size", str(batch_size)]
    if processes == 1:
        return [sys.executable, *script]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *script]


# translate.py's closing line per process (TranslationStats.summary): the translating loop alone, start-up left out
STATS_LINE = re.compile(r"translated (\d+) sentences, \d+ tokens in ([0-9.]+) s")


def loop_sentences_per_s(stdout: str) -> float:
    """Sentences/s of the translating loops alone, from each process's closing line: all sentences over the slowest
    process's loop seconds (the processes run side by side)."""
    found = [(int(sentences), float(seconds)) for sentences, seconds in STATS_LINE.findall(stdout)]
    if not found:
        raise RuntimeError(f"translate.py printed no statistics line: {stdout[-400:]!r}")
    return sum(sentences for sentences, _ in found) / max(seconds for _, seconds in found)


def compare_processes(model: Path, source: Path, lines: int, work: Path, args, log) -> dict:
    """One process against two under torchrun on the same input, interleaved in every repeat; outputs compared."""
    from xlm_swcm_hf.recipe import TRANSLATION_BLOCK_SIZE

    block_size = min(TRANSLATION_BLOCK_SIZE, max(1, lines // 8))  # enough blocks for both processes at any scale
    runs, loops, outputs = {1: [], 2: []}, {1: [], 2: []}, {}
    for repeat in range(args.repeats):
        for processes in (1, 2):
            outputs[processes] = work / f"out-{processes}.txt"
            command = translate_command(model, source, outputs[processes], args.batch_size, block_size, processes)
            child = run_child(command, work)
            runs[processes].append(child["seconds"])
            loops[processes].append(loop_sentences_per_s(child["stdout"]))
            log(f"  bulk repeat {repeat}: {processes} process(es) {runs[processes][-1]:.1f} s for {lines} lines "
                f"({loops[processes][-1]:.0f} sentences/s in the translating loop)")  # fmt: skip
    one, two = (outputs[n].read_text(encoding="utf-8").splitlines() for n in (1, 2))
    result = {"lines": lines, "block_size": block_size, "batch_size": args.batch_size, "identical_outputs": one == two}
    for processes, seconds in runs.items():
        result[f"processes_{processes}"] = {
            **summary(seconds),
            "sentences_per_s": lines / min(seconds),
            "loop_sentences_per_s": max(loops[processes]),
        }
    # The target's ratio is of whole commands (start-up, rendezvous and merge included); the loops' ratio beside it
    result["ratio"] = result["processes_2"]["sentences_per_s"] / result["processes_1"]["sentences_per_s"]
    result["loop_ratio"] = result["processes_2"]["loop_sentences_per_s"] / result["processes_1"]["loop_sentences_per_s"]
    return result


def compare_memory(model: Path, work: Path, sizes: tuple[int, int], args, log) -> dict:
    """Peak resident memory of one translate.py process on the small input and on the large one."""
    from xlm_swcm_hf.recipe import TRANSLATION_BLOCK_SIZE

    rows = []
    for lines in sizes:
        source = write_input(work / f"memory-{lines}.txt", lines, seed=lines)
        output = work / f"memory-{lines}.out"
        command = translate_command(
            model, source, output, None, TRANSLATION_BLOCK_SIZE, 1, tokens_per_batch=MEMORY_TOKENS_PER_BATCH
        )
        child = run_child(command, work)
        rows.append({"lines": lines, "seconds": child["seconds"], "peak_rss_bytes": child["peak_rss_bytes"]})
        log(f"  bulk memory: {lines} lines, peak {child['peak_rss_bytes'] / 2**20:.0f} MiB, {child['seconds']:.1f} s")
        source.unlink(), output.unlink()
    return {
        "tokens_per_batch": MEMORY_TOKENS_PER_BATCH,
        "rows": rows,
        "ratio": rows[1]["peak_rss_bytes"] / rows[0]["peak_rss_bytes"],
    }


def run_bulk(args, log) -> dict:
    """The three comparisons of `--parts bulk` at `args.bulk_scale`."""
    from transformers import AutoTokenizer

    from xlm_swcm_hf import XLMSWCMForConditionalGeneration

    scale = BULK_SCALES[args.bulk_scale]
    work = Path(args.work) / "bulk"
    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_bulk_model(work / "model")
    source = write_input(work / "input.txt", scale["lines"])
    result = {"scale": args.bulk_scale, "new_tokens": BULK_NEW_TOKENS}
    result["processes"] = compare_processes(model_dir, source, scale["lines"], work, args, log)
    # One process's batching engine against the plain loop, in this process at one thread (as the children run).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = XLMSWCMForConditionalGeneration.from_pretrained(model_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        sources = source.read_text(encoding="utf-8").splitlines()[: scale["loop_lines"]]
        result["plain_loop"] = time_against_plain_loop(model, tokenizer, sources, args.batch_size, args.repeats, log)
    finally:
        torch.set_num_threads(threads)
    result["memory"] = compare_memory(model_dir, work, scale["memory_lines"], args, log)
    return result
