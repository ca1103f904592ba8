"""Keyformer (and H2O) runs on random softmax attention: invariants, determinism, layouts."""

import threading

import numpy as np
import pytest

import keyformer
from kf_sim import ToyEngine, softmax_rows

N_LAYER, N_HEAD, N_HEAD_KV = 2, 4, 2
PROMPT, BUDGET_FRACTION, WINDOW, STEPS = 64, 0.5, 8, 40
BUDGET = int(round(BUDGET_FRACTION * PROMPT))


def keyformer_context(policy="keyformer", seed=0, **kw):
    # reading everything and evicting at every plan (the schedule tests below set their own)
    args = dict(n_layer=N_LAYER, n_head=N_HEAD, n_head_kv=N_HEAD_KV, budget=BUDGET_FRACTION, window=WINDOW,
                new_tokens=STEPS, observe_layers=1, observe_decode_stride=1, evict_slack=0)
    args.update(kw)
    return keyformer.Context(policy, seed=seed, **args)


def run(seed, data_seed=1, policy="keyformer", check=True):
    """Prefill PROMPT tokens, then STEPS single-token steps, evicting after each decode."""
    rng = np.random.default_rng(data_seed)
    bias = np.where(rng.random(PROMPT + STEPS) < 0.1, 4.0, 0.0)
    with keyformer_context(seed=seed, policy=policy) as kf:
        eng = ToyEngine(kf, 5, N_LAYER, N_HEAD, rng, bias=bias)
        eng.decode(PROMPT)
        for step in range(STEPS + 1):
            before = kf.seq_length(5)
            window = eng.recent(WINDOW)
            held = set(eng.cell_pos)
            ev = eng.evict()
            if check:
                cells = ev["cell"].tolist()
                assert len(cells) == max(0, before - BUDGET)
                assert len(set(cells)) == len(cells)
                assert set(cells) <= held
                assert not set(cells) & window, "evicted from the recent window"
                assert (ev["layer"] == -1).all() and (ev["head"] == -1).all()
                assert kf.seq_length(5) <= BUDGET
                assert kf.seq_length(5) == len(eng.cell_pos)
            if step < STEPS:
                eng.decode(1)
        return eng.history


def test_keyformer_invariants():
    history = run(seed=7)
    assert len(history[0]) == PROMPT - BUDGET
    assert all(len(h) == 1 for h in history[1:])


def test_keyformer_same_seed_same_evictions():
    assert run(seed=7, check=False) == run(seed=7, check=False)


def test_keyformer_noise_depends_on_seed():
    # Gumbel noise is strong: two seeds practically never pick the same 70 evictions.
    assert run(seed=7, check=False) != run(seed=8, check=False)


@pytest.mark.parametrize("policy", ["h2o", "tova", "streaming", "window", "full"])
def test_other_policies_keep_budget(policy):
    rng = np.random.default_rng(3)
    with keyformer_context(policy=policy, sinks=2) as kf:
        eng = ToyEngine(kf, 0, N_LAYER, N_HEAD, rng)
        eng.decode(PROMPT)
        for _ in range(5):
            window = eng.recent(WINDOW)
            ev = eng.evict()
            assert not set(ev["cell"].tolist()) & window
            if policy == "full":
                assert len(ev) == 0
            else:
                assert kf.seq_length(0) == BUDGET
            eng.decode(1)


def test_h2o_evicts_lowest_accumulated_attention():
    """H2O's plan against a float64 reference: every evicted candidate scores no more than any kept
    candidate (scores summed over rows, heads and layers)."""
    rng = np.random.default_rng(11)
    n = 48
    with keyformer.Context("h2o", n_layer=3, n_head=4, n_head_kv=2, budget=20, window=5) as kf:
        kf.add_cells(0, np.arange(n), np.arange(n))
        scores = np.zeros(n)
        mask = np.tril(np.ones((n, n), dtype=bool))
        for layer in range(3):
            p = softmax_rows(np.where(mask, rng.normal(0, 2, (4, n, n)), -np.inf))
            kf.observe(0, layer, p)
            scores += p.astype(np.float64).sum(axis=(0, 1))
        ev = kf.plan(0)["cell"]
        assert len(ev) == n - 20
        candidates = np.arange(n - 5)
        kept = np.setdiff1d(candidates, ev)
        assert set(ev.tolist()) <= set(candidates.tolist())
        assert scores[ev].max() <= scores[kept].min() + 1e-4


def _drive(kf, seq, attention_for):
    """Prefill 12 tokens with (heads, rows, cols) attention given in some layout, then plan."""
    kf.add_cells(seq, range(12), range(12))
    for layer in range(N_LAYER):
        arr, kw = attention_for(layer)
        kf.observe(seq, layer, arr, **kw)
    return kf.save_state(seq), kf.plan(seq).tolist()


