"""What people would rather see than read: Markdown tables and loss curves, written next to the JSON."""

from __future__ import annotations

import logging
import os


logger = logging.getLogger(__name__)


def format_cell(value, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: list[str], rows: list[list], numeric: list[bool] | None = None, digits: int = 2) -> str:
    """A GitHub Markdown table; numeric columns are right-aligned, floats printed with `digits` decimals."""
    numeric = numeric or [False] + [True] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if right else "---" for right in numeric) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(cell, digits) for cell in row) + " |")
    return "\n".join(lines) + "\n"


METRIC_COLUMNS = [
    ("rougeL", "ROUGE-L F"),
    ("rougeL_precision", "P"),
    ("rougeL_recall", "R"),
    ("chrf", "chrF"),
    ("bleu", "BLEU"),
    ("count", "n"),
]
# Shown only where a group has it (rows whose language's script is known): the share of outputs off that script.
OFF_TARGET_COLUMN = ("off_target", "off-target %")


def metrics_markdown(metrics: dict) -> str:
    """One row per group (language, or `all`): ROUGE-L F/P/R, chrF, BLEU, count (and off-target %, where known)."""
    if not metrics:
        return "No evaluation results were recorded."
    groups = metrics if all(isinstance(value, dict) for value in metrics.values()) else {"all": metrics}
    columns = METRIC_COLUMNS[:]
    if any(OFF_TARGET_COLUMN[0] in values for values in groups.values()):
        columns.insert(-1, OFF_TARGET_COLUMN)
    rows = [
        [group] + [values.get(key, values.get(f"eval_{key}")) for key, _ in columns] for group, values in groups.items()
    ]
    return markdown_table(["group"] + [title for _, title in columns], rows)


def plot_loss_curves(histories: dict[str, list[dict]], path: str | os.PathLike, title: str | None = None) -> bool:
    """Train (solid) and validation (dashed, dots) loss against step for Trainer log histories.

    Returns False, with a one-line note, where matplotlib (an optional extra) is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed, so %s was not drawn (pip install 'xlm-swcm-hf[plot]').", path)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    for name, history in histories.items():
        prefix = f"{name}: " if name else ""
        train = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry and "step" in entry]
        evaluation = [(entry["step"], entry["eval_loss"]) for entry in history if "eval_loss" in entry]
        line = axes.plot(*zip(*train), label=f"{prefix}train")[0] if train else None
        if evaluation:
            axes.plot(
                *zip(*evaluation),
                marker="o",
                linestyle="--",
                color=line.get_color() if line else None,
                label=f"{prefix}validation",
            )
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True
