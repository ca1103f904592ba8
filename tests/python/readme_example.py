# The README's "Use from Python" example, run by test_readme.py: keep the two identical.
import numpy as np, keyformer
# A model of 2 layers x 4 query heads (2 KV heads); keep half of an 8-token prompt.
with keyformer.Context(policy="keyformer", n_layer=2, n_head=4, n_head_kv=2, budget=0.5) as kf:
    kf.add_cells(0, np.arange(8), np.arange(8))          # sequence 0: cells and positions
    attn = np.random.default_rng(0).dirichlet(np.ones(8), size=(4, 8)).astype(np.float32)
    for layer in range(2):                               # (heads, rows, cols), zero-copy
        kf.observe(0, layer, attn)                       # once per layer per ubatch
    ev = kf.plan(0)                                      # cells to free (fields cell, layer, head)
    kf.forget(0, ev)                                     # after the engine freed them
    print("evicted cells", ev["cell"].tolist(), "kept", kf.seq_length(0))
