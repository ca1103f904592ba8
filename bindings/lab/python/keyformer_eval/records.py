"""Reading and checking the files that ``keyformer eval`` and ``keyformer bench`` write (pure Python).

The Go command (bindings/lab/cmd/keyformer) writes them; its structs are the source of the schemas, and
bindings/lab/cmd/keyformer/testdata/schema/ holds one marshalled example of each (TestSchema keeps them
up to date, tests/python/test_evaluate_schema.py reads them with the readers here). Each reader
declares the fields it requires in a ``*_FIELDS`` tuple; other fields are allowed and not used.
Every reader raises :class:`EvaluateError` naming the file (and line or row) on bad input.

Runs
----
Every eval JSONL line names a run with ``policy``, ``budget`` and ``cache``:

- ``policy``: ``full`` (the full cache), a :class:`keyformer.Policy` name in lower case, a peer
  (:data:`PEERS`: ``kv-q8_0``, ``kv-q4_0``, llama.cpp's own KV-cache quantization: no eviction,
  the whole prompt in a q8_0 or q4_0 cache) or ``context-shift`` (llama.cpp's own context shift,
  the long-document baseline); see :data:`POLICY_ORDER`.
- quality mode: ``budget`` the KV cache as a fraction of the prompt (a positive number) and
  ``cache`` null, with one line of policy ``full`` per id and the peers' lines (``budget`` and
  ``cache`` null: they keep the whole prompt);
- long-document mode: ``cache`` the KV cache in cells (a positive integer) and ``budget`` null.
  generations.jsonl has no full line then; fidelity.jsonl and answers.jsonl have one (``budget``
  and ``cache`` null) where the document fit the model.

All lines of a file but the full cache's and the peers' are in one mode. A line repeating a run of
the same id (a resumed run) replaces the earlier one: the last one wins.

Every line of these three files may also carry (older files lack them: a missing field reads as
null):

- ``reading``: ``bounded`` (the document read in ubatches with evictions after each, as the
  product runs) or ``whole`` (read whole, then evicted once: the paper's setting);
- ``instruction_in_prompt``: a bool, whether the instruction was inside the compressed prompt
  (answers.jsonl: always false, the question comes after the document);
- ``kv_bytes``: the run's peak KV cache memory in bytes (an integer >= 0: peak cells x bytes per
  cell at its cache type).

All lines of one file share one ``reading`` and one ``instruction_in_prompt`` (null counting as a
value of its own).

generations.jsonl (``score``)
-----------------------------
One JSON object per generation: ``id`` (a string or an integer), the run, ``text`` (the
generation) and ``reference`` (strings); ``prompt_tokens``, ``kv_cells``, ``generated_tokens``
and any other field are allowed and not used.

fidelity.jsonl (``fidelity``, ``tune``, ``compare --metric top1|kl|nll|ref_nll``)
-------------------------------------------------------------------------------
One JSON object per (record, run). For each record the full cache generates greedily once; its
tokens are the *teacher*. Every policy and budget (or cache size) is then forced through the
teacher's tokens, and separately through the reference text's tokens::

    {"id": "cnndm-0000", "policy": "keyformer", "budget": 0.5, "cache": null,
     "prompt_tokens": 812, "kv_cells": 418, "positions": 87,
     "top1": 0.954, "kl": 0.0213, "nll": 0.61, "ref_tokens": 54, "ref_nll": 2.93}

- ``id``: the record, a string or an integer; then the run.
- ``positions``: the number of teacher tokens scored (an integer >= 0).
- ``top1``: the share of those positions where the policy's argmax is the teacher token (0..1).
- ``kl``: the mean KL(full || policy) in nats per position.
- ``nll``: the mean negative log-likelihood (nats) of the teacher tokens under the policy (for the
  full line: of its own greedy tokens).
- ``ref_tokens``: the number of reference tokens scored (an integer >= 0).
- ``ref_nll``: the mean negative log-likelihood (nats) of the reference tokens under the policy.
- ``kl_positions`` (optional, null or missing where not measured): the list of the ``positions``
  per-position KL(full || policy) in nats (numbers >= 0).
- ``delta_p`` (optional likewise): the list of the ``positions`` per-position p_policy(tok) -
  p_full(tok), where tok is the teacher's token (probabilities, so numbers in [-1, 1]).
- ``prompt_tokens`` and ``kv_cells`` (and any other field) are allowed and not used.

When ``positions`` is 0, ``top1``, ``kl`` and ``nll`` are null (any value there is ignored) and the
record is left out of their means; likewise ``ref_nll`` when ``ref_tokens`` is 0. The full line's
``top1`` is 1.0 and its ``kl`` 0.0 by definition.

sparsity.jsonl (``tune`` only; optional)
----------------------------------------
One JSON object per (record, layer), measured on the full cache::

    {"id": "cnndm-0000", "layer": 3, "rows": 1152, "cells": 812.4, "share90": 0.231}

- ``layer``: the layer (an integer >= 0); ``rows``: the attention rows (heads x query tokens) that
  were measured (an integer >= 0); ``cells``: the mean number of live cells (a number >= 0);
  ``share90``: over those rows, the mean share (0..1) of the live cells needed to hold 90% of a
  row's attention mass, null when ``rows`` is 0 (then the line is left out). The last line wins
  for a repeated (id, layer).

answers.jsonl (``questions``)
-----------------------------
One JSON object per (question, run). Each document is read once with the policy, then each of its
questions is asked from a saved copy of the compressed cache::

    {"id": "quality-00-03", "document": "quality-00", "set": "quality", "policy": "h2o", "budget": 0.5,
     "cache": null, "kind": "choice", "prompt_tokens": 6120, "kv_cells": 3060,
     "answer": "B", "gold": "A", "logprobs": {"A": -1.2, "B": -0.7, "C": -3.0, "D": -2.2},
     "text": null, "reference": "(A) ..."}
    {"id": "topic-retrieval-00-01", "document": "topic-retrieval-00", "set": "topic_retrieval",
     "policy": "keyformer", "budget": null, "cache": 2048, "kind": "recall", "prompt_tokens": 14000,
     "kv_cells": 2048, "answer": "The future of space tourism.", "gold": null, "logprobs": null,
     "text": "The future of space tourism.", "reference": "The future of space tourism"}

- ``id``: the question (a string or an integer); ``document``: the document it is asked about
  (a string or an integer); ``set``: the question set (a string); then the run.
- ``kind``: ``choice`` (multiple choice) or ``recall`` (free text).
- ``answer``: a string, or null (no answer: counted wrong). For ``choice`` the letter picked;
  for ``recall`` the generated answer.
- ``gold``: for ``choice`` the right letter (a string); for ``recall`` not used (null).
- ``reference``: for ``recall`` the reference answer (a string, not empty once normalised, see
  :func:`normalize`); for ``choice`` not used.
- ``references`` (optional, null or missing): for ``recall``, every value the answer must recall
  (a non-empty list of strings, each not empty once normalised); ``reference`` is then those
  joined by ", ".
- ``task`` (optional): the task the question belongs to (a string: ``niah_single``,
  ``niah_multikey``, ``niah_multivalue``, ``vt``, ``cwe`` for the sets of ``make-retrieval``).
- ``depth`` (optional): where in the document the needle sits, a number in [0, 1], or null.
- ``prompt_tokens``, ``kv_cells``, ``logprobs``, ``text`` (and any other field) are allowed and not used.

bench.json (``plot-bench``)
---------------------------
One JSON object with ``model``, ``machine``, ``gen`` and ``rows``, a non-empty list of objects
each with ``context`` (a positive integer), ``budget`` (a number, null for plain llama.cpp),
``decode_tok_per_s`` and ``speedup`` (numbers) and ``ideal_speedup`` (a number or null);
``config`` (the configuration's name) is used where there.
"""

