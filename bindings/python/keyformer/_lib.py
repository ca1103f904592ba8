"""Loading libkeyformer and declaring its C ABI (include/keyformer.h) for ctypes.

Everything here mirrors the header one to one: the structs, the constants and a prototype
(argtypes and restype) for every exported function. The public, Pythonic API lives in
``keyformer._context``.
"""

import ctypes
import ctypes.util
import os
import threading

#: The API version these bindings were written against (KEYFORMER_API_VERSION in keyformer.h).
API_VERSION = 6

#: The environment variable that names the shared library to load (a path to the .so file).
ENV_VAR = "KEYFORMER_LIB"

LIBRARY_FILE = "libkeyformer.so"

# Status codes (keyformer_status).
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_INVALID_HANDLE = 2
ERR_INVALID_ATTENTION = 3
ERR_BUFFER_TOO_SMALL = 4
ERR_INVALID_STATE = 5
ERR_UNSUPPORTED = 6
ERR_INTERNAL = 7


class KeyformerParams(ctypes.Structure):
    """``struct keyformer_params``: the configuration of a context."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("policy", ctypes.c_int32),
        ("granularity", ctypes.c_int32),
        ("n_layer", ctypes.c_int32),
        ("n_head", ctypes.c_int32),
        ("n_head_kv", ctypes.c_int32),
        ("budget_tokens", ctypes.c_int32),
        ("budget_fraction", ctypes.c_float),
        ("window_tokens", ctypes.c_int32),
        ("window_fraction", ctypes.c_float),
        ("n_sinks", ctypes.c_int32),
        ("tau_init", ctypes.c_float),
        ("tau_end", ctypes.c_float),
        ("n_new_tokens", ctypes.c_int32),
        ("noise", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        # API version 2: the observation schedule.
        ("observe_layer_stride", ctypes.c_int32),
        ("n_observe_layers", ctypes.c_int32),
        ("observe_layers", ctypes.POINTER(ctypes.c_int32)),
        ("observe_decode_stride", ctypes.c_int32),
        ("evict_slack", ctypes.c_int32),
        # API version 4: the ranking options.
        ("rank_mean_attention", ctypes.c_int32),
        ("rank_span", ctypes.c_int32),
        ("rank_keep_sinks", ctypes.c_int32),
        # API version 6: the prompt rows read.
        ("observe_prompt_rows", ctypes.c_int64),
    ]


class KeyformerAttention(ctypes.Structure):
    """``struct keyformer_attention``: one layer's attention for one ubatch.

    ``data`` (``const float *``) and ``cells`` (``const int32_t *``) are declared as ``c_void_p``:
    the same ABI, and an address taken from a numpy array can be stored without a cast.
    """

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("n_rows", ctypes.c_int32),
        ("n_heads", ctypes.c_int32),
        ("n_cols", ctypes.c_int32),
        ("row_stride", ctypes.c_int64),
        ("head_stride", ctypes.c_int64),
        ("data", ctypes.c_void_p),
        ("cells", ctypes.c_void_p),
        ("logits", ctypes.c_int32),
    ]


class KeyformerKeys(ctypes.Structure):
    """``struct keyformer_keys``: one layer's keys for one ubatch (``data`` as ``c_void_p``)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("n_rows", ctypes.c_int32),
        ("n_heads", ctypes.c_int32),
        ("head_dim", ctypes.c_int32),
        ("row_stride", ctypes.c_int64),
        ("head_stride", ctypes.c_int64),
        ("data", ctypes.c_void_p),
    ]


class KeyformerEviction(ctypes.Structure):
    """``struct keyformer_eviction``: a cell (layer = head = -1) or one layer/KV-head entry of it."""

    _fields_ = [
        ("cell", ctypes.c_int32),
        ("layer", ctypes.c_int32),
        ("head", ctypes.c_int32),
    ]


_c_ctx = ctypes.c_void_p  # keyformer_context * (opaque)
_p_i32 = ctypes.POINTER(ctypes.c_int32)
_p_size = ctypes.POINTER(ctypes.c_size_t)
_p_u8 = ctypes.c_void_p  # uint8_t * / const uint8_t *: addresses of Python buffers