def _attention(layer, rows=12, cols=12):
    rng = np.random.default_rng(100 + layer)
    mask = np.tril(np.ones((rows, cols), dtype=bool), k=cols - rows)
    return softmax_rows(np.where(mask, rng.normal(0, 2, (N_HEAD, rows, cols)), -np.inf))


LAYOUTS = {
    "hrc contiguous": lambda l: (_attention(l), {}),
    "rhc contiguous": lambda l: (np.ascontiguousarray(_attention(l).transpose(1, 0, 2)), {"layout": "rhc"}),
    "rhc view of hrc": lambda l: (_attention(l).transpose(1, 0, 2), {"layout": "rhc"}),
    "hrc view of rhc": lambda l: (np.ascontiguousarray(_attention(l).transpose(1, 0, 2)).transpose(1, 0, 2), {}),
    "padded columns": lambda l: (np.pad(_attention(l), ((0, 0), (0, 0), (0, 20)))[:, :, :12], {}),
    "every other head": lambda l: (np.repeat(_attention(l), 2, axis=0)[::2], {}),
    "explicit cells": lambda l: (_attention(l), {"cells": np.arange(12, dtype=np.int32)}),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layouts_and_strides_agree(name):
    with keyformer_context(seed=3, budget=6, window=2) as a, keyformer_context(seed=3, budget=6, window=2) as b:
        want = _drive(a, 0, LAYOUTS["hrc contiguous"])
        got = _drive(b, 0, LAYOUTS[name])
        assert got == want


def test_one_row_2d_equals_3d():
    row = _attention(0, rows=1, cols=12)
    with keyformer_context(seed=3, budget=6, window=2) as a, keyformer_context(seed=3, budget=6, window=2) as b:
        for kf, arr in ((a, row), (b, row[:, 0, :])):
            kf.add_cells(0, range(12), range(12))
            kf.observe(0, 0, arr)
        assert a.save_state(0) == b.save_state(0)


def test_logits_equal_probabilities_for_h2o():
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 1, (N_HEAD, 1, 10)).astype(np.float32)
    logits[:, :, 7] = -np.inf  # masked
    probs = softmax_rows(logits.astype(np.float64))
    with keyformer_context(policy="h2o", budget=5, window=1) as a, keyformer_context(policy="h2o", budget=5, window=1) as b:
        for kf, arr, lg in ((a, probs, False), (b, logits, True)):
            kf.add_cells(0, range(10), range(10))
            kf.observe(0, 0, arr, logits=lg)
        assert a.plan(0).tolist() == b.plan(0).tolist()


def test_per_head_granularity():
    with keyformer.Context("h2o", n_layer=2, n_head=4, n_head_kv=2, budget=6, window=2,
                           granularity="per_head") as kf:
        kf.add_cells(0, range(10), range(10))
        for layer in range(2):
            kf.observe(0, layer, _attention(layer, rows=10, cols=10))
        ev = kf.plan(0)
        # One token set per (layer, KV head): 4 sets, 4 evictions each.
        assert len(ev) == 4 * 4
        assert sorted(set(zip(ev["layer"].tolist(), ev["head"].tolist()))) == [(0, 0), (0, 1), (1, 0), (1, 1)]
        assert not set(ev["cell"].tolist()) & {8, 9}
        kf.forget(0, ev)
        # A cell leaves the sequence only once every head has dropped it.
        counts = {}
        for c in ev["cell"].tolist():
            counts[c] = counts.get(c, 0) + 1
        assert kf.seq_length(0) == 10 - sum(1 for v in counts.values() if v == 4)


