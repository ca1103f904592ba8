"""``compare``: the paired difference of two policies' scores, per budget or cache size.

``compare DIR POLICY_A POLICY_B [--metric M] [--against DIR2]`` reads DIR/scores.jsonl (a ROUGE
metric, written by ``score``) or DIR/fidelity.jsonl (``--metric`` top1, kl, nll or ref_nll) and
prints, per budget (or cache), the paired difference of two policies' scores over the records both
have: its mean and standard error, in points (kl, nll, ref_nll in nats).
"""

import json
import os
import sys

from .records import FIDELITY_FILE, UNSIZED, EvaluateError, read_fidelity
from .report import budget_label, mean_se, paired_differences
from .rouge import SCORES_FILE

#: The per-record fidelity metrics ``compare --metric`` takes from fidelity.jsonl.
FIDELITY_METRICS = ("top1", "kl", "nll", "ref_nll")


def compare_command(directory, policy_a, policy_b, metric="rougeL", out=None, against=None):
    """``compare DIR A B``: the paired difference A - B of ``metric`` at every budget or cache size
    both policies have: its mean over the ids that have both, with its standard error. B may be
    ``full`` or a peer (``kv-q8_0``, ``kv-q4_0``: one line per id, paired with A at every budget). With ``against`` (another eval
    folder, e.g. the same policy under another observation schedule), B's values come from there.
    A ROUGE metric comes from DIR/scores.jsonl (which ``score`` writes), in points; a fidelity
    metric (top1 in percentage points; kl, nll, ref_nll in nats) from DIR/fidelity.jsonl. Prints a
    Markdown table (to ``out``, default stdout)."""
    out = out or sys.stdout
    path, by = _metric_by_run(directory, metric)
    by_b = by if against is None else _metric_by_run(against, metric)[1]
    if metric in FIDELITY_METRICS:
        scale, unit, fmt = (100, "percentage points", "%+.2f | %.2f") if metric == "top1" else \
            (1, "nats", "%+.4f | %.4f")
    else:
        scale, unit, fmt = 100, "F1 in points", "%+.2f | %.2f"
    sizes = {size for (policy, size, _) in by if policy == policy_a and size is not None}
    if not sizes:
        raise EvaluateError("%s: no %s of policy %r" % (
            path, "lines" if metric in FIDELITY_METRICS else "generations", policy_a))
    if policy_b not in UNSIZED:
        sizes &= {size for (policy, size, _) in by_b if policy == policy_b}
        if not sizes:
            raise EvaluateError("%s: no budget or cache size has both %s and %s" % (path, policy_a, policy_b))
    out.write("%s - %s%s, %s in %s: mean of the paired differences over records +- its standard error\n\n"
              % (policy_a, policy_b, "" if against is None else " of " + against, metric, unit))
    out.write("| budget or cache | n | mean difference | standard error |\n|---:|---:|---:|---:|\n")
    for size in sorted(sizes):
        a = {rid: v for (policy, s, rid), v in by.items() if policy == policy_a and s == size}
        b = {rid: v for (policy, s, rid), v in by_b.items()
             if policy == policy_b and s == (None if policy_b in UNSIZED else size)}
        n, mean, se = mean_se([scale * d for d in paired_differences(a, b)])
        if n < 2:
            raise EvaluateError("%s: fewer than 2 records with both %s and %s at %s" % (path, policy_a, policy_b, size))
        label = budget_label(size) if isinstance(size, float) else "%d cells" % size
        out.write(("| %s | %d | " + fmt + " |\n") % (label, n, mean, se))


def _metric_by_run(directory, metric):
    """``(path, {(policy, budget or cache, id): value})`` of ``metric`` in the eval folder: a
    fidelity metric from its fidelity.jsonl, a ROUGE score from its scores.jsonl."""
    if metric in FIDELITY_METRICS:
        path = os.path.join(directory, FIDELITY_FILE)
        return path, _read_fidelity_metric(path, metric)
    path = os.path.join(directory, SCORES_FILE)
    return path, _read_scores(path, metric)


def _read_fidelity_metric(path, metric):
    """``{(policy, budget or cache, id): value}`` of ``metric`` from fidelity.jsonl (the full
    cache's budget/cache is None)."""
    _, records = read_fidelity(path)
    return {(r.policy, r.budget if r.cache is None else r.cache, r.id): getattr(r, metric) for r in records}


def _read_scores(path, metric):
    """``{(policy, budget or cache, id): value}`` of ``metric`` from scores.jsonl."""
    by = {}
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                    size = row.get("budget") if row.get("cache") is None else row["cache"]
                    by[(row["policy"], size, row["id"])] = row[metric]
                except (ValueError, KeyError, TypeError) as e:
                    raise EvaluateError("%s:%d: %s" % (path, n, e)) from e
    except OSError as e:
        raise EvaluateError("cannot read %s (run `score` first): %s" % (path, e)) from e
    return by
