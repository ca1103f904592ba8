"""A toy engine for the tests: a KV cache of numbered cells, random softmax attention with a causal
mask, laid out like llama.cpp's kq_soft_max (heads, rows, n_kv), driven through keyformer.Context.
"""

import numpy as np


def softmax_rows(logits):
    """Softmax over the last axis; -inf entries become exactly 0."""
    m = np.max(logits, axis=-1, keepdims=True)
    e = np.exp(logits - m)
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(np.float32)


class ToyEngine:
    """One sequence of a toy engine. It records every plan so that runs can be compared."""

    def __init__(self, ctx, seq, n_layer, n_head, rng, bias=None):
        self.ctx, self.seq = ctx, seq
        self.n_layer, self.n_head = n_layer, n_head
        self.rng = rng
        self.cell_pos = {}  # cell -> position
        self.next_pos = 0
        self.bias = bias  # optional per-position logit bias (some tokens draw more attention)
        self.history = []  # one list of (cell, layer, head) per plan
        self.observed = []  # (layer, tokens) of every attention shown

    def _free_cells(self, n):
        out, c = [], 0
        while len(out) < n:
            if c not in self.cell_pos:
                out.append(c)
            c += 1
        return out

    def decode(self, n):
        """Adds n tokens (one ubatch) and shows the attention of the layers the schedule wants."""
        cells = self._free_cells(n)
        positions = list(range(self.next_pos, self.next_pos + n))
        self.next_pos += n
        self.ctx.add_cells(self.seq, cells, positions)
        for c, p in zip(cells, positions):
            self.cell_pos[c] = p
        n_kv = max(self.cell_pos) + 1
        pos = np.full(n_kv, np.iinfo(np.int64).max)
        for c, p in self.cell_pos.items():
            pos[c] = p
        row_pos = np.asarray(positions)
        visible = pos[None, :] <= row_pos[:, None]  # (rows, n_kv): causal mask over live cells
        for layer in range(self.n_layer):
            logits = self.rng.normal(0.0, 2.0, size=(self.n_head, n, n_kv))
            if not self.ctx.wants_attention(self.seq, layer, n):
                continue
            if self.bias is not None:
                b = np.where(pos < len(self.bias), self.bias[np.minimum(pos, len(self.bias) - 1)], 0.0)
                logits = logits + b[None, None, :]
            logits = np.where(visible[None, :, :], logits, -np.inf)
            self.ctx.observe(self.seq, layer, softmax_rows(logits))
            self.observed.append((layer, n))

    def recent(self, w):
        """The w cells with the highest positions."""
        return {c for c, _ in sorted(self.cell_pos.items(), key=lambda cp: cp[1])[-w:]} if w else set()

    def evict(self):
        """Plans, frees the planned cells and forgets them; returns the plan."""
        ev = self.ctx.plan(self.seq)
        self.history.append(ev.tolist())
        for c in ev["cell"].tolist():
            del self.cell_pos[c]
        self.ctx.forget(self.seq, ev)
        return ev
