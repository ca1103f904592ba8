"""The Pythonic API: Context, the enums and the eviction dtype."""

import ctypes
import enum
import numbers
import os

import numpy as np

from . import _lib
from ._errors import InvalidHandle, error_for


class Policy(enum.IntEnum):
    """Eviction policies (KEYFORMER_POLICY_*)."""

    FULL = 0  #: never evict (still scores, so observing costs the same)
    KEYFORMER = 1  #: Gumbel-softmax key tokens + recent window
    H2O = 2  #: accumulated attention (heavy hitters) + recent window
    TOVA = 3  #: attention of the newest query only
    STREAMING = 4  #: first ``sinks`` tokens + the most recent ones
    WINDOW = 5  #: the most recent tokens only
    KEYDIFF = 6  #: tokens whose keys differ most from the mean key (reads keys: :meth:`Context.observe_keys`)
    PEAK = 7  #: the largest attention any query paid a token, in any layer


class Granularity(enum.IntEnum):
    """One token set per sequence (SHARED) or one per layer and KV head (PER_HEAD)."""

    SHARED = 0
    PER_HEAD = 1


class Status(enum.IntEnum):
    """Status codes of the C API (KEYFORMER_OK, KEYFORMER_ERR_*)."""

    OK = _lib.OK
    INVALID_ARGUMENT = _lib.ERR_INVALID_ARGUMENT
    INVALID_HANDLE = _lib.ERR_INVALID_HANDLE
    INVALID_ATTENTION = _lib.ERR_INVALID_ATTENTION
    BUFFER_TOO_SMALL = _lib.ERR_BUFFER_TOO_SMALL
    INVALID_STATE = _lib.ERR_INVALID_STATE
    UNSUPPORTED = _lib.ERR_UNSUPPORTED
    INTERNAL = _lib.ERR_INTERNAL


#: The numpy dtype of ``struct keyformer_eviction``: what :meth:`Context.plan` returns and
#: :meth:`Context.forget` takes without conversion. ``layer`` and ``head`` are -1 for whole cells.
EVICTION_DTYPE = np.dtype([("cell", "<i4"), ("layer", "<i4"), ("head", "<i4")])
assert EVICTION_DTYPE.itemsize == ctypes.sizeof(_lib.KeyformerEviction)

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)
_SIZEOF_ATTENTION = ctypes.sizeof(_lib.KeyformerAttention)
_SIZEOF_PARAMS = ctypes.sizeof(_lib.KeyformerParams)
_SIZEOF_KEYS = ctypes.sizeof(_lib.KeyformerKeys)
_LAYOUTS = ("hrc", "rhc")
_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof


def api_version():
    """The API version of the loaded library (equal to :data:`keyformer.API_VERSION`)."""
    return _lib.load().keyformer_api_version()


def version():
    """The loaded library's version string, "MAJOR.MINOR.PATCH"."""
    return _lib.load().version


def library_path():
    """The path (or loader name) of the loaded library."""
    return _lib.load().path


def status_string(status):
    """The library's name for a status code ("ok", "invalid argument", ...)."""
    s = _lib.load().keyformer_status_string(_int32("status", status))
    return s.decode("utf-8", "replace") if s else ""


def llama_eval_callback():
    """The address (an int) of the library's llama.cpp eval callback, ``keyformer_llama_eval_callback``:
    put it in ``llama_context_params.cb_eval`` and :attr:`Context.llama_user_data` in
    ``cb_eval_user_data`` before ``llama_init_from_model``. It runs in C (and Go) on the thread
    that calls ``llama_decode``; Python is not involved."""
    return _lib.load().llama_eval_callback


def _int32(name, v):
    """v as an int in the int32 range (TypeError / ValueError otherwise)."""
    if type(v) is int and _INT32_MIN <= v <= _INT32_MAX:  # the fast path
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s must be an integer, not %s" % (name, type(v).__name__))
    v = int(v)
    if not _INT32_MIN <= v <= _INT32_MAX:
        raise ValueError("%s=%d does not fit in int32" % (name, v))
    return v


def _int32_array(name, values):
    """values (a 1-D sequence or array of integers) as a contiguous int32 ndarray.

    No copy when it already is one; other integer arrays are range-checked and converted.
    """
    a = values if isinstance(values, np.ndarray) else np.asarray(values)
    if a.ndim != 1:
        raise ValueError("%s must be 1-D, got %d dimensions" % (name, a.ndim))
    if a.dtype == _I32:
        return np.ascontiguousarray(a)
    if a.size == 0:
        return np.empty(0, _I32)
    if a.dtype.kind not in "iu":
        raise TypeError("%s must hold integers, got dtype %s" % (name, a.dtype))
    lo, hi = int(a.min()), int(a.max())
    if lo < _INT32_MIN or hi > _INT32_MAX:
        raise ValueError("%s holds values outside the int32 range" % name)
    return np.ascontiguousarray(a, dtype=_I32)


