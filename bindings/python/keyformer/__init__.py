"""Keyformer KV-cache eviction (MLSys 2024) for Python: ctypes bindings to libkeyformer.

The engine keeps computing attention as it always does. Per sequence it tells a
:class:`Context` which KV cells its new tokens landed in (:meth:`Context.add_cells`), shows it
each layer's attention probabilities for the ubatch (:meth:`Context.observe`), asks which cells to
free (:meth:`Context.plan`), frees them in its own cache and confirms (:meth:`Context.forget`)::

    import numpy as np, keyformer

    with keyformer.Context("keyformer", n_layer=30, n_head=9, n_head_kv=3, budget=0.5) as kf:
        kf.add_cells(0, cells, positions)           # the ubatch's tokens
        for layer in range(30):
            kf.observe(0, layer, probs[layer])      # float32 (heads, rows, cols)
        evictions = kf.plan(0)                      # numpy array: cell, layer, head
        ...                                         # free evictions["cell"] in the engine
        kf.forget(0, evictions)

The shared library is found through ``$KEYFORMER_LIB`` (a path to libkeyformer.so), else the
copy bundled inside this package (``pip install bindings/python`` builds it), else a
``build/lib/libkeyformer.so`` in a folder above this package (in-tree use), else the system
loader. It is loaded on first use, and its API version is checked against :data:`API_VERSION`.
Every error status of the library raises a :class:`KeyformerError` subclass with the library's
message; misuse that Python can see (wrong dtype, shape or stride) raises TypeError/ValueError
before the library is called.

With llama.cpp (loaded through ctypes, say), the library drives the whole loop: put
:func:`llama_eval_callback` and :attr:`Context.llama_user_data` in the context parameters' ``cb_eval``
and ``cb_eval_user_data``, disable flash attention, :meth:`Context.llama_attach` the llama_context,
and call :meth:`Context.llama_apply` after every ``llama_decode`` (tests/python/llama_generate.py).

Host limits of the library (it embeds the Go runtime): it cannot be unloaded, do not fork()
after loading it unless the child only calls exec, and it is for glibc systems.
"""

from ._lib import API_VERSION, ENV_VAR, EVAL_CALLBACK, KeyformerLibraryError, LibraryNotFoundError, find_library
from ._lib import load as load_library
from ._errors import (BufferTooSmall, InternalError, InvalidArgument, InvalidAttention, InvalidHandle,
                      InvalidState, KeyformerError, Unsupported)
from ._context import (EVICTION_DTYPE, Context, Granularity, Policy, Status, api_version, library_path,
                       llama_eval_callback, status_string, version)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION", "ENV_VAR", "EVICTION_DTYPE", "EVAL_CALLBACK", "llama_eval_callback",
    "Context", "Policy", "Granularity", "Status",
    "KeyformerError", "InvalidArgument", "InvalidHandle", "InvalidAttention", "BufferTooSmall",
    "InvalidState", "Unsupported", "InternalError",
    "KeyformerLibraryError", "LibraryNotFoundError",
    "api_version", "version", "library_path", "status_string", "find_library", "load_library",
]
