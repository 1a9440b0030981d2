"""The reports' charts as PNG bytes, drawn server-side with matplotlib (Agg, imported only when a chart is drawn)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from typing import Any

# fonts with Chinese glyphs first (a Chinese chart is readable where one is installed), then matplotlib's own
FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "DejaVu Sans")
COLOURS = ("#0969da", "#1a7f37", "#bf8700", "#a40e26", "#8250df")
WIDTH, HEIGHT, DPI = 8.0, 4.0, 100  # 800 × 400 pixels: readable in a chat and on a page


Series = tuple[str, Sequence[float | None]]


@cache
def _matplotlib() -> tuple[Any, Any, Any, tuple[str, ...]]:
    """matplotlib's Figure, Agg canvas and integer tick locator, and the fonts of FONTS installed here; the import costs about half a second,
    so a process pays it at its first chart, never at start-up."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a server draws into memory
    from matplotlib import font_manager
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return Figure, FigureCanvasAgg, MaxNLocator, tuple(name for name in FONTS if name in installed) or ("DejaVu Sans",)


def _png(figure: Any, canvas_class: Any) -> bytes:
    canvas_class(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return out.getvalue()


def _figure(title: str) -> tuple[Any, Any, Any]:
    figure_class, canvas_class, _locator, fonts = _matplotlib()
    figure = figure_class(figsize=(WIDTH, HEIGHT), dpi=DPI)
    axes = figure.add_subplot()
    axes.set_title(title, fontfamily=list(fonts), fontsize=12, loc="left")
    axes.spines[["top", "right"]].set_visible(False)
    axes.grid(axis="y", color="#d0d7de", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes, canvas_class


def _fonts() -> list[str]:
    return list(_matplotlib()[3])


def bars(title: str, categories: Sequence[str], series: Sequence[Series], *, percent: bool = False, empty: str = "") -> bytes:
    """Grouped bars: one group per category, one bar per series (None: no bar). Percent series are fractions 0–1."""
    figure, axes, canvas_class = _figure(title)
    fonts = _fonts()
    if not categories:
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes, fontfamily=fonts, color="#57606a")
        axes.set_xticks([])
        axes.set_yticks([])
        return _png(figure, canvas_class)
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series):
        xs = [position + (index - (len(series) - 1) / 2) * width for position in range(len(categories))]
        heights = [(value or 0.0) * (100 if percent else 1) for value in values]
        drawn = axes.bar(xs, heights, width=width * 0.95, label=name, color=COLOURS[index % len(COLOURS)])
        labels = ["" if value is None else (f"{value * 100:.0f}%" if percent else f"{value:g}") for value in values]
        axes.bar_label(drawn, labels=labels, fontsize=8, padding=2)
    axes.set_xticks(range(len(categories)), [c[:18] for c in categories], fontfamily=fonts, fontsize=9,
                    rotation=30 if len(categories) > 6 else 0, ha="right" if len(categories) > 6 else "center")
    if percent:
        axes.set_ylim(0, 110)
        axes.yaxis.set_major_formatter(lambda value, _position: f"{value:.0f}%")
    else:
        axes.yaxis.set_major_locator(_matplotlib()[2](integer=True))  # counts: no quarter visits on the axis
    axes.legend(prop={"family": fonts, "size": 9}, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure, canvas_class)


def lines(title: str, points: Sequence[str], series: Sequence[Series], *, empty: str = "") -> bytes:
    """Percent lines over time (fractions 0–1; None: a gap), one per series."""
    figure, axes, canvas_class = _figure(title)
    fonts = _fonts()
    if not points:
        axes.text(0.5, 0.5, empty, ha="center", va="center", transform=axes.transAxes, fontfamily=fonts, color="#57606a")
        axes.set_xticks([])
        axes.set_yticks([])
        return _png(figure, canvas_class)
    for index, (name, values) in enumerate(series):
        ys = [float("nan") if value is None else value * 100 for value in values]
        axes.plot(range(len(points)), ys, marker="o", label=name, color=COLOURS[index % len(COLOURS)], linewidth=1.8)
    step = max(1, len(points) // 12)  # at most a dozen dates under the axis
    axes.set_xticks(range(0, len(points), step), [points[i] for i in range(0, len(points), step)], fontfamily=fonts, fontsize=9,
                    rotation=30 if len(points) > 6 else 0, ha="right" if len(points) > 6 else "center")
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter(lambda value, _position: f"{value:.0f}%")
    axes.legend(prop={"family": fonts, "size": 9}, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure, canvas_class)
