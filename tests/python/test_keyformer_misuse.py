"""Misuse: invalid attention, ids, shapes, state bytes, configuration, and use after close."""

import ctypes

import numpy as np
import pytest

import keyformer
from kf_sim import ToyEngine


def ctx(policy="keyformer", **kw):
    args = dict(n_layer=2, n_head=4, n_head_kv=2, budget=8, window=2, evict_slack=0)
    args.update(kw)
    return keyformer.Context(policy, **args)


def row(n=6, heads=4, rows=1):
    return np.full((heads, rows, n), 1.0 / n, dtype=np.float32)


@pytest.fixture
def kf():
    with ctx() as k:
        eng = ToyEngine(k, 0, 2, 4, np.random.default_rng(0))
        eng.decode(12)
        yield k


# -- invalid attention values: InvalidAttention, a message, and no change ----------------------

# Any finite logit is valid; -inf is a masked logit but a NaN or +inf is not.
@pytest.mark.parametrize("bad, logits", [(np.nan, False), (np.inf, False), (-0.5, False), (1.5, False),
                                         (-np.inf, False), (np.nan, True), (np.inf, True)])
def test_invalid_attention_changes_nothing(kf, bad, logits):
    before = kf.save_state(0)
    a = row(12)
    a[2, 0, 5] = bad
    with pytest.raises(keyformer.InvalidAttention) as e:
        kf.observe(0, 1, a, logits=logits)
    err = e.value
    assert isinstance(err, keyformer.KeyformerError)
    assert err.status == keyformer.Status.INVALID_ATTENTION
    assert err.function == "keyformer_observe"
    assert err.message and err.message in str(err)
    assert kf.save_state(0) == before
    kf.observe(0, 1, row(12))  # still usable
    assert kf.save_state(0) != before


def test_minus_inf_logits_are_masked(kf):
    a = row(12)
    a[:, :, 3] = -np.inf
    kf.observe(0, 0, a, logits=True)


# -- sequence ids, layers, cells ---------------------------------------------------------------

@pytest.mark.parametrize("seq", [-1, 65536])
def test_bad_sequence_ids(kf, seq):
    calls = [
        lambda: kf.add_cells(seq, [0], [0]),
        lambda: kf.observe(seq, 0, row()),
        lambda: kf.plan(seq),
        lambda: kf.forget(seq, [0]),
        lambda: kf.seq_length(seq),
        lambda: kf.seq_reset(seq),
        lambda: kf.set_prompt_length(seq, 4),
        lambda: kf.save_state(seq),
        lambda: kf.load_state(seq, kf.save_state(0)),
    ]
    for call in calls:
        with pytest.raises(keyformer.InvalidArgument) as e:
            call()
        assert e.value.message


def test_sequence_id_beyond_int32(kf):
    with pytest.raises(ValueError):
        kf.seq_length(1 << 40)
    with pytest.raises(TypeError):
        kf.seq_length(1.0)
    with pytest.raises(TypeError):
        kf.seq_length(None)


def test_bad_layer(kf):
    for layer in (-1, 2):
        with pytest.raises(keyformer.InvalidArgument):
            kf.observe(0, layer, row(12))


def test_add_cells_errors(kf):
    before = kf.save_state(0)
    with pytest.raises(ValueError):
        kf.add_cells(0, [20, 21], [20])
    with pytest.raises(keyformer.InvalidArgument):
        kf.add_cells(0, [20], [5])  # position does not come after the sequence's last
    with pytest.raises(keyformer.InvalidArgument):
        kf.add_cells(0, [3], [20])  # cell already held
    with pytest.raises(keyformer.InvalidArgument):
        kf.add_cells(0, [20, 20], [20, 21])  # twice
    with pytest.raises(keyformer.InvalidArgument):
        kf.add_cells(0, [-2], [20])
    with pytest.raises(TypeError):
        kf.add_cells(0, [0.5], [20])
    with pytest.raises(ValueError):
        kf.add_cells(0, [1 << 33], [20])
    with pytest.raises(ValueError):
        kf.add_cells(0, [[20]], [[20]])
    assert kf.save_state(0) == before


