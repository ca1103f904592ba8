"""Keyformer for llama-cpp-python: a bounded KV cache by changing one line.

Instead of ``from llama_cpp import Llama``::

    from keyformer.llama_cpp import Llama

    llm = Llama(model_path="model.gguf", n_ctx=8192, keyformer_budget=1024)
    llm.create_chat_completion(messages=[{"role": "user", "content": "..."}])

Or, for code that constructs ``llama_cpp.Llama`` itself, before it does::

    import keyformer.llama_cpp
    keyformer.llama_cpp.enable(budget=1024)
    llm = llama_cpp.Llama(model_path="model.gguf", n_ctx=8192)
    keyformer.llama_cpp.session(llm)     # its Session: cells, evictions

What changes:

* ``n_ctx`` keeps its meaning for llama-cpp-python: the longest history (prompt and answers, in
  positions) a ``Llama`` accepts; ``llm.n_ctx()`` and llama-cpp-python's own length checks see it.
  The llama.cpp context underneath holds only ``budget + n_batch + evict slack`` cells: each
  ``llama_decode`` (at most ``n_batch`` tokens) lands next to the kept ``budget`` cells, and after
  it keyformer frees the cells its policy drops (positions are kept, so the model still sees where
  each kept token was). ``llm.keyformer`` (a :class:`Session`) reports the cells and evictions.
  A context of several sequences (``n_seq_max`` above 1) holds that much for each of them: in
  one KV stream per sequence (llama.cpp's default for several sequences: each stream rounded up
  to a multiple of 256 cells, and a token attends to its own stream only), or in one unified
  cache where the host asked for ``kv_unified``.
* ``keyformer_budget``: the cells kept per sequence, an int; a float in (0, 1] is a fraction of
  ``n_ctx``. Default 0.5. ``keyformer_policy``: "keydiff" (the library's default), "keyformer",
  "h2o", "tova", "peak", "streaming", "window" or "full". Any other ``keyformer_<name>=`` is passed to :class:`keyformer.Context` as
  ``<name>=`` (``keyformer_window=64``, ``keyformer_observe_layers=1``, ...).
* The eval callback is keyformer's (a ``cb_eval`` you set is chained behind it). For the policies
  that read the attention matrix (keyformer, h2o, tova, full) flash attention is turned off;
  keydiff reads keys, and leaves flash attention and quantized caches (``type_k``, ``type_v``) as
  they are.
* llama-cpp-python's own cache edits (prefix reuse, regeneration: ``llama_memory_seq_rm``, and
  ``seq_add``, ``seq_cp``, ``seq_keep``, ``clear``) are mirrored into keyformer. llama.cpp needs a
  sequence's positions to continue from the last one it holds: when a truncation leaves the last
  kept position below the new start (that token was evicted), the kept tokens are moved up to close
  the gap (``llama_memory_seq_add``), as if the evicted tail had never been there.
* A failed ``llama_decode`` resyncs keyformer with what llama.cpp rolled back.
* Whole-context state restores (``Llama.load_state``, ``llama_state_set_data``, state files) raise
  :class:`keyformer.Unsupported`: keyformer's scores are not part of llama.cpp's state.

How: llama-cpp-python looks its ``llama_cpp.llama_cpp`` functions up at call time, so this module
wraps ``llama_init_from_model``, ``llama_decode``, ``llama_n_ctx``, ``llama_free``, the
``llama_memory_*`` edits and the state loaders there (once, on first use); contexts created without
keyformer pass straight through. It needs the llama-cpp-python package (``pip install
llama-cpp-python``); a model with a plain KV cache (not sliding-window, recurrent or hybrid).
"""

import ctypes
import numbers
import threading

import llama_cpp
import llama_cpp.llama_cpp as _llama

from ._context import Context, Policy, _enum
from ._errors import Unsupported

__all__ = ["Llama", "Session", "enable", "disable", "session"]

_PREFIX = "keyformer_"