def test_sequences_in_parallel_threads():
    """Calls on different sequences may run concurrently; results equal a sequential run."""
    def work(kf, seq):
        eng = ToyEngine(kf, seq, N_LAYER, N_HEAD, np.random.default_rng(seq))
        eng.decode(PROMPT)
        for _ in range(10):
            eng.evict()
            eng.decode(1)
        eng.evict()

    seqs = [0, 1, 2, 3]
    with keyformer_context(seed=1) as seq_kf, keyformer_context(seed=1) as par_kf:
        for s in seqs:
            work(seq_kf, s)
        threads = [threading.Thread(target=work, args=(par_kf, s)) for s in seqs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in seqs:
            assert par_kf.save_state(s) == seq_kf.save_state(s)


def test_schedule_reads_less_and_evicts_in_batches():
    """Layer 1 only, every 2nd generated token, eviction slack 4: the toy engine shows only what
    keyformer_wants_attention asks for, and the sequence grows to budget + 4 before each eviction."""
    rng = np.random.default_rng(3)
    with keyformer_context(observe_layers=[1], observe_decode_stride=2, evict_slack=4) as kf:
        eng = ToyEngine(kf, 0, N_LAYER, N_HEAD, rng)
        eng.decode(PROMPT)
        eng.evict()
        assert kf.seq_length(0) == BUDGET, "the prompt is brought to the budget whatever the slack"
        lengths = []
        for _ in range(12):
            eng.decode(1)
            eng.evict()
            lengths.append(kf.seq_length(0))
        assert lengths == [BUDGET + 1, BUDGET + 2, BUDGET + 3, BUDGET] * 3
        assert eng.observed == [(1, PROMPT)] + [(1, 1)] * 6
    with keyformer_context(policy="streaming") as kf:
        eng = ToyEngine(kf, 0, N_LAYER, N_HEAD, rng)
        eng.decode(PROMPT)
        assert eng.observed == [] and not kf.wants_attention(0, 0, PROMPT)


def test_prompt_rows_reads_the_last_rows():
    """observe_prompt_rows=4: a chunk of 16 rows scores as its last 4 rows alone would, and its
    first rows are never read (NaN there is no error)."""
    rng = np.random.default_rng(5)
    att = softmax_rows(rng.standard_normal((N_HEAD, 16, 16)).astype(np.float32))
    tail = np.ascontiguousarray(att[:, 12:, :])
    att[:, :12, :] = np.nan
    cells = np.arange(16, dtype=np.int32)
    plans = []
    for rows, a in ((4, att), (0, tail)):
        with keyformer_context("h2o", budget=6, window=2, observe_prompt_rows=rows) as kf:
            assert kf.params["observe_prompt_rows"] == rows
            kf.add_cells(0, cells, cells)
            kf.observe(0, 0, a)
            plans.append(sorted(kf.plan(0)["cell"].tolist()))
    assert plans[0] == plans[1] and len(plans[0]) == 10
    with keyformer_context("h2o", budget=6, window=2) as kf:
        kf.add_cells(0, cells, cells)
        with pytest.raises(keyformer.InvalidAttention):
            kf.observe(0, 0, att)


def test_keydiff_keeps_the_token_whose_key_points_elsewhere():
    rng = np.random.default_rng(3)
    keys = 0.05 * rng.standard_normal((16, N_HEAD_KV, 8)).astype(np.float32)
    keys[:, :, 0] += 3
    keys[6, :, 0] -= 3
    keys[6, :, 1] += 3  # token 6's keys point elsewhere in every head
    with keyformer_context("keydiff", budget=8, window=2) as kf:
        cells = np.arange(16, dtype=np.int32)
        kf.add_cells(0, cells, cells)
        assert kf.wants_attention(0, 1, 16)
        kf.observe_keys(0, 1, keys)
        kf.observe_keys(0, 0, keys[:, :, :][::1])  # any layer the schedule reads
        ev = kf.plan(0)
        assert len(ev) == 8 and 6 not in ev["cell"].tolist()
        kf.forget(0, ev)
        with pytest.raises(keyformer.InvalidAttention):
            kf.observe_keys(0, 1, np.full((2, N_HEAD_KV, 8), np.nan, np.float32))
        with pytest.raises(keyformer.InvalidArgument, match="KV heads"):
            kf.observe_keys(0, 1, keys[:2].repeat(2, axis=1))
        with pytest.raises(ValueError):
            kf.observe_keys(0, 1, keys[0])
        with pytest.raises(TypeError):
            kf.observe_keys(0, 1, keys.astype(np.float64))
    with keyformer_context("h2o") as kf:
        kf.add_cells(0, np.arange(2, dtype=np.int32), np.arange(2, dtype=np.int32))
        with pytest.raises(keyformer.InvalidArgument, match="reads no keys"):
            kf.observe_keys(0, 0, keys[:2])


def test_ranking_options():
    # Span keeps a key token's neighbours; keep_sinks the first tokens; mean attention is
    # refused for keydiff, which reads no attention.
    row = np.zeros((N_HEAD, 1, 12), np.float32)
    row[:, 0, :] = [0.0, 0.1, 0.05, 0.4, 0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0, 0]
    cells = np.arange(12, dtype=np.int32)
    kept = {}
    for name, kw in {"plain": {}, "span": {"span": 1}, "sinks": {"keep_sinks": True, "sinks": 1}}.items():
        with keyformer_context("h2o", budget=6, window=2, **kw) as kf:
            kf.add_cells(0, cells, cells)
            kf.observe(0, 0, row)
            kept[name] = set(range(12)) - set(kf.plan(0)["cell"].tolist())
    assert {2, 3, 4} <= kept["span"] and not {2, 4} <= kept["plain"]
    assert 0 in kept["sinks"] and 0 not in kept["plain"]
    with pytest.raises(keyformer.InvalidArgument, match="rank_mean_attention"):
        keyformer_context("keydiff", mean_attention=True)
    with pytest.raises(keyformer.InvalidArgument, match="rank_span"):
        keyformer_context("h2o", span=-1)