def test_forget_errors_change_nothing(kf):
    before = kf.save_state(0)
    with pytest.raises(keyformer.InvalidArgument):
        kf.forget(0, [0, 99])  # 99 is not held: nothing is removed, not even 0
    with pytest.raises(keyformer.InvalidArgument):
        kf.forget(0, [1, 1])
    with pytest.raises(keyformer.InvalidArgument):
        kf.forget(0, [(1, 0, 0)])  # per-head entry in shared granularity
    with pytest.raises(ValueError):
        kf.forget(0, [(1, 0)])
    with pytest.raises(TypeError):
        kf.forget(0, "01")
    assert kf.save_state(0) == before
    kf.forget(0, [])
    assert kf.seq_length(0) == 12


# -- shapes, dtypes, strides: Python-side errors before any library call ------------------------

def test_wrong_dtype(kf):
    with pytest.raises(TypeError):
        kf.observe(0, 0, row(12).astype(np.float64))
    with pytest.raises(TypeError):
        kf.observe(0, 0, row(12).astype(np.float16))
    with pytest.raises(TypeError):
        kf.observe(0, 0, row(12).astype(">f4"))
    with pytest.raises(TypeError):
        kf.observe(0, 0, row(12).tolist())


def test_wrong_ndim(kf):
    with pytest.raises(ValueError):
        kf.observe(0, 0, np.full(12, 1 / 12, dtype=np.float32))
    with pytest.raises(ValueError):
        kf.observe(0, 0, row(12)[None])
    with pytest.raises(ValueError):
        kf.observe(0, 0, np.array(1.0, dtype=np.float32))


def test_wrong_shapes(kf):
    before = kf.save_state(0)
    with pytest.raises(keyformer.InvalidArgument) as e:
        kf.observe(0, 0, row(12, heads=3))  # heads != n_head
    assert "head" in e.value.message
    with pytest.raises(ValueError):
        kf.observe(0, 0, row(12), cells=[0, 1, 2])  # cell ids != columns
    with pytest.raises(ValueError):
        kf.observe(0, 0, np.zeros((4, 0, 12), dtype=np.float32))
    with pytest.raises(ValueError):
        kf.observe(0, 0, row(12), layout="chr")
    assert kf.save_state(0) == before


def test_non_contiguous_last_axis(kf):
    wide = np.full((4, 1, 24), 1 / 12, dtype=np.float32)
    with pytest.raises(ValueError, match="contiguous"):
        kf.observe(0, 0, wide[:, :, ::2])
    with pytest.raises(ValueError, match="contiguous"):
        kf.observe(0, 0, np.full((12, 1, 4), 1 / 12, dtype=np.float32).transpose(2, 1, 0))
    with pytest.raises(ValueError):
        kf.observe(0, 0, row(12)[::-1])  # negative head stride


def test_misaligned(kf):
    raw = np.zeros(4 * 12 * 4 + 1, dtype=np.uint8)
    a = raw[1:].view(np.float32).reshape(4, 1, 12)
    a[...] = 1 / 12
    with pytest.raises(ValueError, match="aligned"):
        kf.observe(0, 0, a)


# -- state bytes ------------------------------------------------------------------------------

def test_bad_state_bytes(kf):
    good = kf.save_state(0)
    before = good
    flipped = bytearray(good)
    flipped[0] ^= 0xFF
    bad_inputs = [b"", b"KFSQ", b"garbage" * 10, good[:len(good) // 2], good[:-1], good + b"\0", bytes(flipped),
                  np.random.default_rng(0).bytes(len(good))]
    for data in bad_inputs:
        with pytest.raises(keyformer.InvalidState) as e:
            kf.load_state(0, data)
        assert e.value.message
        assert kf.save_state(0) == before
    with pytest.raises(TypeError):
        kf.load_state(0, "not bytes")


# -- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [
    dict(n_head_kv=3),
    dict(n_layer=0),
    dict(n_head=0),
    dict(budget=1.5),
    dict(budget=0),
    dict(budget=4, window=4),
    dict(window=1.0),
    dict(tau_init=0.0),
    dict(new_tokens=0),
    dict(policy=17),
    dict(granularity=5),
    dict(policy="window", granularity="per_head"),
    dict(observe_layers=-1),
    dict(observe_layers=[0, 0]),
    dict(observe_layers=[2]),
    dict(observe_decode_stride=-1),
    dict(evict_slack=-4),
    dict(observe_prompt_rows=-1),
])
def test_invalid_configuration(kw):
    with pytest.raises(keyformer.InvalidArgument) as e:
        ctx(**kw)
    assert e.value.message
    assert e.value.function == "keyformer_context_new"