class Session:
    """Keyformer's side of one llama.cpp context created by llama-cpp-python.

    Attributes:
        context: the :class:`keyformer.Context` attached to it.
        n_ctx: the length llama-cpp-python sees (``llama_n_ctx``).
        n_cells: the cells of the llama.cpp context underneath.
        stream_cells: the cells of each sequence's stream where the context keeps one stream per
            sequence (``llama_n_ctx_seq``), 0 where its cache is unified.
        budget: the cells kept per sequence.
        evicted: cells freed so far.
        peak_cells: the most cells any sequence held (after a decode, before its evictions).
        decodes: successful ``llama_decode`` calls.
        gaps_closed: truncations whose last kept position had been evicted, so that the kept
            tokens were moved up to continue at the new start.
    """

    def __init__(self, context, n_ctx, n_cells, stream_cells, budget, chained):
        self.context = context
        self.n_ctx = n_ctx
        self.n_cells = n_cells
        self.stream_cells = stream_cells
        self.budget = budget
        self.evicted = 0
        self.peak_cells = 0
        self.decodes = 0
        self.gaps_closed = 0
        self._chained = chained  # the host's cb_eval, kept alive while the context lives
        self._seqs = set()  # the sequences decoded so far
        self._lock = threading.Lock()

    def __repr__(self):
        return "<keyformer.llama_cpp.Session policy=%s budget=%d cells=%d n_ctx=%d evicted=%d peak=%d>" % (
            Policy(self.context.params["policy"]).name.lower(), self.budget, self.n_cells, self.n_ctx,
            self.evicted, self.peak_cells)

    def _decode(self, ctx, batch):
        seqs = _batch_sequences(batch)
        with self._lock:
            if len(set(seqs)) > 1 or (seqs and seqs[0] != 0):
                self.context.llama_set_batch(seqs)
            rc = _original["llama_decode"](ctx, batch)
            if rc != 0:
                self.context.llama_sync(-1)  # llama.cpp rolled the failed ubatches back
                return rc
            self.decodes += 1
            self._seqs.update(seqs)
            for seq in dict.fromkeys(seqs):
                self.peak_cells = max(self.peak_cells, self.context.seq_length(seq))
                self.evicted += self.context.llama_apply(seq)
            return rc

    def _truncated(self, mem, seq, p0):
        """After llama_memory_seq_rm(mem, seq, p0, -1): closes a gap below p0 left by evictions."""
        for s in ([seq] if seq >= 0 else sorted(self._seqs)):
            last = _llama.llama_memory_seq_pos_max(mem, s)
            if 0 <= last < p0 - 1:
                delta = p0 - 1 - last
                _original["llama_memory_seq_add"](mem, s, -1, p0, delta)
                self.context.llama_seq_add(s, -1, p0, delta)
                self.gaps_closed += 1


def _batch_sequences(batch):
    """The sequence of each token of a llama_batch (its first seq_id; 0 without seq_id)."""
    n = batch.n_tokens
    if not batch.seq_id:
        return [0] * n
    return [batch.seq_id[i][0] for i in range(n)]


# Sessions by llama_context and by llama_memory_t address; guarded by _registry_lock.
_registry_lock = threading.Lock()
_by_ctx = {}
_by_mem = {}

_original = {}
_install_lock = threading.Lock()
_default = None  # the configuration enable() set: new contexts get keyformer
_pending = threading.local()  # the configuration of the Llama being constructed on this thread


def _session(ctx):
    with _registry_lock:
        return _by_ctx.get(ctx)


def session(llm):
    """The :class:`Session` of a ``llama_cpp.Llama`` (one made by :class:`Llama`, or by
    ``llama_cpp.Llama`` after :func:`enable`); None if its context has no keyformer."""
    return _session(llm._ctx.ctx)


def _session_of_memory(mem):
    with _registry_lock:
        return _by_mem.get(mem)