def _size_fields(name, v, allow_zero_fraction):
    """(tokens, fraction) for a size: an int is a token count, a float a fraction."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("%s must be an int (tokens) or a float (fraction), not %s" % (name, type(v).__name__))
    if isinstance(v, numbers.Integral):
        n = _int32(name, v)
        if n < 0:
            raise ValueError("%s must not be negative, got %d" % (name, n))
        return n, 0.0
    f = float(v)
    if f != f or f < 0 or (f == 0 and not allow_zero_fraction):
        raise ValueError("%s: fraction %r out of range" % (name, f))
    return 0, f


def _enum(cls, name, v):
    if isinstance(v, str):
        try:
            return cls[v.upper()]
        except KeyError:
            raise ValueError("unknown %s %r (want one of %s)" % (
                name, v, ", ".join(m.name.lower() for m in cls))) from None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError("%s must be a name or an int, not %s" % (name, type(v).__name__))
    return int(v)  # an unknown number is the library's to reject


class Context:
    """The eviction state of every sequence of one engine context (``keyformer_context``).

    The loop, per sequence: :meth:`add_cells` for a ubatch's new tokens, :meth:`observe` once per
    layer with that ubatch's attention, :meth:`plan` for the cells to free, free them in the engine,
    then :meth:`forget` them. Use it as a context manager, or call :meth:`close`.

    Args:
        policy: "keydiff", "keyformer", "h2o", "tova", "streaming", "window", "peak", "full", or a
            :class:`Policy`. None: the library's default (keydiff, which reads keys:
            :meth:`observe_keys`; the attention policies read :meth:`observe`).
        n_layer: model layers.
        n_head: query heads.
        n_head_kv: KV heads (n_head must be a multiple); default n_head.
        budget: cache budget: a float is a fraction of the prompt in (0, 1], an int a number of
            tokens. Default 0.5.
        window: recent window that is never evicted: a float is a fraction of the budget in
            [0, 1), an int a number of tokens. None: the library's default (0.3).
        sinks: tokens StreamingLLM always keeps. None: the library's default (4).
        tau_init: Gumbel-softmax temperature for the prompt. None: the library's default (1).
        tau_end: temperature at generated token ``new_tokens``. None: the library's default (2).
        new_tokens: planned generation length T. None: the library's default (256).
        noise: Gumbel noise (Keyformer). None: the library's default (on).
        seed: noise seed (a uint64).
        granularity: "shared" (one token set per sequence; whole cells) or "per_head" (one per
            layer and KV head), or a :class:`Granularity`.
        observe_layers: the layers whose attention is read: an int k reads layers 0, k, 2k, ...; a
            sequence of ints lists them. None: the library's default (every layer).
        observe_decode_stride: read the attention of every k-th generated token (prompt chunks
            always). None: the library's default (every one).
        evict_slack: cells a sequence may hold past its budget before a plan brings it back to the
            budget at once. None: the library's default (0).
        observe_prompt_rows: read the attention of a prompt chunk's last k query tokens only
            (less to score per chunk, at some fidelity; 0: every row). None: the library's
            default (0).
        mean_attention: rank a token by the attention per query that saw it instead of the sum
            (attention-reading policies). None: the library's default (off).
        span: rank a token by the best score within this many tokens on either side, so that a
            fact several tokens long is kept whole (0: off). None: the library's default (0).
        keep_sinks: never evict the first ``sinks`` tokens (scoring policies). None: the
            library's default (off).

    Raises:
        KeyformerError: the library rejects the configuration (the message names the field).
        TypeError, ValueError: an argument of the wrong type or out of its C type's range.
        KeyformerLibraryError: the library cannot be found or loaded.

    Calls on different sequences may run concurrently from several threads (ctypes releases the
    GIL during each call); :meth:`close` must not run concurrently with other calls.
    """

    def __init__(self, policy=None, *, n_layer, n_head, n_head_kv=None, budget=0.5, window=None,
                 sinks=None, tau_init=None, tau_end=None, new_tokens=None, noise=None, seed=0,
                 granularity="shared", observe_layers=None, observe_decode_stride=None, evict_slack=None,
                 observe_prompt_rows=None, mean_attention=None, span=None, keep_sinks=None):
        lib = _lib.load()
        self._lib = lib
        self._ctx = None
        self._chain_ref = None
        self._plan_capacity = 64
        p = _lib.KeyformerParams()
        p.size = _SIZEOF_PARAMS
        self._check_global(lib.keyformer_default_params(ctypes.byref(p)), "keyformer_default_params")
        if policy is not None:
            p.policy = _enum(Policy, "policy", policy)
        p.granularity = _enum(Granularity, "granularity", granularity)
        p.n_layer = _int32("n_layer", n_layer)
        p.n_head = _int32("n_head", n_head)
        p.n_head_kv = _int32("n_head_kv", n_head if n_head_kv is None else n_head_kv)
        p.budget_tokens, p.budget_fraction = _size_fields("budget", budget, False)
        if window is not None:
            p.window_tokens, p.window_fraction = _size_fields("window", window, True)
        if sinks is not None:
            p.n_sinks = _int32("sinks", sinks)
        for name, v in (("tau_init", tau_init), ("tau_end", tau_end)):
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise TypeError("%s must be a number, not %s" % (name, type(v).__name__))
                setattr(p, name, float(v))
        if new_tokens is not None:
            p.n_new_tokens = _int32("new_tokens", new_tokens)
        if noise is not None:
            p.noise = 1 if noise else 0
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 1 << 64:
            raise ValueError("seed must be an integer in [0, 2**64), got %r" % (seed,))
        p.seed = int(seed)
        layers = None  # kept alive until keyformer_context_new has copied it
        if isinstance(observe_layers, numbers.Integral) and not isinstance(observe_layers, bool):
            p.observe_layer_stride = _int32("observe_layers", observe_layers)
        elif observe_layers is not None:
            layers = _int32_array("observe_layers", observe_layers)
            p.n_observe_layers = layers.shape[0]
            p.observe_layers = layers.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        if observe_decode_stride is not None:
            p.observe_decode_stride = _int32("observe_decode_stride", observe_decode_stride)
        if evict_slack is not None:
            p.evict_slack = _int32("evict_slack", evict_slack)
        if observe_prompt_rows is not None:
            p.observe_prompt_rows = _int32("observe_prompt_rows", observe_prompt_rows)
        if mean_attention is not None:
            p.rank_mean_attention = 1 if mean_attention else 0
        if span is not None:
            p.rank_span = _int32("span", span)
        if keep_sinks is not None:
            p.rank_keep_sinks = 1 if keep_sinks else 0
        out = ctypes.c_void_p()
        self._check_global(lib.keyformer_context_new(ctypes.byref(p), ctypes.byref(out)), "keyformer_context_new")
        self._ctx = out
        self._params = p
        self._observe_layers = None if layers is None else [int(v) for v in layers]
        p.observe_layers = None
        self._fn_observe = lib.keyformer_observe

    # -- lifetime -------------------------------------------------------------------------------

    def close(self):
        """Frees the context and every sequence state in it. Idempotent; later calls raise
        :class:`InvalidHandle`."""
        ctx, self._ctx = self._ctx, None
        self._chain_ref = None
        if ctx is not None:
            st = self._lib.keyformer_context_free(ctx)
            if st != _lib.OK:
                self._raise(st, "keyformer_context_free", None)

    @property
    def closed(self):
        """True once :meth:`close` has run."""
        return self._ctx is None

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        if self._ctx is None:
            return "<keyformer.Context closed>"
        return "<keyformer.Context policy=%s n_layer=%d n_head=%d n_head_kv=%d>" % (
            Policy(self._params.policy).name.lower(), self._params.n_layer, self._params.n_head,
            self._params.n_head_kv)

    @property
    def params(self):
        """The configuration passed to ``keyformer_context_new`` (defaults filled in), as a dict;
        ``observe_layers`` is the list of layers given, or None."""
        d = {name: getattr(self._params, name) for name, _ in _lib.KeyformerParams._fields_ if name != "size"}
        d["observe_layers"] = self._observe_layers
        return d

    # -- errors ---------------------------------------------------------------------------------

    def _handle(self):
        ctx = self._ctx
        if ctx is None:
            raise InvalidHandle("the context is closed", status=_lib.ERR_INVALID_HANDLE)
        return ctx

    def _raise(self, status, function, ctx):
        msg = self._lib.keyformer_last_error(ctx)
        msg = msg.decode("utf-8", "replace") if msg else ""
        if not msg:
            s = self._lib.keyformer_status_string(status)
            msg = s.decode("utf-8", "replace") if s else "status %d" % status
        raise error_for(status, msg, function)

    def _check_global(self, status, function):
        if status != _lib.OK:
            self._raise(status, function, None)

    # -- the eviction loop ----------------------------------------------------------------------

    def set_prompt_length(self, seq, n):
        """Declares the prompt length of sequence ``seq`` (keyformer_set_prompt_length): the length a
        fractional budget refers to and after which tokens count as generated. Call it before the
        first :meth:`plan`, e.g. when a long prompt is fed in chunks with evictions between."""
        ctx = self._handle()
        st = self._lib.keyformer_set_prompt_length(ctx, _int32("seq", seq), _int32("n", n))
        if st:
            self._raise(st, "keyformer_set_prompt_length", ctx)

    def add_cells(self, seq, cells, positions):
        """Records new tokens of sequence ``seq``: ``cells[i]`` now holds position ``positions[i]``
        (keyformer_add_cells). Both are 1-D integer sequences or arrays of one length. Positions
        must increase and come after every position the sequence holds. Add a ubatch's cells
        before observing its attention."""
        ctx = self._handle()
        seq = _int32("seq", seq)
        c = _int32_array("cells", cells)
        p = _int32_array("positions", positions)
        if c.shape[0] != p.shape[0]:
            raise ValueError("%d cells but %d positions" % (c.shape[0], p.shape[0]))
        st = self._lib.keyformer_add_cells(ctx, seq, c.ctypes.data, p.ctypes.data, c.shape[0])
        if st:
            self._raise(st, "keyformer_add_cells", ctx)

    def wants_attention(self, seq, layer, n_new):
        """Whether the schedule reads ``layer``'s attention for the ubatch that just added ``n_new``
        tokens to sequence ``seq`` (keyformer_wants_attention; call it after :meth:`add_cells`).
        Always False for the streaming and window policies."""
        ctx = self._handle()
        wanted = ctypes.c_int32()
        st = self._lib.keyformer_wants_attention(ctx, _int32("seq", seq), _int32("layer", layer),
                                                 _int32("n_new", n_new), ctypes.byref(wanted))
        if st:
            self._raise(st, "keyformer_wants_attention", ctx)
        return wanted.value == 1

    def observe(self, seq, layer, attention, cells=None, logits=False, layout="hrc"):
        """Scores sequence ``seq``'s cells with ``layer``'s attention for one ubatch
        (keyformer_observe). Call it once per layer per ubatch.

        Args:
            seq: sequence id.
            layer: layer index in [0, n_layer).
            attention: a ``numpy.float32`` array (native byte order), taken without a copy:

                * 3-D, ``layout="hrc"`` (default): shape ``(heads, rows, cols)``, the memory order of
                  llama.cpp's ``kq_soft_max`` tensor (ne = [n_kv, n_tokens, n_head]) read as a C
                  array;
                * 3-D, ``layout="rhc"``: shape ``(rows, heads, cols)``;
                * 2-D: shape ``(heads, cols)``, one query row.

                ``heads`` must equal n_head, ``rows`` are the ubatch's query tokens and ``cols`` the
                KV columns. The last axis must be contiguous; the others may have any non-negative
                stride (e.g. a transposed or sliced view), which is passed to the library in
                elements. Rows hold probabilities (0 = masked or free cell) or, with
                ``logits=True``, pre-softmax logits (-inf = masked).
            cells: None when column j is cell j, else ``cols`` cell ids (int32; -1 = ignore column).
            logits: the rows are logits instead of probabilities.
            layout: "hrc" or "rhc" (see above; ignored for 2-D arrays).

        Raises:
            TypeError: ``attention`` is not a float32 ndarray, or ``cells`` not integers.
            ValueError: wrong number of dimensions, a non-contiguous last axis, negative strides,
                an empty or misaligned array, or ``cells`` of the wrong length.
            InvalidAttention: NaN, +inf or a probability outside [0, 1]; nothing changes.
            InvalidArgument: e.g. heads != n_head, a layer or sequence id out of range.
        """
        ctx = self._ctx
        if ctx is None:
            self._handle()
        if not isinstance(attention, np.ndarray):
            raise TypeError("attention must be a numpy.ndarray of float32, not %s" % type(attention).__name__)
        if attention.dtype != _F32:
            raise TypeError("attention must have dtype float32 (native byte order), got %s; convert with "
                            "numpy.asarray(a, dtype=numpy.float32)" % attention.dtype)
        shape = attention.shape
        strides = attention.strides
        if len(shape) == 3:
            if layout == "hrc":
                heads, rows, cols = shape
                hs, rs, cs = strides
            elif layout == "rhc":
                rows, heads, cols = shape
                rs, hs, cs = strides
            else:
                raise ValueError("layout must be one of %s, got %r" % (_LAYOUTS, layout))
        elif len(shape) == 2:
            if layout not in _LAYOUTS:
                raise ValueError("layout must be one of %s, got %r" % (_LAYOUTS, layout))
            heads, cols = shape
            hs, cs = strides
            rows, rs = 1, 0
        else:
            raise ValueError("attention must be 3-D (heads, rows, cols) or (rows, heads, cols), or 2-D "
                             "(heads, cols); got %d dimensions" % len(shape))
        if attention.size == 0:
            raise ValueError("attention is empty (shape %s)" % (shape,))
        if cs != 4 and cols != 1:
            raise ValueError("the last axis (columns) of attention must be contiguous; got a stride of %d "
                             "bytes (use numpy.ascontiguousarray)" % cs)
        # Strides of length-1 axes are irrelevant (numpy may give them any value).
        if rows == 1:
            rs = 0
        if heads == 1:
            hs = 0
        if rs < 0 or hs < 0 or rs % 4 or hs % 4:
            raise ValueError("attention strides %s must be non-negative multiples of 4 bytes (use "
                             "numpy.ascontiguousarray)" % (strides,))
        if heads > _INT32_MAX or rows > _INT32_MAX or cols > _INT32_MAX:
            raise ValueError("attention shape %s does not fit in int32" % (shape,))
        try:  # the buffer protocol: 3x faster than attention.ctypes.data, for writable C-contiguous arrays
            data = _addressof(_from_buffer(attention))
        except (TypeError, ValueError, BufferError):
            data = attention.ctypes.data
        if data % 4:
            raise ValueError("attention data is not aligned to 4 bytes")
        a = _lib.KeyformerAttention(_SIZEOF_ATTENTION, rows, heads, cols, rs >> 2, hs >> 2, data, None,
                                    1 if logits else 0)
        if cells is not None:
            c = _int32_array("cells", cells)
            if c.shape[0] != cols:
                raise ValueError("attention has %d columns but %d cell ids" % (cols, c.shape[0]))
            a.cells = c.ctypes.data
        st = self._fn_observe(ctx, _int32("seq", seq), _int32("layer", layer), ctypes.byref(a))
        if st:
            self._raise(st, "keyformer_observe", ctx)

    def observe_keys(self, seq, layer, keys):
        """Scores sequence ``seq``'s newest tokens with their keys of ``layer``
        (keyformer_observe_keys; policy ``keydiff`` only). Call it once per layer per ubatch.

        Args:
            seq: sequence id.
            layer: layer index in [0, n_layer).
            keys: a ``numpy.float32`` array of shape ``(rows, heads, head_dim)``: the ubatch's
                ``rows`` newest tokens, ``heads`` = n_head_kv, best before the positional rotation
                (the memory order of llama.cpp's ``Kcur-<layer>`` tensor before its ROPE read as
                a C array; rotated keys make tokens read early look typical). The last
                axis must be contiguous; the others may have any non-negative stride.

        Raises:
            TypeError: ``keys`` is not a float32 ndarray.
            ValueError: not 3-D, empty, a non-contiguous last axis or negative strides.
            InvalidAttention: NaN or infinite keys; nothing changes.
            InvalidArgument: another policy than keydiff, heads != n_head_kv, more rows than the
                sequence holds, a layer or sequence id out of range.
        """
        ctx = self._ctx
        if ctx is None:
            self._handle()
        if not isinstance(keys, np.ndarray) or keys.dtype != _F32:
            raise TypeError("keys must be a numpy.ndarray of float32, not %s" % (getattr(keys, "dtype", type(keys).__name__),))
        if keys.ndim != 3 or keys.size == 0:
            raise ValueError("keys must be a non-empty 3-D array (rows, heads, head_dim); got shape %s" % (keys.shape,))
        rows, heads, dim = keys.shape
        rs, hs, ds = keys.strides
        if ds != 4 and dim != 1:
            raise ValueError("the last axis of keys must be contiguous (use numpy.ascontiguousarray)")
        if rs < 0 or hs < 0 or rs % 4 or hs % 4 or keys.ctypes.data % 4:
            raise ValueError("keys strides %s must be non-negative multiples of 4 bytes" % (keys.strides,))
        if max(rows, heads, dim) > _INT32_MAX:
            raise ValueError("keys shape %s does not fit in int32" % (keys.shape,))
        k = _lib.KeyformerKeys(_SIZEOF_KEYS, rows, heads, dim, rs >> 2, hs >> 2, keys.ctypes.data)
        st = self._lib.keyformer_observe_keys(ctx, _int32("seq", seq), _int32("layer", layer), ctypes.byref(k))
        if st:
            self._raise(st, "keyformer_observe_keys", ctx)

    def plan(self, seq):
        """The evictions that bring sequence ``seq`` back to its budget (keyformer_plan), lowest
        scores first among every token but the recent window.

        Returns:
            A numpy structured array of :data:`EVICTION_DTYPE` (fields ``cell``, ``layer``,
            ``head``; layer = head = -1 for a whole cell), possibly empty. ``plan(seq)["cell"]``
            gives the cells; ``.tolist()`` gives ``(cell, layer, head)`` tuples. Free them in the
            engine, then pass the array to :meth:`forget`.

        Changes no state except resolving a fractional budget on the first call.
        """
        ctx = self._handle()
        seq = _int32("seq", seq)
        n = ctypes.c_int32()
        cap = self._plan_capacity
        for _ in range(16):
            out = np.empty(cap, EVICTION_DTYPE)
            st = self._lib.keyformer_plan(ctx, seq, out.ctypes.data, cap, ctypes.byref(n))
            if st == _lib.ERR_BUFFER_TOO_SMALL and n.value > cap:
                cap = n.value  # grew: retry with the size the library asked for
                continue
            if st:
                self._raise(st, "keyformer_plan", ctx)
            self._plan_capacity = max(64, n.value)
            return out[:n.value]
        self._raise(_lib.ERR_BUFFER_TOO_SMALL, "keyformer_plan", ctx)

    def forget(self, seq, evictions):
        """Removes freed cells (or per-head entries) from sequence ``seq`` (keyformer_forget).

        Args:
            evictions: what :meth:`plan` returned, or any iterable of cell ids (whole cells) and/or
                ``(cell, layer, head)`` triples, or an (n, 3) integer array. Also use it when the
                engine removes cells of its own accord.

        Every eviction is checked first: on an error nothing changes.
        """
        ctx = self._handle()
        seq = _int32("seq", seq)
        ev = _evictions_array(evictions)
        st = self._lib.keyformer_forget(ctx, seq, ev.ctypes.data, ev.shape[0])
        if st:
            self._raise(st, "keyformer_forget", ctx)

    def seq_length(self, seq):
        """The number of tokens sequence ``seq`` holds (0 for a sequence never used)."""
        ctx = self._handle()
        n = ctypes.c_int32()
        st = self._lib.keyformer_seq_length(ctx, _int32("seq", seq), ctypes.byref(n))
        if st:
            self._raise(st, "keyformer_seq_length", ctx)
        return n.value

    def seq_reset(self, seq):
        """Forgets sequence ``seq`` entirely (cells, scores and noise stream restart)."""
        ctx = self._handle()
        st = self._lib.keyformer_seq_reset(ctx, _int32("seq", seq))
        if st:
            self._raise(st, "keyformer_seq_reset", ctx)

    def save_state(self, seq):
        """Sequence ``seq``'s state (cells, positions, scores, counters, noise stream) as bytes for
        :meth:`load_state`."""
        ctx = self._handle()
        seq = _int32("seq", seq)
        size = ctypes.c_size_t()
        st = self._lib.keyformer_state_size(ctx, seq, ctypes.byref(size))
        if st:
            self._raise(st, "keyformer_state_size", ctx)
        written = ctypes.c_size_t()
        cap = size.value
        for _ in range(16):
            buf = ctypes.create_string_buffer(max(cap, 1))
            st = self._lib.keyformer_state_save(ctx, seq, ctypes.addressof(buf), cap, ctypes.byref(written))
            if st == _lib.ERR_BUFFER_TOO_SMALL and written.value > cap:
                cap = written.value  # the state grew in between (another thread): retry
                continue
            if st:
                self._raise(st, "keyformer_state_save", ctx)
            return buf.raw[:written.value]
        self._raise(_lib.ERR_BUFFER_TOO_SMALL, "keyformer_state_save", ctx)

    # -- llama.cpp -------------------------------------------------------------------------------

    @property
    def llama_eval_callback(self):
        """The address of ``keyformer_llama_eval_callback`` (see the module function of that name)."""
        return self._lib.llama_eval_callback

    @property
    def llama_user_data(self):
        """The value for ``llama_context_params.cb_eval_user_data``: this context's handle (an int)."""
        return self._handle().value

    def llama_attach(self, lctx, llama_library=None):
        """Binds this context to the llama.cpp context ``lctx`` (an address: int, c_void_p or a
        ctypes pointer), created with :attr:`llama_eval_callback` and :attr:`llama_user_data`
        (keyformer_llama_attach). The llama.cpp functions are looked up in the process:

        * ``llama_library=None``: the global scope, then the libllama/libggml objects the process
          has loaded (re-opened with RTLD_NOLOAD). This finds a libllama that ctypes loaded (ctypes
          uses RTLD_LOCAL).
        * a path (str, bytes or os.PathLike): the library loaded from that path, re-opened with
          RTLD_NOLOAD (never loaded a second time). Pass the path given to ``ctypes.CDLL``: a bare
          file name only matches the library's SONAME (``libllama.vX.Y.Z.so`` in the pinned build).

        Needs shared granularity and a context with flash attention disabled.
        """
        ctx = self._handle()
        addr = _address("lctx", lctx)
        name = None
        if llama_library is not None:
            name = os.fsencode(llama_library)
        st = self._lib.keyformer_llama_attach(ctx, addr, name)
        if st:
            self._raise(st, "keyformer_llama_attach", ctx)

    def llama_chain(self, callback, user_data=None):
        """Chains the host's own eval callback behind keyformer's (keyformer_llama_chain); None
        removes it.

        Args:
            callback: a :data:`keyformer.EVAL_CALLBACK` (``ctypes.CFUNCTYPE(c_bool, c_void_p,
                c_bool, c_void_p)``) instance or a C function address. It is asked about every
                graph node (~1100 per decode: a Python callback costs about a microsecond each), and
                gets ``ask=False`` only for tensors it asked for. The context keeps a reference to
                a ctypes callback object until it is replaced or the context is closed.
            user_data: its user_data (an address or None).
        """
        ctx = self._handle()
        addr = _address("callback", callback)
        st = self._lib.keyformer_llama_chain(ctx, addr, _address("user_data", user_data))
        if st:
            self._raise(st, "keyformer_llama_chain", ctx)
        self._chain_ref = callback if addr else None

    def llama_set_batch(self, seq_of_token):
        """Declares the sequence of each token of the next ``llama_decode`` (keyformer_llama_set_batch);
        an empty sequence clears the declaration (every token then belongs to sequence 0)."""
        ctx = self._handle()
        a = _int32_array("seq_of_token", seq_of_token)
        st = self._lib.keyformer_llama_set_batch(ctx, a.ctypes.data if a.shape[0] else None, a.shape[0])
        if st:
            self._raise(st, "keyformer_llama_set_batch", ctx)

    def llama_apply(self, seq=0):
        """After every successful ``llama_decode``: frees the cells sequence ``seq`` must lose to stay
        within its budget (keyformer_llama_apply) and returns their number.

        Raises:
            Unsupported: flash attention is on (no attention matrix), or the model's memory cannot
                remove single positions.
            InvalidArgument: not attached, or the eval callback never saw this context.
            InternalError: a bug met inside the eval callback (the context is then detached).
        """
        ctx = self._handle()
        n = ctypes.c_int32()
        st = self._lib.keyformer_llama_apply(ctx, _int32("seq", seq), ctypes.byref(n))
        if st:
            self._raise(st, "keyformer_llama_apply", ctx)
        return n.value

    def llama_restore(self, seq, data):
        """Restores sequence ``seq``'s state (:meth:`save_state`, saved with llama.cpp's
        ``llama_state_seq_get_data``) right after the host restored llama.cpp's state of the sequence
        with ``llama_state_seq_set_data`` (keyformer_llama_restore)."""
        ctx = self._handle()
        seq = _int32("seq", seq)
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise TypeError("state data must be bytes-like, not %s" % type(data).__name__)
        st = self._lib.keyformer_llama_restore(ctx, seq, data, len(data))
        if st:
            self._raise(st, "keyformer_llama_restore", ctx)

    def _llama_edit(self, function, **args):
        """Calls the cache-edit mirror ``function`` with the int32 arguments ``args`` (in order)."""
        ctx = self._handle()
        values = [_int32(name, v) for name, v in args.items()]
        st = getattr(self._lib, function)(ctx, *values)
        if st:
            self._raise(st, function, ctx)

    # The mirrors of a host's own llama.cpp cache edits: call each right after the llama.cpp call it
    # follows, with the same arguments (p0 < 0 means 0, p1 < 0 means no end). They raise
    # InvalidArgument when the context is not attached or for a bad sequence id, and change nothing
    # then. A sequence an edit leaves empty starts over as a new one.

    def llama_seq_rm(self, seq, p0=-1, p1=-1):
        """After ``llama_memory_seq_rm(mem, seq, p0, p1)`` returned true: forgets the tokens of
        ``seq`` (of every sequence when ``seq < 0``) at positions [p0, p1) (keyformer_llama_seq_rm)."""
        self._llama_edit("keyformer_llama_seq_rm", seq=seq, p0=p0, p1=p1)

    def llama_seq_add(self, seq, p0, p1, delta):
        """After ``llama_memory_seq_add(mem, seq, p0, p1, delta)``: the positions of ``seq`` in
        [p0, p1) move by ``delta``; a token shifted below 0 is forgotten, as llama.cpp frees its
        cell, and a cell shared with other sequences moves in all of them (keyformer_llama_seq_add).

        Raises:
            Unsupported: the shift gives two tokens of a sequence one position (nothing changes).
        """
        self._llama_edit("keyformer_llama_seq_add", seq=seq, p0=p0, p1=p1, delta=delta)

    def llama_seq_cp(self, src, dst, p0=-1, p1=-1):
        """After ``llama_memory_seq_cp(mem, src, dst, p0, p1)``: ``dst`` also holds ``src``'s
        tokens in [p0, p1), the same cells, with a copy of their scores; each sequence then evicts
        them on its own, a cell freed by one staying for the other (keyformer_llama_seq_cp).

        Raises:
            Unsupported: ``dst`` holds a copied position in another cell (nothing changes).
        """
        self._llama_edit("keyformer_llama_seq_cp", src=src, dst=dst, p0=p0, p1=p1)

    def llama_seq_keep(self, seq):
        """After ``llama_memory_seq_keep(mem, seq)``: every other sequence forgets everything
        (keyformer_llama_seq_keep)."""
        self._llama_edit("keyformer_llama_seq_keep", seq=seq)

    def llama_clear(self):
        """After ``llama_memory_clear(mem, data)``: every sequence forgets everything
        (keyformer_llama_clear)."""
        self._llama_edit("keyformer_llama_clear")

    def llama_sync(self, seq=-1):
        """Resynchronises sequence ``seq`` (every sequence holding tokens when ``seq < 0``) with
        llama.cpp after a failed ``llama_decode`` (call it instead of :meth:`llama_apply`), or an
        unmirrored edit that removed a head or a tail: forgets the tokens outside llama.cpp's
        [pos_min, pos_max] and drops the state kept from the decode (keyformer_llama_sync). It sees
        only those two positions: holes, shifts and copies must be mirrored with the methods above.
        """
        self._llama_edit("keyformer_llama_sync", seq=seq)

    def load_state(self, seq, data):
        """Replaces sequence ``seq``'s state with ``data`` from :meth:`save_state` of a context with
        the same policy, granularity and model shape.

        Raises:
            TypeError: ``data`` is not bytes-like.
            InvalidState: malformed or mismatched data; nothing changes.
        """
        ctx = self._handle()
        seq = _int32("seq", seq)
        if isinstance(data, bytes):
            b = data
        elif isinstance(data, (bytearray, memoryview)):
            b = bytes(data)
        else:
            raise TypeError("state data must be bytes-like, not %s" % type(data).__name__)
        st = self._lib.keyformer_state_load(ctx, seq, b, len(b))
        if st:
            self._raise(st, "keyformer_state_load", ctx)


