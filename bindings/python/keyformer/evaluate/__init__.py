"""Scoring and plots for ``keyformer eval``, ``keyformer tune`` and ``keyformer bench`` (pure Python,
no libkeyformer).

Usage (PYTHONPATH=bindings/python in the repository, where build/venv.sh installs the dependencies
into build/deps/venv; or ``pip install 'keyformer[eval]'``)::

    python -m keyformer.evaluate score DIR [--json]
    python -m keyformer.evaluate compare DIR POLICY_A POLICY_B [--metric rougeL|top1|kl|nll|ref_nll|...]
    python -m keyformer.evaluate plot-bench BENCH_JSON OUT_PNG
    python -m keyformer.evaluate fidelity DIR [--json]
    python -m keyformer.evaluate questions DIR [--json]
    python -m keyformer.evaluate tune DIR [--target 0.99] [--json]
    python -m keyformer.evaluate make-retrieval --haystack PATH --length TOKENS --out FILE [--seed N]
        [--records N] [--tasks a,b,...] [--chars-per-token 4.0]

The modules: :mod:`~keyformer.evaluate.records` reads and checks the files the Go command writes
(their schemas are there); :mod:`~keyformer.evaluate.report` holds the statistics, tables and
outputs the commands share, :mod:`~keyformer.evaluate.plots` the plotting helpers; one module per
command family: :mod:`~keyformer.evaluate.rouge` (``score``), :mod:`~keyformer.evaluate.compare`,
:mod:`~keyformer.evaluate.bench` (``plot-bench``), :mod:`~keyformer.evaluate.fidelity`
(``fidelity``, ``tune``), :mod:`~keyformer.evaluate.questions` and
:mod:`~keyformer.evaluate.retrieval` (``make-retrieval``, the retrieval question sets);
:mod:`~keyformer.evaluate.__main__` is the command line. ``score`` needs rouge-score and every
command but ``compare`` and ``make-retrieval`` needs matplotlib (the ``eval`` extra); they are
imported when first needed, and a missing one exits with a message naming the extra.

Bad input exits with status 1 and a one-line message naming the file (and line or row).
"""