def _config(budget, policy, options):
    """Checks a configuration early, before any model is loaded."""
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError("keyformer budget must be an int (cells) or a float (fraction of n_ctx), not %s"
                        % type(budget).__name__)
    if isinstance(budget, numbers.Integral):
        if budget <= 0:
            raise ValueError("keyformer budget must be positive, got %d" % budget)
    elif not 0 < budget <= 1:
        raise ValueError("a fractional keyformer budget must be in (0, 1], got %r" % budget)
    for name in ("n_layer", "n_head", "n_head_kv", "budget", "policy"):
        if name in options:
            raise TypeError("keyformer option %r is set by the model or has its own argument" % name)
    policy = None if policy is None else _enum(Policy, "policy", policy)
    return {"budget": budget, "policy": policy, "options": dict(options)}


def enable(budget=0.5, policy=None, **options):
    """Gives every llama.cpp context llama-cpp-python creates from now on (``llama_cpp.Llama(...)``
    included) a keyformer-bounded cache, until :func:`disable`. ``budget``, ``policy`` and the
    :class:`keyformer.Context` ``options`` are as for :class:`Llama`'s ``keyformer_*`` arguments."""
    global _default
    cfg = _config(budget, policy, options)
    _install()
    _default = cfg


def disable():
    """Stops :func:`enable`: contexts created afterwards are plain llama.cpp ones (existing ones
    keep keyformer until freed)."""
    global _default
    _default = None


class Llama(llama_cpp.Llama):
    """``llama_cpp.Llama`` with a keyformer-bounded KV cache (see the module documentation).

    Args:
        keyformer_budget: cells kept per sequence (int), or a fraction of ``n_ctx`` (float in
            (0, 1]). Default 0.5.
        keyformer_policy: the eviction policy. Default None: the library's (keydiff).
        keyformer_<name>: passed to :class:`keyformer.Context` as ``<name>``.
        Everything else: as for ``llama_cpp.Llama``.

    Attributes:
        keyformer: the :class:`Session` of its context.
    """

    def __new__(cls, *args, keyformer_budget=0.5, keyformer_policy=None, **kwargs):
        # Bad arguments raise here, before an instance exists: llama_cpp.Llama.__del__ needs a
        # finished __init__.
        _config(keyformer_budget, keyformer_policy, _split(kwargs)[0])
        return super().__new__(cls)

    def __init__(self, *args, keyformer_budget=0.5, keyformer_policy=None, **kwargs):
        options, kwargs = _split(kwargs)
        _install()
        _pending.config = _config(keyformer_budget, keyformer_policy, options)
        try:
            super().__init__(*args, **kwargs)
        finally:
            _pending.config = None
        self.keyformer = session(self)


def _split(kwargs):
    """The keyformer_<name> arguments (as {name: value}) and the others."""
    options = {k[len(_PREFIX):]: v for k, v in kwargs.items() if k.startswith(_PREFIX)}
    return options, {k: v for k, v in kwargs.items() if not k.startswith(_PREFIX)}


def _install():
    """Wraps llama-cpp-python's llama.cpp functions (once)."""
    with _install_lock:
        if _original:
            return
        for name, wrapper in _WRAPPERS.items():
            _original[name] = getattr(_llama, name)
            setattr(_llama, name, wrapper)


def _init_from_model(model, params):
    cfg = getattr(_pending, "config", None) or _default
    if cfg is None:
        return _original["llama_init_from_model"](model, params)
    n_ctx = params.n_ctx or _llama.llama_model_n_ctx_train(model)
    budget = cfg["budget"]
    if not isinstance(budget, numbers.Integral):
        budget = max(1, int(budget * n_ctx))
    kf = Context(cfg["policy"], n_layer=_llama.llama_model_n_layer(model), n_head=_llama.llama_model_n_head(model),
                 n_head_kv=_llama.llama_model_n_head_kv(model), budget=int(budget), **cfg["options"])
    ctx = None
    try:
        n_cells = n_ctx  # policy full never evicts: the whole n_ctx
        if kf.params["policy"] != Policy.FULL:
            n_cells = min(n_ctx, budget + params.n_batch + kf.params["evict_slack"])
        p = type(params).from_buffer_copy(params)  # llama-cpp-python keeps its own params as they were
        p.n_ctx = n_cells * max(1, p.n_seq_max)  # each sequence's cells, in its stream or the shared cache
        if Policy(kf.params["policy"]) != Policy.KEYDIFF:  # the others read the attention matrix
            p.flash_attn_type = _llama.LLAMA_FLASH_ATTN_TYPE_DISABLED
        chained = params.cb_eval if params.cb_eval else None
        p.cb_eval = ctypes.cast(kf.llama_eval_callback, _llama.ggml_backend_sched_eval_callback)
        p.cb_eval_user_data = kf.llama_user_data
        ctx = _original["llama_init_from_model"](model, p)
        if ctx is None:
            kf.close()
            return None
        kf.llama_attach(ctx, llama_library=_llama._lib._name)
        if chained is not None:
            kf.llama_chain(chained, params.cb_eval_user_data)
    except BaseException:
        if ctx is not None:
            _original["llama_free"](ctx)
        kf.close()
        raise
    cells, per_stream = _original["llama_n_ctx"](ctx), _llama.llama_n_ctx_seq(ctx)
    s = Session(kf, n_ctx, cells, per_stream if per_stream < cells else 0, int(budget), chained)
    with _registry_lock:
        _by_ctx[ctx] = s
        _by_mem[_llama.llama_get_memory(ctx)] = s
    return ctx


