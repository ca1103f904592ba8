"""Scoring and plots for ``keyformer eval``, ``keyformer tune`` and ``keyformer bench`` (pure Python,
no libkeyformer).

Usage, in the repository (PYTHONPATH=bindings/lab/python:bindings/python; build/scripts/venv.sh installs the
dependencies, bindings/lab/python/requirements-eval.txt, into build/deps/venv)::

    python -m keyformer_eval score DIR [--json]
    python -m keyformer_eval compare DIR POLICY_A POLICY_B [--metric rougeL|top1|kl|nll|ref_nll|...]
    python -m keyformer_eval plot-bench BENCH_JSON OUT_PNG
    python -m keyformer_eval fidelity DIR [--json]
    python -m keyformer_eval questions DIR [--json]
    python -m keyformer_eval tune DIR [--target 0.99] [--json]
    python -m keyformer_eval make-retrieval --haystack PATH --length TOKENS --out FILE [--seed N]
        [--records N] [--tasks a,b,...] [--chars-per-token 4.0]

The modules: :mod:`~keyformer_eval.records` reads and checks the files the Go command writes
(their schemas are there); :mod:`~keyformer_eval.report` holds the statistics, tables and
outputs the commands share, :mod:`~keyformer_eval.plots` the plotting helpers; one module per
command family: :mod:`~keyformer_eval.rouge` (``score``), :mod:`~keyformer_eval.compare`,
:mod:`~keyformer_eval.bench` (``plot-bench``), :mod:`~keyformer_eval.fidelity`
(``fidelity``, ``tune``), :mod:`~keyformer_eval.questions` and
:mod:`~keyformer_eval.retrieval` (``make-retrieval``, the retrieval question sets);
:mod:`~keyformer_eval.__main__` is the command line. ``score`` needs rouge-score and every
command but ``compare`` and ``make-retrieval`` needs matplotlib (the ``eval`` extra); they are
imported when first needed, and a missing one exits with a message naming the extra.

Bad input exits with status 1 and a one-line message naming the file (and line or row).
"""
