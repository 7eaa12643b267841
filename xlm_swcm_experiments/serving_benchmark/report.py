"""Targets, the chosen path and the markdown tables, from a report dict (measured now or read from serving.json)."""

from __future__ import annotations

from .settings import (
    PEERS,
    REFERENCE,
    RESTRICTED_SUFFIX,
    TARGET_BOUND_RATIO,
    TARGET_CHRF_DELTA,
    TARGET_GPU_COMPILED_RATIO,
    TARGET_MEMORY_RATIO,
    TARGET_NLL_DELTA,
    TARGET_PROCESS_RATIO,
    TARGET_RESTRICTED_B1_RATIO,
    TARGET_RESTRICTED_B8_RATIO,
    TARGET_RESTRICTED_BOUND_RATIO,
    TARGET_SPEED_RATIO,
    TARGET_THROUGHPUT_RATIO,
    is_restricted,
    weight_format,
)


# ------------------------------------------------------------------------------------------------------- report


def find(rows, **match) -> dict | None:
    return next((row for row in rows if all(row.get(k) == v for k, v in match.items())), None)


def speed_ratio(rows, name: str, config: str = "greedy_b1") -> float | None:
    row, reference = find(rows, candidate=name), find(rows, candidate=REFERENCE)
    if not row or not reference or config not in row or config not in reference:
        return None
    return row[config]["median_ms"] / reference[config]["median_ms"]


def choose_path(report: dict) -> str | None:
    """The fastest batch-1 candidate whose quality meets the targets (all candidates measured for quality)."""
    rows = report.get("candidates", {}).get("rows", [])
    quality = {row["candidate"]: row for row in report.get("quality", {}).get("rows", []) if "nll" in row}
    fp32 = quality.get(REFERENCE)
    good = [
        row["candidate"]
        for row in rows
        if "greedy_b1" in row
        and row["candidate"] in quality
        and fp32
        and quality[row["candidate"]]["nll"] - fp32["nll"] <= TARGET_NLL_DELTA
        and quality[row["candidate"]]["chrf"] - fp32["chrf"] >= -TARGET_CHRF_DELTA
    ]
    return min(good, key=lambda name: find(rows, candidate=name)["greedy_b1"]["median_ms"], default=None)


def restricted_path(report: dict) -> tuple[str | None, str]:
    """The restricted row the restricted-head targets judge, and why that one: the chosen path's restricted row, or
    (nothing chosen, or it has none) the fastest restricted row at batch 1."""
    rows = report.get("candidates", {}).get("rows", [])
    chosen = report.get("chosen")
    row = find(rows, candidate=f"{chosen}{RESTRICTED_SUFFIX}") if chosen else None
    if row and "greedy_b1" in row:
        return row["candidate"], "the chosen path"
    timed = [row for row in rows if is_restricted(row["candidate"]) and "greedy_b1" in row]
    fastest = min(timed, key=lambda row: row["greedy_b1"]["median_ms"], default=None)
    why = "the fastest restricted row; no chosen path has one" if chosen else "the fastest restricted row; none chosen"
    return (fastest["candidate"], why) if fastest else (None, "no restricted row measured")


def row_bound(part: dict, row: dict) -> float | None:
    """The weights-read bound (ms per token, batch 1) of a row's weight format and head; None for the peers."""
    bounds = part.get("bounds")
    if not bounds or row["candidate"] in PEERS:
        return None
    head = "restricted" if is_restricted(row["candidate"]) else "full"
    return bounds[head]["ms_per_token"][weight_format(row["candidate"])]


