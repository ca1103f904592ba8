"""What the evaluation commands share to summarise and report: statistics, the order of the rows,
the KV memory and reading of the runs, rounding, Markdown tables, CSV files and writing the outputs
(pure Python, standard library only)."""

import csv
import json
import math
import os
import sys

from .records import FULL, POLICY_ORDER, QUALITY, EvaluateError, base_policy

# --- statistics ---------------------------------------------------------------------------------


def mean(values):
    """The mean of the non-null values (None when there are none)."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def mean_se(values):
    """``(n, mean, se)`` over the non-null values: ``se`` is the sample standard deviation (n - 1 in
    the denominator) over the square root of n. ``mean`` is None when n is 0, ``se`` when n < 2."""
    values = [v for v in values if v is not None]
    n = len(values)
    if n == 0:
        return 0, None, None
    m = sum(values) / n
    if n < 2:
        return n, m, None
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return n, m, sd / math.sqrt(n)


def paired_differences(a, b):
    """``a[k] - b[k]`` for every key of the dict ``a`` that the dict ``b`` also has, where neither
    value is None (in ``a``'s order): the paired differences over the records both have."""
    return [a[k] - b[k] for k in a if k in b and a[k] is not None and b[k] is not None]


# --- rows ---------------------------------------------------------------------------------------

def setting_key(mode):
    """The field that sizes the cache in ``mode``: ``budget`` (quality) or ``cache`` (long-document)."""
    return "budget" if mode == QUALITY else "cache"


def run_order(row, setting):
    """The sort key of a row in the report's order: the full cache first, then by policy
    (:data:`POLICY_ORDER`; a policy with options after it, by name), then ``setting`` (none, for
    the peers, first)."""
    if row["policy"] == FULL:
        return (-1, "", 0)
    return (POLICY_ORDER.index(base_policy(row["policy"])), row["policy"], -1 if row[setting] is None else row[setting])


def sort_rows(rows, setting):
    """The non-full rows in the report's order (see :func:`run_order`)."""
    return sorted((r for r in rows if r["policy"] != FULL), key=lambda r: run_order(r, setting))


def group_runs(records):
    """``(groups, full_by_id)``: ``groups`` maps each run (policy, budget, cache) to ``{id:
    record}`` of the records read for it, ``full_by_id`` is the full cache's (empty without
    full lines)."""
    groups = {}
    for r in records:
        groups.setdefault((r.policy, r.budget, r.cache), {})[r.id] = r
    return groups, next((g for (policy, _, _), g in groups.items() if policy == FULL), {})


def kv_memory(members, full_by_id):
    """The mean, over the ids of ``members`` (``{id: record}``), of the run's ``kv_bytes`` over the
    full cache's ``kv_bytes`` for the same id (``full_by_id``), over the ids where both are known
    (and the full cache's is not 0): the run's KV memory as a fraction of the full cache's. None
    where no id has both."""
    return mean([r.kv_bytes / full_by_id[rid].kv_bytes for rid, r in members.items()
                 if r.kv_bytes is not None and rid in full_by_id and full_by_id[rid].kv_bytes])


#: How the document was read (``reading``), in the captions.
READING_WORDS = {"bounded": "bounded reading", "whole": "whole-prompt reading (the paper's setting)"}
#: Where the instruction was (``instruction_in_prompt``), in the captions.
INSTRUCTION_WORDS = {False: "question after the document", True: "instruction inside the compressed prompt"}


def reading_of(records):
    """``{"reading", "instruction_in_prompt"}`` of the lines of one file, which share them (the
    readers check it; None in older files), for the JSON summaries."""
    return {"reading": records[0].reading, "instruction_in_prompt": records[0].instruction_in_prompt}


def reading_caption(reading):
    """The sentence of a caption that says how the document was read and where the instruction was
    (``reading`` from :func:`reading_of`), with a leading space; empty when neither is known."""
    words = [w for w in (READING_WORDS.get(reading["reading"]),
                         INSTRUCTION_WORDS.get(reading["instruction_in_prompt"])) if w]
    if not words:
        return ""
    text = "; ".join(words)
    return " %s%s." % (text[0].upper(), text[1:])


def by_policy(rows):
    """The rows grouped by policy (a dict in the rows' order)."""
    policies = {}
    for r in rows:
        policies.setdefault(r["policy"], []).append(r)
    return policies


def round_or_none(value, digits=4):
    """``value`` rounded to ``digits`` decimals (None stays None)."""
    return None if value is None else round(value, digits)


def round_cell(column, value, digits=6):
    """A float ``value`` rounded to ``digits`` decimals, unless its ``column`` is ``budget`` (a
    setting, kept as given); other values as they are."""
    return round_or_none(value, digits) if isinstance(value, float) and column != "budget" else value


def round_row(row, keys=None, digits=6):
    """``row`` restricted to ``keys`` (default: all of it), each cell through :func:`round_cell`
    (a nested dict likewise): a JSON result row."""
    return {k: round_row(row[k], digits=digits) if isinstance(row[k], dict) else round_cell(k, row[k], digits)
            for k in (keys or row)}


# --- tables -------------------------------------------------------------------------------------

def budget_label(budget):
    """A budget fraction as a percent label (0.5: ``50%``)."""
    return "%g%%" % (100 * budget)


def plus_minus(mean, se, scale=1, digits=4, signed=False):
    """``mean ± se``, both times ``scale`` with ``digits`` decimals (``mean`` with its sign when
    ``signed``); only the mean when ``se`` is None; a dash when ``mean`` is None."""
    if mean is None:
        return "—"
    text = ("%+.*f" if signed else "%.*f") % (digits, scale * mean)
    return text if se is None else "%s ± %.*f" % (text, digits, scale * se)


def setting_label(row):
    """The budget or cache column of a table row: ``50%`` for a budget, the number of cells for a
    cache, a dash for neither (the full cache and the peers)."""
    if row.get("budget") is not None:
        return budget_label(row["budget"])
    return "—" if row.get("cache") is None else str(row["cache"])


def render_table(caption, header, body, notes=()):
    """A Markdown report: the caption line, a blank line, the table (first column left-aligned,
    the others right-aligned; ``body`` a list of rows of cell strings) and then each of ``notes``
    as a line of its own after a blank line."""
    lines = [caption, "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if notes:
        lines.append("")
        lines += list(notes)
    return "\n".join(lines) + "\n"


def write_table_csv(path, columns, rows, value=None):
    """Writes ``rows`` (dicts) to the CSV file ``path``: a header of ``columns``, then a line per
    row; ``value(column, v)`` formats a cell (default: as is), a missing or None cell is empty."""
    value = value or (lambda column, v: v)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else value(c, r[c]) for c in columns])


# --- outputs ------------------------------------------------------------------------------------

def warn(message):
    """Prints a warning line to stderr."""
    print("keyformer_eval: warning: %s" % message, file=sys.stderr)


def write_output(directory, name, write):
    """Calls ``write(path)`` for the report DIR/name and returns the path; an OSError becomes an
    :class:`EvaluateError` naming the file."""
    path = os.path.join(directory, name)
    try:
        write(path)
    except OSError as e:
        raise EvaluateError("cannot write %s: %s" % (path, e)) from e
    return path


def write_text(path, text):
    """Writes ``text`` to the file ``path`` (UTF-8)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def finish_report(out, text, written, summary=None):
    """Prints a command's Markdown ``text``, the files it wrote and, when ``summary`` is given (the
    ``--json`` object), that object as the last line."""
    out.write(text)
    out.write("\nwrote %s\n" % ", ".join(written))
    if summary is not None:
        out.write(json.dumps(summary) + "\n")