# name -> (restype, argtypes), one entry per function of keyformer.h, in header order.
PROTOTYPES = {
    "keyformer_api_version": (ctypes.c_int32, []),
    "keyformer_version": (ctypes.c_char_p, []),
    "keyformer_status_string": (ctypes.c_char_p, [ctypes.c_int32]),
    "keyformer_last_error": (ctypes.c_char_p, [_c_ctx]),
    "keyformer_default_params": (ctypes.c_int32, [ctypes.POINTER(KeyformerParams)]),
    "keyformer_context_new": (ctypes.c_int32, [ctypes.POINTER(KeyformerParams), ctypes.POINTER(_c_ctx)]),
    "keyformer_context_free": (ctypes.c_int32, [_c_ctx]),
    "keyformer_set_prompt_length": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32]),
    "keyformer_add_cells": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32]),
    "keyformer_wants_attention": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, _p_i32]),
    "keyformer_observe": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(KeyformerAttention)]),
    "keyformer_observe_keys": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(KeyformerKeys)]),
    "keyformer_plan": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32, _p_i32]),
    "keyformer_forget": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32]),
    "keyformer_seq_length": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_i32]),
    "keyformer_seq_reset": (ctypes.c_int32, [_c_ctx, ctypes.c_int32]),
    "keyformer_state_size": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_size]),
    "keyformer_state_save": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_u8, ctypes.c_size_t, _p_size]),
    "keyformer_state_load": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_u8, ctypes.c_size_t]),
    # Use with llama.cpp. Pointers to llama.cpp / ggml objects (struct llama_context *,
    # struct ggml_tensor *) and the host callback are addresses (c_void_p).
    "keyformer_llama_eval_callback": (ctypes.c_bool, [ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p]),
    "keyformer_llama_attach": (ctypes.c_int32, [_c_ctx, ctypes.c_void_p, ctypes.c_char_p]),
    "keyformer_llama_chain": (ctypes.c_int32, [_c_ctx, ctypes.c_void_p, ctypes.c_void_p]),
    "keyformer_llama_set_batch": (ctypes.c_int32, [_c_ctx, ctypes.c_void_p, ctypes.c_int32]),
    "keyformer_llama_apply": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_i32]),
    "keyformer_llama_restore": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, _p_u8, ctypes.c_size_t]),
    "keyformer_llama_seq_rm": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]),
    "keyformer_llama_seq_add": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]),
    "keyformer_llama_seq_cp": (ctypes.c_int32, [_c_ctx, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]),
    "keyformer_llama_seq_keep": (ctypes.c_int32, [_c_ctx, ctypes.c_int32]),
    "keyformer_llama_clear": (ctypes.c_int32, [_c_ctx]),
    "keyformer_llama_sync": (ctypes.c_int32, [_c_ctx, ctypes.c_int32]),
}

#: The C type of llama.cpp's eval callback (ggml_backend_sched_eval_callback):
#: ``bool (*)(struct ggml_tensor *t, bool ask, void *user_data)``, for a host callback chained with
#: :meth:`keyformer.Context.llama_chain`.
EVAL_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_bool, ctypes.c_void_p)


class KeyformerLibraryError(OSError):
    """libkeyformer could not be loaded or is incompatible with these bindings."""


class LibraryNotFoundError(KeyformerLibraryError):
    """libkeyformer was not found (neither $KEYFORMER_LIB, the build tree, nor the system loader)."""


def _candidates():
    """Yields (description, path) for each place the library may be, in search order."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = os.path.join(env, LIBRARY_FILE) if os.path.isdir(env) else env
        yield ("$%s" % ENV_VAR, path)
        return  # an explicit choice: no fallback that could load another build silently
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = os.path.join(here, LIBRARY_FILE)
    if os.path.isfile(bundled):
        yield ("package", bundled)
    d = here
    while True:
        path = os.path.join(d, "build", "lib", LIBRARY_FILE)
        if os.path.isfile(path):
            yield ("build tree", path)
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    found = ctypes.util.find_library("keyformer")
    if found:
        yield ("system loader", found)


def find_library():
    """Returns the path (or loader name) of the library that :func:`load` would load.

    The search order is: the ``KEYFORMER_LIB`` environment variable (a path to the .so, or a
    folder holding libkeyformer.so; when set, nothing else is tried), then the library bundled
    inside this package (``pip install bindings/python`` builds it there), then a ``build/lib/
    libkeyformer.so`` in a folder above this package (in-tree use), then the system loader
    (``ctypes.util.find_library("keyformer")``).

    Raises:
        LibraryNotFoundError: none of these has the library.
    """
    env = os.environ.get(ENV_VAR)
    for where, path in _candidates():
        if where.startswith("$") and not os.path.isfile(path):
            raise LibraryNotFoundError(
                "%s=%r: no such file (set it to the path of %s)" % (ENV_VAR, env, LIBRARY_FILE))
        return path
    raise LibraryNotFoundError(
        "%s not found: set %s to its path, build it in the source tree (build/lib/%s), or install "
        "it where the system loader finds it" % (LIBRARY_FILE, ENV_VAR, LIBRARY_FILE))


class Library:
    """The loaded library: ``lib.keyformer_*`` are the prototyped C functions."""

    def __init__(self, path):
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            raise KeyformerLibraryError("cannot load %s: %s" % (path, e)) from e
        for name, (restype, argtypes) in PROTOTYPES.items():
            try:
                fn = getattr(dll, name)
            except AttributeError as e:
                raise KeyformerLibraryError("%s does not export %s" % (path, name)) from e
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self.path = path
        self.dll = dll
        got = self.keyformer_api_version()
        if got < API_VERSION:
            raise KeyformerLibraryError(
                "%s has API version %d, these bindings need %d or later" % (path, got, API_VERSION))
        self.version = self.keyformer_version().decode("ascii", "replace")
        #: The address of keyformer_llama_eval_callback, for llama_context_params.cb_eval.
        self.llama_eval_callback = ctypes.cast(dll.keyformer_llama_eval_callback, ctypes.c_void_p).value


_lock = threading.Lock()
_library = None


def load():
    """Loads libkeyformer once per process (see :func:`find_library`) and returns it.

    Raises:
        LibraryNotFoundError: the library was not found.
        KeyformerLibraryError: it could not be loaded, lacks a function, or has another API version.
    """
    global _library
    lib = _library
    if lib is not None:
        return lib
    with _lock:
        if _library is None:
            _library = Library(find_library())
        return _library