def restricted_targets(report: dict, add) -> None:
    """Issue 32's restricted-head targets: against fp32 eager's whole vocabulary, CTranslate2 int8 and the bound."""
    part = report.get("candidates") or {}
    rows = part.get("rows", [])
    name, why = restricted_path(report)
    head = (part.get("restricted_vocabulary") or {}).get("rows")
    label = f"{name} ({head:,}-row head; {why})" if name and head else "a restricted path (none measured)"
    for config, goal in (("greedy_b1", TARGET_RESTRICTED_B1_RATIO), ("greedy_b8", TARGET_RESTRICTED_B8_RATIO)):
        value = speed_ratio(rows, name, config) if name else None
        batch = config[-1]
        add(f"CPU batch {batch}: {label} / fp32 eager, whole vocabulary", value, f"<= {goal}",
            value is not None and value <= goal)  # fmt: skip
    peer = find(rows, candidate="ctranslate2-int8")
    for config in ("greedy_b1", "greedy_b8"):
        row = find(rows, candidate=name) if name else None
        value = None
        if row and peer and config in row and config in peer:
            value = row[config]["median_ms"] / peer[config]["median_ms"]
        add(f"CPU batch {config[-1]}: {label} / CTranslate2 int8 running the same-shape BART", value, "< 1",
            value is not None and value < 1)  # fmt: skip
    row = find(rows, candidate=name) if name else None
    bound = row_bound(part, row) if row else None
    value = row["greedy_b1"]["median_ms"] / bound if bound else None
    fmt = weight_format(name) if name else "its format"
    goal = TARGET_RESTRICTED_BOUND_RATIO
    add(f"CPU batch 1: {label} / its weights-read bound ({fmt}, restricted head)", value, f"<= {goal}",
        value is not None and value <= goal)  # fmt: skip


def evaluate_targets(report: dict) -> list[dict]:
    targets = []

    def add(name, value, goal, met, gpu_only=False):
        judged = value is not None and not (gpu_only and not report["meta"]["device"].startswith("cuda"))
        targets.append({"target": name, "value": value, "goal": goal, "met": bool(met) if judged else None})

    rows = report.get("candidates", {}).get("rows", [])
    chosen = report.get("chosen")
    value = speed_ratio(rows, chosen) if chosen else None
    add(f"CPU batch 1: chosen path ({chosen}) / fp32 eager ms per token", value, f"<= {TARGET_SPEED_RATIO}",
        value is not None and value <= TARGET_SPEED_RATIO)  # fmt: skip
    quality = {row["candidate"]: row for row in report.get("quality", {}).get("rows", []) if "nll" in row}
    if chosen in quality and REFERENCE in quality:
        nll = quality[chosen]["nll"] - quality[REFERENCE]["nll"]
        chrf = quality[chosen]["chrf"] - quality[REFERENCE]["chrf"]
    else:
        nll = chrf = None
    add("chosen path: test NLL - fp32's (nats/token)", nll, f"<= {TARGET_NLL_DELTA}",
        nll is not None and nll <= TARGET_NLL_DELTA)  # fmt: skip
    add("chosen path: chrF - fp32's", chrf, f">= -{TARGET_CHRF_DELTA}", chrf is not None and chrf >= -TARGET_CHRF_DELTA)
    bound = report.get("bandwidth_bound_ms_per_token")
    fp32 = [find(rows, candidate=name) for name in (REFERENCE, "compiled")]
    best = min((row["greedy_b1"]["median_ms"] for row in fp32 if row and "greedy_b1" in row), default=None)
    value = best / bound if best and bound else None
    add("CPU fp32 (eager or compiled, encoder included) / weights-read bound", value, f"<= {TARGET_BOUND_RATIO}",
        value is not None and value <= TARGET_BOUND_RATIO)  # fmt: skip
    restricted_targets(report, add)
    compiled = report.get("compiled", [])
    eager, ours = find(compiled, config="greedy_b1", impl="eager"), find(compiled, config="greedy_b1", impl="compiled")
    bart = [find(compiled, config="greedy_b1", impl=name) for name in ("bart", "bart_compiled")]
    value = ours["ms_per_token"]["median_ms"] / eager["ms_per_token"]["median_ms"] if ours and eager else None
    device = report["meta"]["device"]
    goal = TARGET_GPU_COMPILED_RATIO
    add(f"{device} batch 1: compiled static cache / eager", value, f"<= {goal} (GPU)", value and value <= goal, True)
    bart_best = min((row["ms_per_token"]["median_ms"] for row in bart if row), default=None)
    value = ours["ms_per_token"]["median_ms"] / bart_best if ours and bart_best else None
    add(f"{device} batch 1: compiled / BART's best path", value, "< 1 (GPU)", value is not None and value < 1, True)
    throughput = report.get("throughput", {})
    value = None
    if "translate_texts" in throughput:
        value = throughput["translate_texts"]["sentences_per_s"] / throughput["plain_loop"]["sentences_per_s"]
    add("translate.py sentences/s / plain unsorted loop", value, f">= {TARGET_THROUGHPUT_RATIO}",
        value is not None and value >= TARGET_THROUGHPUT_RATIO)  # fmt: skip
    bulk = report.get("bulk") or {}
    processes = bulk.get("processes") or {}
    value = processes.get("ratio")
    add("bulk: translate.py sentences/s, torchrun 2 processes x 1 thread / 1 process (identical outputs)", value,
        f">= {TARGET_PROCESS_RATIO}", value is not None and value >= TARGET_PROCESS_RATIO
        and processes["identical_outputs"])  # fmt: skip
    loop = bulk.get("plain_loop")
    value = loop["translate_texts"]["sentences_per_s"] / loop["plain_loop"]["sentences_per_s"] if loop else None
    add("bulk: one process's sentences/s / plain unsorted loop (same batch size)", value,
        f">= {TARGET_THROUGHPUT_RATIO}", value is not None and value >= TARGET_THROUGHPUT_RATIO)  # fmt: skip
    memory = bulk.get("memory")
    value = memory["ratio"] if memory else None
    sizes = " / ".join(f"{row['lines']:,}" for row in reversed(memory["rows"])) if memory else "large / small"
    add(f"bulk: translate.py peak resident memory, {sizes} lines", value, f"<= {TARGET_MEMORY_RATIO}",
        value is not None and value <= TARGET_MEMORY_RATIO)  # fmt: skip
    return targets