import json
import math
import re
import string
import sys
from collections import namedtuple

from keyformer import Policy

FULL = Policy.FULL.name.lower()
#: llama.cpp's own context shift, the long-document baseline of the Go command (not a policy).
CONTEXT_SHIFT = "context-shift"
#: The peers at equal memory: llama.cpp's own KV-cache quantization (no eviction, the whole prompt
#: in a q8_0 or q4_0 cache); their lines have ``budget`` and ``cache`` null.
PEERS = ("kv-q8_0", "kv-q4_0")
#: The runs that keep the whole prompt (no budget, no cache size).
UNSIZED = (FULL,) + PEERS
#: The order of the policies in tables, plots and JSON results (``full`` comes first, apart): the
#: library's default policy (keydiff), the others in the order of their values, the peers.
POLICY_ORDER = tuple(p.name.lower() for p in sorted(Policy, key=lambda p: (p is not Policy.KEYDIFF, p.value))
                     if p is not Policy.FULL) + PEERS + (CONTEXT_SHIFT,)


def base_policy(name):
    """The policy a run's name starts with: ``keyformer eval --policies`` takes a policy with
    options, ``keydiff+span3+kv-q8_0`` (keydiff, pooled over 3 tokens, under a q8_0 cache)."""
    return name.split("+", 1)[0]