@pytest.mark.parametrize("kw, exc", [
    (dict(policy="nope"), ValueError),
    (dict(granularity="sometimes"), ValueError),
    (dict(budget="half"), TypeError),
    (dict(budget=True), TypeError),
    (dict(budget=-0.5), ValueError),
    (dict(seed=-1), ValueError),
    (dict(n_layer=1.5), TypeError),
    (dict(observe_layers=[[0]]), ValueError),
    (dict(evict_slack=2.5), TypeError),
])
def test_invalid_configuration_python_side(kw, exc):
    with pytest.raises(exc):
        ctx(**kw)


def test_defaults_and_params():
    with keyformer.Context(n_layer=2, n_head=4) as k:
        p = k.params
        assert p["policy"] == keyformer.Policy.KEYDIFF
        assert p["n_head_kv"] == 4
        assert p["budget_fraction"] == pytest.approx(0.5)
        assert p["noise"] == 1
        assert (p["observe_layer_stride"], p["observe_layers"], p["observe_decode_stride"], p["evict_slack"]) == (
            2, None, 8, 16)
        assert p["observe_prompt_rows"] == 0
        assert "keyformer" in repr(k)


# -- lifetime ---------------------------------------------------------------------------------

def test_use_after_close():
    k = ctx()
    k.add_cells(0, [0], [0])
    state = k.save_state(0)
    k.close()
    assert k.closed
    k.close()  # idempotent
    calls = [
        lambda: k.add_cells(0, [1], [1]),
        lambda: k.observe(0, 0, row(2)),
        lambda: k.plan(0),
        lambda: k.forget(0, [0]),
        lambda: k.seq_length(0),
        lambda: k.seq_reset(0),
        lambda: k.set_prompt_length(0, 4),
        lambda: k.save_state(0),
        lambda: k.load_state(0, state),
    ]
    for call in calls:
        with pytest.raises(keyformer.InvalidHandle):
            call()
    assert "closed" in repr(k)


def test_context_manager_closes():
    with ctx() as k:
        pass
    assert k.closed
    with pytest.raises(keyformer.InvalidHandle):
        k.seq_length(0)


def test_freed_handle_in_the_c_api():
    """The header's contract: a freed context is an unknown handle (an error, not a crash)."""
    lib = keyformer.load_library()
    k = ctx()
    raw = ctypes.c_void_p(k._ctx.value)
    k.close()
    n = ctypes.c_int32()
    assert lib.keyformer_seq_length(raw, 0, ctypes.byref(n)) == keyformer.Status.INVALID_HANDLE
    assert lib.keyformer_last_error(None)


# -- the C API's buffer protocol --------------------------------------------------------------

def test_plan_larger_than_the_first_buffer():
    with keyformer.Context("h2o", n_layer=1, n_head=1, budget=10, window=2, evict_slack=0) as k:
        n = 300
        k.add_cells(0, range(n), range(n))
        k.observe(0, 0, np.full((1, 1, n), 1.0 / n, dtype=np.float32))
        ev = k.plan(0)
        assert len(ev) == n - 10
        k.forget(0, ev)
        assert k.seq_length(0) == 10


def test_plan_buffer_too_small_in_the_c_api(kf):
    lib = keyformer.load_library()
    kf.plan(0)  # resolves the budget
    kf.add_cells(0, [12, 13, 14], [12, 13, 14])
    need = ctypes.c_int32()
    one = (keyformer._lib.KeyformerEviction * 1)()
    st = lib.keyformer_plan(kf._ctx, 0, ctypes.addressof(one), 0, ctypes.byref(need))
    assert st == keyformer.Status.BUFFER_TOO_SMALL
    assert need.value == len(kf.plan(0)) > 0


def test_status_strings():
    assert keyformer.status_string(0)
    names = {keyformer.status_string(s) for s in keyformer.Status}
    assert len(names) == len(keyformer.Status)
