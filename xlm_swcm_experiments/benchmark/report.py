"""The benchmark's report rendered from its record (benchmark.json): Markdown tables and the decode plot. Nothing here
measures; the same record always renders the same text (`--render-only`)."""

import json
from pathlib import Path

from .settings import DECODE_CONFIGS, IMPLS
from .targets import find_row


def _fmt(value, digits=1):
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def markdown(report: dict) -> str:
    lines = _header_lines(report["meta"]) + _decode_lines(report["decode"]) + _reading_lines(report)
    if report.get("ablations"):
        lines += _fast_path_lines(report["ablations"])
    if report.get("torch_compile"):
        lines += ["", f"torch.compile: `{json.dumps(report['torch_compile'])}`"]
    if report.get("quantization"):
        lines += quantization_markdown(report["quantization"], report.get("quality") or {})
    if report.get("training"):
        lines += _training_lines(report["training"])
    lines += _target_lines(report["targets"])
    return "\n".join(lines) + "\n"


def _header_lines(meta: dict) -> list[str]:
    return [
        f"# XLM-SWCM benchmark ({meta['size']}, {meta['parameters_swcm'] / 1e6:.1f}M parameters, "
        f"{meta['threads']} threads, {meta['dtype']})",
        "",
        f"torch {meta['torch']}, transformers {meta['transformers']}, {meta['cpu']}; load average before/after "
        f"{meta['loadavg_before']} / {meta.get('loadavg_after')}. Repeats: {meta['repeats']} "
        f"(no-cache: {meta['nocache_repeats']}). Times include the encoder (see below).",
    ]


def _decode_lines(decode: list[dict]) -> list[str]:
    lines = [
        "",
        "## Decode: ms per generated step (median / min)",
        "",
        "| config | new tokens | cached | no cache | BART | no-cache / cached | cached / BART |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted(
        {(r["config"], r["new_tokens"]) for r in decode}, key=lambda k: (list(DECODE_CONFIGS).index(k[0]), k[1])
    )
    for config, length in keys:
        cells = {}
        for impl in IMPLS:
            row = find_row(decode, config=config, impl=impl, new_tokens=length)
            cells[impl] = row["ms_per_step"] if row else None
        med = lambda impl, cells=cells: cells[impl]["median_ms"] if cells[impl] else None
        cell = lambda impl, cells=cells: (
            f"{cells[impl]['median_ms']:.1f} / {cells[impl]['min_ms']:.1f}" if cells[impl] else "–"
        )
        speed = med("no_cache") / med("cached") if med("no_cache") and med("cached") else None
        vs_bart = med("cached") / med("bart") if med("bart") and med("cached") else None
        lines.append(
            f"| {config} | {length} | {cell('cached')} | {cell('no_cache')} | {cell('bart')} | "
            f"{_fmt(speed, 2)}x | {_fmt(vs_bart, 2)} |"
        )
    return lines


def _reading_lines(report: dict) -> list[str]:
    """The encoder alone, the weights a cached step reads against the bandwidth, and the calls per generate."""
    weights = report["weights_read_per_token"]
    bandwidth = report["bandwidth"]
    lines = [
        "",
        "Encoder alone (median ms): " + ", ".join(f"{k} {v['median_ms']:.1f}" for k, v in report["encoder"].items()),
        "",
        f"Weights read per cached step: ours {weights['swcm']['bytes'] / 1e9:.3f} GB, BART "
        f"{weights['bart']['bytes'] / 1e9:.3f} GB, ratio {weights['ratio_swcm_over_bart']:.3f}. "
        f"Bandwidth {bandwidth['GBps']:.1f} GB/s (sum {bandwidth['sum_read_GBps']:.1f}, copy "
        f"{bandwidth['copy_rw_GBps']:.1f}) -> bound {report['bandwidth_bound_ms_per_token']:.1f} ms/token "
        "(fp32, batch 1).",
    ]
    checks = report.get("call_counts", [])
    if checks:
        lines += [
            "",
            "Calls per generate: "
            + "; ".join(
                f"{'cached' if c['use_cache'] else 'no cache'} beams={c['beams']}: encoder {c['encoder_calls']}x, "
                f"cross-attention k/v projections {c['cross_kv_projection_calls']} for {c['decoder_layers']} layers"
                for c in checks
            ),
        ]
    return lines