#: The values of ``reading``.
READINGS = ("bounded", "whole")
QUALITY = "quality"
LONG = "long-document"

GENERATIONS_FILE = "generations.jsonl"
FIDELITY_FILE = "fidelity.jsonl"
SPARSITY_FILE = "sparsity.jsonl"
ANSWERS_FILE = "answers.jsonl"

GENERATION_FIELDS = ("id", "policy", "budget", "cache", "text", "reference")
FIDELITY_FIELDS = ("id", "policy", "budget", "cache", "positions", "top1", "kl", "nll", "ref_tokens", "ref_nll")
SPARSITY_FIELDS = ("id", "layer", "rows", "cells", "share90")
ANSWER_FIELDS = ("id", "document", "set", "policy", "budget", "cache", "kind", "answer", "gold", "reference")
BENCH_FIELDS = ("model", "machine", "gen", "rows")
BENCH_ROW_FIELDS = ("context", "budget", "decode_tok_per_s", "speedup", "ideal_speedup")
#: The kinds of question in answers.jsonl.
KINDS = ("choice", "recall")

#: The optional fields of every line of generations.jsonl, fidelity.jsonl and answers.jsonl (None
#: where missing).
RUN_EXTRAS = "reading instruction_in_prompt kv_bytes"

#: One line of generations.jsonl.
Generation = namedtuple("Generation", "id policy budget cache text reference " + RUN_EXTRAS, defaults=(None,) * 3)
#: One line of fidelity.jsonl (the metrics None where their count is 0).
Fidelity = namedtuple("Fidelity", "id policy budget cache positions top1 kl nll ref_tokens ref_nll " + RUN_EXTRAS
                      + " kl_positions delta_p", defaults=(None,) * 5)
#: One line of sparsity.jsonl.
Sparsity = namedtuple("Sparsity", "id layer rows cells share90")
#: One line of answers.jsonl.
Answer = namedtuple("Answer", "id document set policy budget cache kind answer gold reference " + RUN_EXTRAS
                    + " references task depth", defaults=(None,) * 6)


class EvaluateError(Exception):
    """Bad input or an output that cannot be written; the message names the file (and line)."""


def missing_extra(package, error):
    """The :class:`EvaluateError` for ``package``, a dependency of the evaluation that cannot be
    imported (``error``, the ImportError): it names the requirements file to install."""
    return EvaluateError("%s is not installed for %s (%s): pip install -r bindings/lab/python/requirements-eval.txt "
                         "(or build/scripts/venv.sh, which puts it in build/deps/venv)" % (package, sys.executable, error))