def _decode(ctx, batch):
    s = _session(ctx)
    if s is None:
        return _original["llama_decode"](ctx, batch)
    return s._decode(ctx, batch)


def _n_ctx(ctx):
    s = _session(ctx)
    return _original["llama_n_ctx"](ctx) if s is None else s.n_ctx


def _free(ctx):
    with _registry_lock:
        s = _by_ctx.pop(ctx, None)
        if s is not None:
            for mem in [m for m, v in _by_mem.items() if v is s]:
                del _by_mem[mem]
    _original["llama_free"](ctx)
    if s is not None:
        s.context.close()


def _seq_rm(mem, seq, p0, p1):
    ok = _original["llama_memory_seq_rm"](mem, seq, p0, p1)
    s = _session_of_memory(mem)
    if ok and s is not None:
        with s._lock:
            s.context.llama_seq_rm(seq, p0, p1)
            if p1 < 0 and p0 > 0:
                s._truncated(mem, seq, p0)
    return ok


def _mirror(name, repeat):
    """A wrapper of the llama.cpp memory edit name that repeats it in keyformer: repeat(context,
    *the edit's arguments after the memory)."""
    def wrapper(mem, *args):
        r = _original[name](mem, *args)
        s = _session_of_memory(mem)
        if s is not None:
            with s._lock:
                repeat(s.context, *args)
        return r
    wrapper.__name__ = name
    return wrapper


def _refuse_state(name):
    """A wrapper of a whole-context state loader that refuses keyformer contexts."""
    def wrapper(ctx, *args):
        if _session(ctx) is not None:
            raise Unsupported("%s on a keyformer context: keyformer's scores are not part of llama.cpp's "
                              "state, so the restored cache could not be bounded" % name)
        return _original[name](ctx, *args)
    wrapper.__name__ = name
    return wrapper


_WRAPPERS = {
    "llama_init_from_model": _init_from_model,
    "llama_decode": _decode,
    "llama_n_ctx": _n_ctx,
    "llama_free": _free,
    "llama_memory_seq_rm": _seq_rm,
    "llama_memory_seq_add": _mirror("llama_memory_seq_add", lambda kf, *edit: kf.llama_seq_add(*edit)),
    "llama_memory_seq_cp": _mirror("llama_memory_seq_cp", lambda kf, *edit: kf.llama_seq_cp(*edit)),
    "llama_memory_seq_keep": _mirror("llama_memory_seq_keep", lambda kf, seq: kf.llama_seq_keep(seq)),
    "llama_memory_clear": _mirror("llama_memory_clear", lambda kf, data: kf.llama_clear()),
    "llama_state_set_data": _refuse_state("llama_state_set_data"),
    "llama_state_load_file": _refuse_state("llama_state_load_file"),
    "llama_state_seq_set_data": _refuse_state("llama_state_seq_set_data"),
    "llama_state_seq_load_file": _refuse_state("llama_state_seq_load_file"),
}