def _fast_path_lines(ablations: list[dict]) -> list[str]:
    lines = [
        "",
        f"## Fast paths on/off (cached, {ablations[0]['new_tokens']} new tokens, ms/step median / min)",
        "",
        "| config | variant | ms/step | vs default | same tokens |",
        "|---|---|---:|---:|---|",
    ]
    for row in ablations:
        base = find_row(ablations, config=row["config"], variant="default")
        rel = row["ms_per_step"]["median_ms"] / base["ms_per_step"]["median_ms"]
        lines.append(
            f"| {row['config']} | {row['variant']} | {row['ms_per_step']['median_ms']:.1f} / "
            f"{row['ms_per_step']['min_ms']:.1f} | {rel:.2f} | {_fmt(row['tokens_identical_to_default'])} |"
        )
    return lines


def quantization_markdown(quant: dict, quality: dict) -> list[str]:
    """The candidates table (every candidate, including the ones that lost or failed) and the quality lines."""
    mib = lambda value: f"{value / 2**20:.0f}" if value else "–"
    rows = quant["rows"]
    fp32 = find_row(rows, candidate="fp32")
    lines = [
        "",
        f"## Quantized CPU inference (greedy, {quant['new_tokens']} new tokens, source {quant['source_length']}, "
        "ms/step median / min)",
        "",
        "| candidate | batch 1 | vs fp32 | batch 8 | vs fp32 | same tokens as fp32 (random weights) | weights MiB | "
        "resident MiB | convert s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row or "error" in row:
            lines.append(f"| {row['candidate']} | {row.get('skipped') or 'failed: ' + row['error']} | | | | | | | |")
            continue
        cells = []
        for config in ("greedy_b1", "greedy_b8"):
            ms = row[config]
            ratio = ms["median_ms"] / fp32[config]["median_ms"]
            cells += [f"{ms['median_ms']:.1f} / {ms['min_ms']:.1f}", f"{ratio:.2f}"]
        lines.append(
            f"| {row['candidate']} | {' | '.join(cells)} | {row['identical_token_share']:.1%} | "
            f"{mib(row['weight_bytes'])} | {mib(row.get('rss_bytes'))} | {row['convert_s']:.1f} |"
        )
    return lines + ["", _quality_line(quality)]


def _quality_line(quality: dict) -> str:
    line = "Quality on a trained model (greedy, chrF against the references): "
    if "skipped" in quality:
        return line + quality["skipped"] + "."
    parts = [f"fp32 chrF {quality['fp32']['chrf']:.2f}"]
    for name, value in quality.items():
        if isinstance(value, dict) and "chrf_delta" in value:
            parts.append(
                f"{name} chrF {value['chrf']:.2f} ({value['chrf_delta']:+.2f}), identical outputs "
                f"{value['identical_outputs']:.1%}"
            )
    return line + f"{quality['model']} on {quality['sentences']} sentences of {quality['data']}: " + "; ".join(parts)


def _training_lines(training: list[dict]) -> list[str]:
    lines = [
        "",
        "## Training step (AdamW)",
        "",
        "| mode | s/step median / min | peak RSS GiB | activations after forward GiB | "
        "forward+backward peak above baseline GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in training:
        if "error" in row:
            lines.append(f"| {row['mode']} | failed | | | |")
            continue
        lines.append(
            f"| {row['mode']} (batch {row['batch']}, {row['source_length']}->{row['target_length']}) | "
            f"{row['step']['median_ms'] / 1e3:.2f} / {row['step']['min_ms'] / 1e3:.2f} | "
            f"{row['peak_rss_bytes'] / 2**30:.2f} | {row['activation_bytes_estimate'] / 2**30:.2f} | "
            f"{row['forward_backward_peak_extra_bytes'] / 2**30:.2f} |"
        )
    return lines


def _target_lines(targets: list[dict]) -> list[str]:
    lines = ["", "## Targets", "", "| target | value | goal | met |", "|---|---:|---|---|"]
    for t in targets:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
        lines.append(f"| {t['target']} | {_fmt(t['value'], 2)} | {t['goal']} | {met} {t['note']} |")
    return lines


def plot(report: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    configs = [c for c in DECODE_CONFIGS if any(r["config"] == c for r in report["decode"])]
    fig, axes = plt.subplots(1, len(configs), figsize=(5 * len(configs), 4), squeeze=False)
    for ax, config in zip(axes[0], configs):
        for impl in IMPLS:
            rows = sorted(
                (r for r in report["decode"] if r["config"] == config and r["impl"] == impl),
                key=lambda r: r["new_tokens"],
            )
            if rows:
                ax.plot(
                    [r["new_tokens"] for r in rows], [r["ms_per_step"]["median_ms"] for r in rows], "o-", label=impl
                )
        ax.set_title(config)
        ax.set_xlabel("new tokens")
        ax.set_ylabel("ms per step (median)")
        ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