def is_number(value):
    """Whether ``value`` is a finite JSON number (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def iter_jsonl(path):
    """Yields ``(number, where, obj)`` for every non-blank line of the JSONL file at ``path``: its
    1-based line number, ``"PATH:LINE"`` for messages, and the decoded JSON value. Raises
    :class:`EvaluateError` when the file cannot be read or a line is not valid JSON (naming the line)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluateError("cannot read %s: %s" % (path, e)) from e
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = "%s:%d" % (path, number)
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise EvaluateError("%s: not valid JSON: %s" % (where, e)) from e
        yield number, where, obj


def require_fields(obj, fields, where):
    """Checks that ``obj`` is a JSON object holding every name in ``fields`` (the message names the
    missing ones, in the order given)."""
    if not isinstance(obj, dict):
        raise EvaluateError("%s: expected a JSON object, got %s" % (where, type(obj).__name__))
    missing = [f for f in fields if f not in obj]
    if missing:
        raise EvaluateError("%s: missing field%s %s" % (
            where, "s" if len(missing) > 1 else "", ", ".join(repr(f) for f in missing)))


def _key_value(obj, field, where):
    """``obj[field]``, a string or an integer."""
    value = obj[field]
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise EvaluateError("%s: %r must be a string or an integer, got %r" % (where, field, value))
    return value


def _count(obj, field, where):
    """The non-negative integer ``obj[field]``."""
    value = obj[field]
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise EvaluateError("%s: %r must be an integer >= 0, got %r" % (where, field, value))
    return value


def check_run_key(obj, where):
    """Checks the fields that name a run in every eval JSONL file: ``id`` (a string or an integer),
    ``policy`` (``full`` or one of :data:`POLICY_ORDER`, an evicting one with ``+options``), ``budget`` (a positive number or null) and
    ``cache`` (a positive integer or null, never both set). Returns ``(id, policy, budget, cache)``."""
    rid, policy, budget, cache = _key_value(obj, "id", where), obj["policy"], obj["budget"], obj["cache"]
    base = base_policy(policy) if isinstance(policy, str) else policy
    if policy != FULL and (base not in POLICY_ORDER or base != policy and base in PEERS + (CONTEXT_SHIFT,)):
        raise EvaluateError("%s: unknown policy %r (known: %s, a policy with +options)" % (
            where, policy, ", ".join((FULL,) + POLICY_ORDER)))
    if budget is not None and not (is_number(budget) and budget > 0):
        raise EvaluateError("%s: 'budget' must be a positive number or null, got %r" % (where, budget))
    if cache is not None and not (isinstance(cache, int) and not isinstance(cache, bool) and cache > 0):
        raise EvaluateError("%s: 'cache' must be a positive integer or null, got %r" % (where, cache))
    if budget is not None and cache is not None:
        raise EvaluateError("%s: a line has 'budget' (quality mode) or 'cache' (long-document mode), "
                            "not both" % where)
    return rid, policy, budget, cache


def _line_mode(run, where, full_in_long=False):
    """The mode one line belongs to (QUALITY or LONG), after checking that its policy fits that
    mode. The full cache and the peers (:data:`UNSIZED`) have ``budget`` and ``cache`` null: with
    ``full_in_long`` they fit either mode and get None; without it they are quality-mode lines."""
    if run.policy in UNSIZED:
        if run.budget is not None or run.cache is not None:
            raise EvaluateError("%s: policy %r must have 'budget' and 'cache' null (it keeps the whole prompt), "
                                "got budget %r and cache %r" % (where, run.policy, run.budget, run.cache))
        return None if full_in_long else QUALITY
    if run.cache is not None:
        return LONG
    if run.budget is None:
        raise EvaluateError("%s: policy %r needs a 'budget' (quality mode) or a 'cache' (long-document mode)"
                            % (where, run.policy))
    return QUALITY


