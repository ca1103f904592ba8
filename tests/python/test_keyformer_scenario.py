"""The synthetic scenario the C test runs, through the Python bindings: H2O, 1 layer, 1 head,
budget 4 tokens, window 2."""

import numpy as np

import keyformer


def h2o_context():
    return keyformer.Context("h2o", n_layer=1, n_head=1, n_head_kv=1, budget=4, window=2, noise=False,
                             evict_slack=0)


def row(values):
    """One query row for one head: shape (heads=1, rows=1, cols)."""
    return np.array(values, dtype=np.float32).reshape(1, 1, -1)


def test_h2o_scenario():
    with h2o_context() as kf:
        # Prefill: 6 tokens in cells 0..5 at positions 0..5, one attention row.
        kf.add_cells(0, range(6), range(6))
        kf.observe(0, 0, row([0.5, 0.05, 0.2, 0.05, 0.1, 0.1]))
        assert kf.seq_length(0) == 6
        ev = kf.plan(0)
        assert ev.dtype == keyformer.EVICTION_DTYPE
        # 6 tokens, budget 4: two go, the lowest scores outside the window (cells 4, 5).
        assert sorted(ev["cell"].tolist()) == [1, 3]
        assert ev["layer"].tolist() == [-1, -1] and ev["head"].tolist() == [-1, -1]
        kf.forget(0, ev)
        assert kf.seq_length(0) == 4
        assert len(kf.plan(0)) == 0

        # Generation: the new token lands in the freed cell 1 at position 6.
        kf.add_cells(0, [1], [6])
        kf.observe(0, 0, row([0.1, 0.05, 0.0, 0.0, 0.8, 0.05]))
        ev = kf.plan(0)
        # Scores: cell 0 0.6, cell 2 0.2, cell 4 0.9 (just left the window), window = cells 5, 1.
        assert ev.tolist() == [(2, -1, -1)]
        kf.forget(0, ev)
        assert kf.seq_length(0) == 4
        assert len(kf.plan(0)) == 0


def test_h2o_scenario_other_forms():
    """The same run with a 2-D row, explicit cell ids, and evictions given as plain cells."""
    with h2o_context() as kf:
        kf.add_cells(3, np.arange(6, dtype=np.int64), np.arange(6))
        kf.observe(3, 0, np.array([[0.5, 0.05, 0.2, 0.05, 0.1, 0.1]], dtype=np.float32),
                   cells=[0, 1, 2, 3, 4, 5])
        assert sorted(kf.plan(3)["cell"].tolist()) == [1, 3]
        kf.forget(3, [1, 3])
        kf.add_cells(3, [1], [6])
        # Columns in another order, through the cell map; column 3's -1 is ignored.
        kf.observe(3, 0, np.array([[0.8, 0.1, 0.05, 0.05, 0.0]], dtype=np.float32), cells=[4, 0, 1, 5, -1])
        assert kf.plan(3).tolist() == [(2, -1, -1)]
        kf.forget(3, [(2, -1, -1)])
        assert kf.seq_length(3) == 4


# The H2O scenario of tests/c/scenario.c (the C and C++ consumer tests), mirrored value for value:
# a causal 6x6 prefill, then four single-token steps (see the hand-worked sums in scenario.h).
C_PREFILL = [
    [1.0, 0, 0, 0, 0, 0],
    [0.3, 0.7, 0, 0, 0, 0],
    [0.1, 0.6, 0.3, 0, 0, 0],
    [0.1, 0.5, 0.1, 0.3, 0, 0],
    [0.05, 0.4, 0.05, 0.4, 0.1, 0],
    [0.05, 0.3, 0.05, 0.4, 0.1, 0.1],
]
C_PREFILL_EVICTIONS = [2, 3]
# (cell, pos, cells or None, row, expected eviction)
C_STEPS = [
    (2, 6, None, [0.1, 0.2, 0.3, 0, 0.3, 0.1], 4),
    (3, 7, [0, 1, -1, 5, 2, 3], [0.5, 0.1, 0, 0.1, 0.1, 0.2], 5),
    (4, 8, None, [0.1, 0.1, 0.1, 0.6, 0.1], 2),
    (2, 9, None, [0.6, 0.1, 0.1, 0.1, 0.1], 3),
]


def test_h2o_scenario_of_the_c_tests():
    with h2o_context() as kf:
        kf.add_cells(0, range(6), range(6))
        # (heads=1, rows=6, cols=6): llama.cpp's layout for one head.
        kf.observe(0, 0, np.array(C_PREFILL, dtype=np.float32)[None])
        ev = kf.plan(0)
        assert ev["cell"].tolist() == C_PREFILL_EVICTIONS
        kf.forget(0, ev)
        for cell, pos, cells, values, evict in C_STEPS:
            kf.add_cells(0, [cell], [pos])
            kf.observe(0, 0, row(values), cells=cells)
            ev = kf.plan(0)
            assert ev.tolist() == [(evict, -1, -1)], "step at position %d" % pos
            kf.forget(0, ev)
            assert kf.seq_length(0) == 4