def _address(name, v):
    """v (an int address, a ctypes pointer or c_void_p, or None) as an int address or None."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise TypeError("%s must be an address, not bool" % name)
    if isinstance(v, numbers.Integral):
        return int(v) or None
    if isinstance(v, ctypes.c_void_p):
        return v.value
    if isinstance(v, (ctypes._Pointer, ctypes._CFuncPtr)):
        return ctypes.cast(v, ctypes.c_void_p).value
    raise TypeError("%s must be an address (int), a ctypes pointer or function, or None, not %s" % (
        name, type(v).__name__))


def _evictions_array(evictions):
    """evictions as a contiguous EVICTION_DTYPE array (no copy when it already is one)."""
    if isinstance(evictions, np.ndarray):
        a = evictions
        if a.dtype.names is not None:
            if a.dtype.names != EVICTION_DTYPE.names:
                raise TypeError("evictions must have fields %s, got %s" % (EVICTION_DTYPE.names, a.dtype.names))
            if a.ndim != 1:
                raise ValueError("evictions must be 1-D, got %d dimensions" % a.ndim)
            if a.dtype == EVICTION_DTYPE:
                return np.ascontiguousarray(a)
            cols = [_int32_array(n, a[n]) for n in EVICTION_DTYPE.names]
            out = np.empty(a.shape[0], EVICTION_DTYPE)
            for n, c in zip(EVICTION_DTYPE.names, cols):
                out[n] = c
            return out
        if a.ndim == 1:
            out = np.empty(a.shape[0], EVICTION_DTYPE)
            out["cell"] = _int32_array("evictions", a)
            out["layer"] = -1
            out["head"] = -1
            return out
        if a.ndim == 2 and a.shape[1] == 3:
            flat = _int32_array("evictions", a.reshape(-1))
            return flat.reshape(-1, 3).copy().view(EVICTION_DTYPE).reshape(-1)
        raise ValueError("an evictions array must be 1-D (cells or EVICTION_DTYPE) or (n, 3), got shape %s" % (a.shape,))
    if isinstance(evictions, (str, bytes)):
        raise TypeError("evictions must be cells or (cell, layer, head) triples")
    rows = []
    for e in evictions:
        if isinstance(e, (tuple, list)) or (isinstance(e, np.ndarray) and e.ndim == 1) or isinstance(e, np.void):
            t = tuple(e)
            if len(t) != 3:
                raise ValueError("an eviction triple must be (cell, layer, head), got %r" % (e,))
            rows.append((_int32("cell", t[0]), _int32("layer", t[1]), _int32("head", t[2])))
        else:
            rows.append((_int32("cell", e), -1, -1))
    return np.array(rows, dtype=EVICTION_DTYPE) if rows else np.empty(0, EVICTION_DTYPE)