def run_extras(obj, where):
    """The optional fields of an eval line (see the module docstring), checked: ``(reading,
    instruction_in_prompt, kv_bytes)``, None for a missing one."""
    reading, in_prompt = obj.get("reading"), obj.get("instruction_in_prompt")
    if reading is not None and reading not in READINGS:
        raise EvaluateError("%s: 'reading' must be one of %s or null, got %r" % (where, ", ".join(READINGS), reading))
    if in_prompt is not None and not isinstance(in_prompt, bool):
        raise EvaluateError("%s: 'instruction_in_prompt' must be true, false or null, got %r" % (where, in_prompt))
    return reading, in_prompt, None if obj.get("kv_bytes") is None else _count(obj, "kv_bytes", where)


def read_runs(path, parse, what, full_in_long=False):
    """Reads an eval JSONL file of runs: ``parse(obj, where)`` checks one decoded line and returns
    a record with the attributes ``id``, ``policy``, ``budget``, ``cache``, ``reading`` and
    ``instruction_in_prompt``. Checks that all lines are in one mode (see :func:`_line_mode`;
    ``full_in_long`` allows full-cache and peer lines in long-document mode) and share one
    ``reading`` and one ``instruction_in_prompt``, and keeps the last line for each (id, policy,
    budget, cache). Returns ``(mode, records)``; ``what`` names the records in the message for an
    empty file."""
    mode, mode_line = None, 0
    shared, shared_line = None, 0
    latest = {}
    for number, where, obj in iter_jsonl(path):
        run = parse(obj, where)
        if shared is None:
            shared, shared_line = (run.reading, run.instruction_in_prompt), number
        elif (run.reading, run.instruction_in_prompt) != shared:
            raise EvaluateError("%s: 'reading' %r and 'instruction_in_prompt' %r differ from line %d's (%r, %r): "
                                "the lines of one file share them (null included)"
                                % ((where, run.reading, run.instruction_in_prompt, shared_line) + shared))
        line_mode = _line_mode(run, where, full_in_long)
        if line_mode is None:
            pass
        elif mode is None:
            mode, mode_line = line_mode, number
        elif line_mode != mode:
            raise EvaluateError("%s: a %s-mode line in a %s-mode file (line %d sets the mode: "
                                "quality lines have 'budget', long-document lines have 'cache')"
                                % (where, line_mode, mode, mode_line))
        latest[(run.id, run.policy, run.budget, run.cache)] = run
    if not latest:
        raise EvaluateError("%s: no %s (the file is empty)" % (path, what))
    return mode or QUALITY, list(latest.values())


# --- generations.jsonl --------------------------------------------------------------------------

def _parse_generation(obj, where):
    """Checks one decoded line of generations.jsonl and returns it as a :class:`Generation`."""
    require_fields(obj, GENERATION_FIELDS, where)
    rid, policy, budget, cache = check_run_key(obj, where)
    for field in ("text", "reference"):
        if not isinstance(obj[field], str):
            raise EvaluateError("%s: %r must be a string, got %r" % (where, field, obj[field]))
    return Generation(rid, policy, budget, cache, obj["text"], obj["reference"], *run_extras(obj, where))


def read_generations(path):
    """Reads generations.jsonl: returns ``(mode, generations)``, the last line winning for each
    (id, policy, budget or cache)."""
    return read_runs(path, _parse_generation, "generations")


# --- fidelity.jsonl and sparsity.jsonl ----------------------------------------------------------

