"""The report as a PNG: per query kind, each metric's bars by mode (and rerank), chance marked."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pardus.evaluation.metrics import SCORE_NAMES
from pardus.evaluation.report import EvalReport, RowReport
from pardus.evaluation.show import HEADERS

BAR_GROUP_WIDTH = 0.8


def _bar_label(row: RowReport) -> str:
    return row.label + (" + rerank" if row.rerank else "")


def _panel(axes, kind: str, rows: list[RowReport], report: EvalReport) -> None:
    width = BAR_GROUP_WIDTH / max(1, len(rows))
    for n, row in enumerate(rows):
        values = [getattr(row.scores, name) for name in SCORE_NAMES]
        offsets = [m - BAR_GROUP_WIDTH / 2 + (n + 0.5) * width for m in range(len(values))]
        axes.bar(offsets, values, width, label=_bar_label(row))
    chance = report.chance.get(kind)
    if chance is not None:
        for m, name in enumerate(SCORE_NAMES):
            level = getattr(chance, name)
            axes.hlines(level, m - BAR_GROUP_WIDTH / 2, m + BAR_GROUP_WIDTH / 2, colors="black",
                        linestyles="dashed", label="chance" if m == 0 else None)
    axes.set_title(f"{kind} queries ({rows[0].queries})")
    axes.set_xticks(range(len(SCORE_NAMES)), HEADERS)
    axes.set_ylim(0, 1.05)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08), ncols=2,
                frameon=False)


def write_chart(report: EvalReport, path: str | Path) -> Path:
    """One panel per query kind; nothing is drawn on screen (Agg canvas, no pyplot)."""
    kinds = list(dict.fromkeys(row.kind for row in report.rows if row.scores is not None))
    figure = Figure(figsize=(6 * max(1, len(kinds)), 6), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, max(1, len(kinds)), squeeze=False)[0]
    for axes, kind in zip(panels, kinds):
        _panel(axes, kind, [r for r in report.rows if r.kind == kind and r.scores], report)
    size = f", {report.catalogue_size} items" if report.catalogue_size else ""
    figure.suptitle(f"{Path(report.queries_file).name}: {report.target}{size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
