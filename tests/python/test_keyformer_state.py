"""Saving and restoring a sequence's state."""

import numpy as np
import pytest

import keyformer
from kf_sim import ToyEngine


def make(seed=4, **kw):
    args = dict(n_layer=2, n_head=4, n_head_kv=2, budget=0.5, window=4, seed=seed)
    args.update(kw)
    return keyformer.Context("keyformer", **args)


def test_round_trip_continues_identically():
    with make() as a, make() as b:
        ea = ToyEngine(a, 1, 2, 4, np.random.default_rng(0))
        ea.decode(32)
        ea.evict()
        ea.decode(1)
        state = a.save_state(1)
        assert isinstance(state, bytes) and len(state) > 0

        # Restore into another context (and another sequence id) and continue both the same way.
        b.load_state(9, state)
        assert b.seq_length(9) == a.seq_length(1)
        assert b.save_state(9) == state
        eb = ToyEngine(b, 9, 2, 4, None)
        eb.cell_pos, eb.next_pos = dict(ea.cell_pos), ea.next_pos
        for step in range(6):
            eb.rng = np.random.default_rng(step)
            ea.rng = np.random.default_rng(step)
            assert eb.evict().tolist() == ea.evict().tolist()
            ea.decode(1)
            eb.decode(1)
        assert a.save_state(1) == b.save_state(9)


def test_round_trip_same_context_after_reset():
    with make() as kf:
        eng = ToyEngine(kf, 0, 2, 4, np.random.default_rng(1))
        eng.decode(20)
        state = kf.save_state(0)
        plan = kf.plan(0).tolist()
        kf.seq_reset(0)
        assert kf.seq_length(0) == 0
        kf.load_state(0, bytearray(state))
        assert kf.seq_length(0) == 20
        assert kf.plan(0).tolist() == plan
        kf.load_state(0, memoryview(state))
        assert kf.save_state(0) == state


def test_empty_sequence_state():
    with make() as a, make() as b:
        state = a.save_state(2)
        b.load_state(2, state)
        assert b.seq_length(2) == 0


def test_state_of_other_shape_is_rejected():
    with make() as a, make(n_layer=3) as b:
        ToyEngine(a, 0, 2, 4, np.random.default_rng(1)).decode(8)
        with pytest.raises(keyformer.InvalidState) as e:
            b.load_state(0, a.save_state(0))
        assert e.value.message
    with make() as a, keyformer.Context("h2o", n_layer=2, n_head=4, n_head_kv=2, budget=0.5, window=4) as b:
        ToyEngine(a, 0, 2, 4, np.random.default_rng(1)).decode(8)
        with pytest.raises(keyformer.InvalidState):
            b.load_state(0, a.save_state(0))