def _metric(obj, field, count, where, low=None, high=None):
    """``obj[field]``, a number (within [low, high] where given) when ``count`` > 0; None (whatever
    is there, a number or null) when ``count`` is 0."""
    value = obj[field]
    if count == 0:
        if value is not None and not is_number(value):
            raise EvaluateError("%s: %r must be a number or null, got %r" % (where, field, value))
        return None
    if not is_number(value):
        raise EvaluateError("%s: %r must be a number, got %r" % (where, field, value))
    if (low is not None and value < low) or (high is not None and value > high):
        raise EvaluateError("%s: %r must be between %g and %g, got %r" % (where, field, low, high, value))
    return float(value)


def _per_position(obj, field, positions, where, low, high=None):
    """The optional list ``obj[field]`` of ``positions`` numbers within [low, high] (None when it is
    missing or null), as floats."""
    values = obj.get(field)
    if values is None:
        return None
    if not isinstance(values, list) or len(values) != positions:
        raise EvaluateError("%s: %r must be a list of 'positions' (%d) numbers or null, got %s" % (
            where, field, positions, "a list of %d" % len(values) if isinstance(values, list) else repr(values)))
    for i, v in enumerate(values):
        if not is_number(v) or v < low or (high is not None and v > high):
            raise EvaluateError("%s: %s[%d] must be a number >= %g%s, got %r" % (
                where, field, i, low, "" if high is None else " and <= %g" % high, v))
    return [float(v) for v in values]


def _parse_fidelity(obj, where):
    """Checks one decoded line of fidelity.jsonl and returns it as a :class:`Fidelity`."""
    require_fields(obj, FIDELITY_FIELDS, where)
    rid, policy, budget, cache = check_run_key(obj, where)
    positions = _count(obj, "positions", where)
    ref_tokens = _count(obj, "ref_tokens", where)
    return Fidelity(rid, policy, budget, cache, positions,
                    _metric(obj, "top1", positions, where, 0, 1), _metric(obj, "kl", positions, where),
                    _metric(obj, "nll", positions, where), ref_tokens, _metric(obj, "ref_nll", ref_tokens, where),
                    *run_extras(obj, where), _per_position(obj, "kl_positions", positions, where, 0),
                    _per_position(obj, "delta_p", positions, where, -1, 1))


def read_fidelity(path):
    """Reads fidelity.jsonl: returns ``(mode, records)``, the last line winning for each (id,
    policy, budget, cache)."""
    return read_runs(path, _parse_fidelity, "fidelity lines", full_in_long=True)


def _parse_sparsity(obj, where):
    """Checks one decoded line of sparsity.jsonl and returns it as a :class:`Sparsity`."""
    require_fields(obj, SPARSITY_FIELDS, where)
    rid = _key_value(obj, "id", where)
    layer = _count(obj, "layer", where)
    rows = _count(obj, "rows", where)
    if not (is_number(obj["cells"]) and obj["cells"] >= 0):
        raise EvaluateError("%s: 'cells' must be a number >= 0, got %r" % (where, obj["cells"]))
    return Sparsity(rid, layer, rows, float(obj["cells"]), _metric(obj, "share90", rows, where, 0, 1))


def read_sparsity(path):
    """Reads sparsity.jsonl: returns its lines as :class:`Sparsity` records, the last line winning
    for each (id, layer)."""
    latest = {}
    for _, where, obj in iter_jsonl(path):
        s = _parse_sparsity(obj, where)
        latest[(s.id, s.layer)] = s
    if not latest:
        raise EvaluateError("%s: no sparsity lines (the file is empty)" % path)
    return list(latest.values())