def _cell(ms: dict | None) -> str:
    return f"{ms['median_ms']:.1f} / {ms['min_ms']:.1f}" if ms else "–"


def _number(value, digits=2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def candidates_markdown(part: dict) -> list[str]:
    rows = part["rows"]
    vocabulary = part.get("restricted_vocabulary")
    lines = [
        f"## CPU paths (greedy, {part['new_tokens']} new tokens, source {part['source_length']} tokens, random "
        "weights; ms per token median / min; every ratio against fp32 eager with the whole vocabulary)",
        "",
    ]
    if vocabulary:
        lines += [
            f'`+vocab` rows decode as one target language, `generate(output_languages="{vocabulary["language"]}")`'
            f", with an output vocabulary of {vocabulary['rows']:,} rows (the special tokens and a random choice, "
            f"seed {vocabulary['seed']}); their tokens are compared with torch+vocab's. bart: BART of the same "
            "width/depth, PyTorch fp32 eager; ctranslate2-int8: CTranslate2 running that BART with int8 weights "
            "(compared with bart's tokens). torch-bf16: bfloat16 weights, "
            f"on {part.get('cpu', 'this CPU')}. vs bound: batch 1 against the weights-read bound of the row's weight "
            "format and head (encoder included in the row, not in the bound). torch-int8's quantized head is not "
            "sliced: its +vocab row computes every row and masks the others.",
            "",
        ]
    lines += [
        "| candidate | head rows | batch 1 | vs fp32 | vs bound | batch 8 | vs fp32 | same tokens as | resident MiB | "
        "convert s |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        head = f"{row['head_rows']:,}" if row.get("head_rows") else "–"
        if "error" in row:
            lines.append(f"| {row['candidate']} | {head} | failed: {row['error'][:120]} | | | | | | | |")
            continue
        agreement = [row.get(f"{c}_agreement") for c in ("greedy_b1", "greedy_b8")]
        positions = sum(a["positions"] for a in agreement if a)
        same = sum(a["tokens"] * a["positions"] for a in agreement if a) / positions if positions else None
        same = "–" if same is None else f"{same:.1%} ({row.get('agreement_with', REFERENCE)})"
        rss = row.get("rss_bytes")
        bound = row_bound(part, row)
        vs_bound = row["greedy_b1"]["median_ms"] / bound if bound and "greedy_b1" in row else None
        lines.append(
            f"| {row['candidate']} | {head} | {_cell(row.get('greedy_b1'))} | "
            f"{_number(speed_ratio(rows, row['candidate']))} | {_number(vs_bound)} | {_cell(row.get('greedy_b8'))} | "
            f"{_number(speed_ratio(rows, row['candidate'], 'greedy_b8'))} | {same} | "
            f"{'–' if not rss else f'{rss / 2**20:.0f}'} | {row['convert_s']:.1f} |"
        )
    bounds = part.get("bounds")
    if bounds:
        cells = [
            f"{fmt} {bounds[head]['ms_per_token'][fmt]:.1f}"
            for head in ("full", "restricted")
            for fmt in ("fp32", "bf16", "int8")
        ]
        lines += [
            "",
            f"Weights-read bounds, ms per token at batch 1: whole head ({bounds['full']['head_rows']:,} rows) "
            f"{', '.join(cells[:3])}; restricted head ({bounds['restricted']['head_rows']:,} rows) "
            f"{', '.join(cells[3:])}.",
        ]
    return lines


def quality_markdown(part: dict) -> list[str]:
    if "skipped" in part:
        return ["", f"Quality on a trained model: {part['skipped']}."]
    fp32 = find(part["rows"], candidate=REFERENCE) or {}
    lines = [
        "",
        f"## Quality on a trained model ({part['model']}, {part['sentences']} sentences of {part['data']}, greedy)",
        "",
        "| candidate | test NLL (nats/token) | vs fp32 | chrF | vs fp32 | outputs identical to fp32 | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["rows"]:
        if "nll" not in row:
            lines.append(f"| {row['candidate']} | {row.get('skipped') or 'failed: ' + row['error'][:120]} | | | | | |")
            continue
        lines.append(
            f"| {row['candidate']} | {row['nll']:.4f} | {row['nll'] - fp32.get('nll', row['nll']):+.4f} | "
            f"{row['chrf']:.2f} | {row['chrf'] - fp32.get('chrf', row['chrf']):+.2f} | "
            f"{row['identical_outputs']:.1%} | {row['seconds']:.0f} |"
        )
    return lines


def compiled_markdown(rows: list[dict]) -> list[str]:
    lines = [
        "",
        f"## Compiled static-cache decoding ({rows[0]['new_tokens']} new tokens; ms per token median / min; the first "
        "call includes compiling)",
        "",
        "| config | implementation | ms/token | vs eager | first call s | compile s (estimate) | same tokens |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        eager = find(rows, config=row["config"], impl="bart" if row["impl"].startswith("bart") else "eager")
        ratio = row["ms_per_token"]["median_ms"] / eager["ms_per_token"]["median_ms"]
        lines.append(
            f"| {row['config']} | {row['impl']} | {_cell(row['ms_per_token'])} | {ratio:.2f} | "
            f"{row['first_call_s']:.1f} | {max(row['compile_s_estimate'], 0):.1f} | "
            f"{'yes' if row['tokens_identical_to_eager'] else 'no'} |"
        )
    return lines


def bulk_markdown(part: dict) -> list[str]:
    processes, loop, memory = part["processes"], part["plain_loop"], part["memory"]
    lines = [
        "",
        f"## translate.py past one process ({part['scale']} scale; a tiny random model, {part['new_tokens']} new "
        f"tokens, one thread per process; sentences/s of the best repeat, of the whole command (start-up and merge "
        f"included) and of the translating loops alone (each process's closing line: all sentences over the slowest "
        f"loop))",
        "",
        "| run | lines | seconds (median / min) | sentences/s | vs 1 process | sentences/s, loop alone | vs 1 process "
        "|",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for count in (1, 2):
        run = processes[f"processes_{count}"]
        ratio = run["sentences_per_s"] / processes["processes_1"]["sentences_per_s"]
        loop_rate = run.get("loop_sentences_per_s")  # runs stored before the loops were measured have none
        loop_cells = (
            f"{loop_rate:.1f} | {loop_rate / processes['processes_1']['loop_sentences_per_s']:.2f}"
            if loop_rate
            else "- | -"
        )
        lines.append(
            f"| translate.py, {count} process{'es' if count > 1 else ''} | {processes['lines']:,} | "
            f"{run['median_ms'] / 1e3:.1f} / {run['min_ms'] / 1e3:.1f} | {run['sentences_per_s']:.1f} | {ratio:.2f} | "
            f"{loop_cells} |"
        )
    lines += [
        "",
        f"Outputs of 1 and 2 processes identical: {'yes' if processes['identical_outputs'] else 'no'}. One process's "
        f"engine (translate_texts) {loop['translate_texts']['sentences_per_s']:.1f} sentences/s against a plain "
        f"unsorted loop {loop['plain_loop']['sentences_per_s']:.1f} (batch {loop['batch_size']}, {loop['sentences']:,} "
        f"lines, in-process at one thread).",
        "",
        "| input lines | peak resident MiB | seconds |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {row['lines']:,} | {row['peak_rss_bytes'] / 2**20:.0f} | {row['seconds']:.1f} |" for row in memory["rows"]
    ]
    return lines


def conditions(run: dict) -> str:
    """When, at which commit and under what load a run measured (each part keeps its own)."""
    return (
        f"{run.get('date')}, commit {run.get('commit')}, {run.get('device')}, {run.get('threads')} thread(s), "
        f"load average before/after {run.get('loadavg_before')} / {run.get('loadavg_after')}, "
        f"{run.get('repeats')} repeats"
    )


def markdown(report: dict) -> str:
    meta = report["meta"]
    parts_now = meta.get("parts", ["all"])
    lines = [
        f"# Serving benchmark ({meta['size']}, {meta['device']})",
        "",
        f"torch {meta['torch']}, transformers {meta['transformers']}, onnxruntime {meta['onnxruntime']}. "
        f"Weights-read bound (fp32, batch 1): {_number(report.get('bandwidth_bound_ms_per_token'), 1)} ms/token.",
        "",
    ]
    if parts_now:
        lines[-1:] = [f"Parts {', '.join(parts_now)} measured by this run ({conditions(meta)}).", ""]
    for merged in meta.get("merged", []):
        lines[-1:] = [f"Parts {', '.join(merged['parts'])} are from {merged['from']} ({conditions(merged)}).", ""]
    if report.get("candidates"):
        lines += candidates_markdown(report["candidates"])
    if report.get("quality"):
        lines += quality_markdown(report["quality"])
    if report.get("compiled"):
        lines += compiled_markdown(report["compiled"])
    throughput = report.get("throughput") or {}
    if "translate_texts" in throughput:
        lines += [
            "",
            f"translate.py throughput ({throughput['sentences']} test sources, batch {throughput['batch_size']}, the "
            f"model's generation config): translate_texts {throughput['translate_texts']['sentences_per_s']:.2f} "
            f"sentences/s, plain loop {throughput['plain_loop']['sentences_per_s']:.2f} sentences/s (best of the "
            f"repeats); outputs identical {throughput['identical_outputs']:.1%}.",
        ]
    elif throughput:
        lines += ["", f"translate.py throughput: {throughput['skipped']}."]
    if report.get("bulk"):
        lines += bulk_markdown(report["bulk"])
    lines += ["", f"Chosen CPU path: **{report.get('chosen') or 'none measured'}**.", ""]
    lines += ["## Targets", "", "| target | value | goal | met |", "|---|---:|---|---|"]
    for target in report["targets"]:
        met = "met" if target["met"] else "not met"
        if target["met"] is None:
            met = "– (a GPU target)" if target["value"] is not None else "–"
        lines.append(f"| {target['target']} | {_number(target['value'], 3)} | {target['goal']} | {met} |")
    return "\n".join(lines) + "\n"
