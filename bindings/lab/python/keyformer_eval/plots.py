"""The matplotlib helpers the evaluation commands draw their PNGs with (matplotlib, of the ``eval``
extra, is imported on the first figure)."""

from .records import QUALITY, missing_extra
from .report import by_policy, setting_key


def figure(width, height, ncols=1, width_ratios=None):
    """A matplotlib figure drawn by the Agg backend (no pyplot, no display) and its axes (``ncols``
    side by side, their widths in ``width_ratios`` where given); an EvaluateError naming the
    ``eval`` extra when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise missing_extra("matplotlib", e) from e
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, gridspec_kw=None if width_ratios is None else {"width_ratios": width_ratios})


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
    it is None or missing); a policy without a budget or cache (a peer) as a dotted horizontal
    line. A policy's colour is the colour cycle's at its place among the policies. Labels the x axis."""
    setting = setting_key(mode)
    xscale = 100 if mode == QUALITY else 1
    for i, (policy, prows) in enumerate(by_policy(rows).items()):
        colour = "C%d" % (i % 10)
        values = [float("nan") if r[metric] is None else scale * r[metric] for r in prows]
        if prows[0][setting] is None:
            ax.axhline(values[0], linestyle=":", color=colour, label=policy)
            continue
        ax.errorbar([xscale * r[setting] for r in prows], values,
                    yerr=[scale * (r.get(metric + "_se") or 0) for r in prows], marker="o", capsize=3,
                    color=colour, label=policy)
    ax.set_xlabel("KV cache budget (% of the prompt)" if mode == QUALITY else "KV cache (cells)")


def heatmap(ax, values, xlabels, ylabels, high=100):
    """Draws the matrix ``values`` (rows of numbers, NaN where there is none) on ``ax`` as coloured
    cells from 0 to ``high``, the number written in each cell (none in a NaN one), the columns
    labelled ``xlabels`` and the rows ``ylabels`` (the first row at the top). Returns the image
    (for a colour bar)."""
    image = ax.imshow(values, vmin=0, vmax=high, cmap="viridis", aspect="auto")
    for y, row in enumerate(values):
        for x, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(x, y, "%.0f" % v, ha="center", va="center", fontsize="small",
                        color="white" if v < high / 2 else "black")
    ax.set_xticks(range(len(xlabels)), labels=xlabels)
    ax.set_yticks(range(len(ylabels)), labels=ylabels)
    return image