# --- answers.jsonl ------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text):
    """SQuAD-style answer normalisation: lowercase, drop punctuation (ASCII), drop the articles a,
    an and the, collapse runs of whitespace to one space (and strip)."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _question_extras(obj, where):
    """The optional fields of a question (see the module docstring), checked: ``(references, task,
    depth)``, None for a missing one."""
    references, task, depth = obj.get("references"), obj.get("task"), obj.get("depth")
    if references is not None and not (isinstance(references, list) and references and
                                       all(isinstance(r, str) and normalize(r) for r in references)):
        raise EvaluateError("%s: 'references' must be a non-empty list of strings, each not empty once normalised, "
                            "or null, got %r" % (where, references))
    if task is not None and not isinstance(task, str):
        raise EvaluateError("%s: 'task' must be a string or null, got %r" % (where, task))
    if depth is not None and not (is_number(depth) and 0 <= depth <= 1):
        raise EvaluateError("%s: 'depth' must be a number between 0 and 1 or null, got %r" % (where, depth))
    return references, task, None if depth is None else float(depth)


def _parse_answer(obj, where):
    """Checks one decoded line of answers.jsonl and returns it as an :class:`Answer`."""
    require_fields(obj, ANSWER_FIELDS, where)
    rid, policy, budget, cache = check_run_key(obj, where)
    document = _key_value(obj, "document", where)
    if not isinstance(obj["set"], str):
        raise EvaluateError("%s: 'set' must be a string, got %r" % (where, obj["set"]))
    kind = obj["kind"]
    if kind not in KINDS:
        raise EvaluateError("%s: 'kind' must be one of %s, got %r" % (where, ", ".join(KINDS), kind))
    answer = obj["answer"]
    if answer is not None and not isinstance(answer, str):
        raise EvaluateError("%s: 'answer' must be a string or null, got %r" % (where, answer))
    needed = "gold" if kind == "choice" else "reference"
    if not isinstance(obj[needed], str):
        raise EvaluateError("%s: %r must be a string for a %s question, got %r" % (where, needed, kind, obj[needed]))
    if kind == "recall" and not normalize(obj["reference"]):
        raise EvaluateError("%s: 'reference' is empty once normalised: %r" % (where, obj["reference"]))
    return Answer(rid, document, obj["set"], policy, budget, cache, kind, answer, obj["gold"], obj["reference"],
                  *run_extras(obj, where), *_question_extras(obj, where))


def read_answers(path):
    """Reads answers.jsonl: returns ``(mode, answers)``, the last line winning for each (id,
    policy, budget, cache)."""
    return read_runs(path, _parse_answer, "answers", full_in_long=True)


# --- bench.json ---------------------------------------------------------------------------------

def read_bench(path):
    """Reads and checks bench.json; returns the decoded object."""
    try:
        with open(path, encoding="utf-8") as f:
            bench = json.load(f)
    except (OSError, UnicodeDecodeError) as e:
        raise EvaluateError("cannot read %s: %s" % (path, e)) from e
    except ValueError as e:
        raise EvaluateError("%s: not valid JSON: %s" % (path, e)) from e
    if not isinstance(bench, dict):
        raise EvaluateError("%s: expected a JSON object" % path)
    missing = [f for f in BENCH_FIELDS if f not in bench]
    if missing:
        raise EvaluateError("%s: missing field(s) %s" % (path, ", ".join(repr(f) for f in missing)))
    if not isinstance(bench["rows"], list) or not bench["rows"]:
        raise EvaluateError("%s: 'rows' must be a non-empty list" % path)
    for i, row in enumerate(bench["rows"]):
        where = "%s: rows[%d]" % (path, i)
        if not isinstance(row, dict):
            raise EvaluateError("%s: expected a JSON object" % where)
        missing = [f for f in BENCH_ROW_FIELDS if f not in row]
        if missing:
            raise EvaluateError("%s: missing field(s) %s" % (where, ", ".join(repr(f) for f in missing)))
        if not (isinstance(row["context"], int) and row["context"] > 0):
            raise EvaluateError("%s: 'context' must be a positive integer, got %r" % (where, row["context"]))
        for field, nullable in (("budget", True), ("decode_tok_per_s", False), ("speedup", False),
                                ("ideal_speedup", True)):
            if not (is_number(row[field]) or (nullable and row[field] is None)):
                raise EvaluateError("%s: %r must be a number%s, got %r" % (
                    where, field, " or null" if nullable else "", row[field]))
    return bench
