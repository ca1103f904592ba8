"""The matplotlib helpers the evaluation commands draw their PNGs with (matplotlib, of the ``eval``
extra, is imported on the first figure)."""

from .records import QUALITY, missing_extra
from .report import by_policy, setting_key


def figure(width, height, ncols=1):
    """A matplotlib figure drawn by the Agg backend (no pyplot, no display) and its axes; an
    EvaluateError naming the ``eval`` extra when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise missing_extra("matplotlib", e) from e
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def save_figure(fig, axes, path):
    """Adds a legend to each of ``axes`` that has labelled lines, lays ``fig`` out and writes it
    to ``path`` (PNG, 120 dpi)."""
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_policy_lines(ax, mode, rows, metric, scale=1):
    """Draws ``metric`` (times ``scale``) of ``rows`` against the budget (percent) or the cache
    (cells) on ``ax``, a line per policy with error bars of ±1 SE (``metric + "_se"``; none where
    it is None); labels the x axis. Returns ``{policy: colour}``."""
    setting = setting_key(mode)
    xscale = 100 if mode == QUALITY else 1
    colours = {}
    for policy, prows in by_policy(rows).items():
        drawn = ax.errorbar([xscale * r[setting] for r in prows],
                            [float("nan") if r[metric] is None else scale * r[metric] for r in prows],
                            yerr=[scale * (r[metric + "_se"] or 0) for r in prows], marker="o", capsize=3,
                            label=policy)
        colours[policy] = drawn.lines[0].get_color()
    ax.set_xlabel("KV cache budget (% of the prompt)" if mode == QUALITY else "KV cache (cells)")
    return colours
