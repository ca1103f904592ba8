/* scenario.h: the synthetic attention streams shared by the C and C++ consumer tests (and
 * mirrored by tests/python/test_keyformer_scenario.py). Plain C99, usable from C++11. */
#ifndef KEYFORMER_TEST_SCENARIO_H
#define KEYFORMER_TEST_SCENARIO_H

#include <stdint.h>

#include "keyformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The exact H2O scenario ------------------------------------------------------------------
 * Policy H2O (plain attention, no noise), 1 layer, 1 head, budget 4 tokens, window 2 tokens,
 * sequence 0. H2O scores a token by the sum of the (row-normalised) attention it received, so
 * every expected eviction below can be worked out by hand; the comments do that.
 *
 * Prefill: 6 tokens, positions 0..5 in cells 0..5, one causal 6x6 block (row i = query i):
 *            c0    c1    c2    c3    c4    c5
 *   r0      1
 *   r1      .3    .7
 *   r2      .1    .6    .3
 *   r3      .1    .5    .1    .3
 *   r4      .05   .4    .05   .4    .1
 *   r5      .05   .3    .05   .4    .1    .1
 *   sum     1.6   2.5   0.5   1.1   0.2   0.1
 * plan: 6 tokens, budget 4 -> 2 evictions among the candidates c0..c3 (c4, c5 are the window):
 * the two lowest, c2 (0.5) and c3 (1.1), in position order. Left: c0 1.6, c1 2.5, c4 0.2, c5 0.1.
 *
 * Generation: each step adds one token (in the lowest free cell), observes its one attention row,
 * plans (exactly one eviction: the lowest-scoring token outside the 2 newest) and forgets it:
 *   1: pos 6 -> cell 2; row over cells 0..5 = .1 .2 .3 0 .3 .1 (cell 3 is free: 0)
 *      c0 1.7, c1 2.7, c4 0.5, c5 0.2, c2 0.3; window c5, c2 -> evict c4 (0.5)
 *   2: pos 7 -> cell 3; columns mapped by cells[] = {0, 1, -1, 5, 2, 3}, row .5 .1 0 .1 .1 .2
 *      c0 2.2, c1 2.8, c5 0.3, c2 0.4, c3 0.2; window c2, c3 -> evict c5 (0.3)
 *   3: pos 8 -> cell 4; row over cells 0..4 = .1 .1 .1 .6 .1
 *      c0 2.3, c1 2.9, c2 0.5, c3 0.8, c4 0.1; window c3, c4 -> evict c2 (0.5)
 *   4: pos 9 -> cell 2; row over cells 0..4 = .6 .1 .1 .1 .1
 *      c0 2.9, c1 3.0, c3 0.9, c4 0.2, c2 0.1; window c4, c2 -> evict c3 (0.9), the token that
 *      just left the window (c4 and c2 score lower but are protected by the window)
 */
#define KF_H2O_BUDGET 4
#define KF_H2O_WINDOW 2
#define KF_H2O_PREFILL 6
#define KF_H2O_PREFILL_EVICTIONS 2
#define KF_H2O_STEPS 4
#define KF_H2O_MAX_COLS 6

extern const float kf_h2o_prefill[KF_H2O_PREFILL * KF_H2O_PREFILL];
extern const int32_t kf_h2o_prefill_evictions[KF_H2O_PREFILL_EVICTIONS];

typedef struct kf_h2o_step {
    int32_t cell, pos;                 /* where the new token lands */
    int32_t n_cols;                    /* attention columns */
    int32_t use_cells;                 /* 1: columns map to cells[]; 0: column j is cell j */
    int32_t cells[KF_H2O_MAX_COLS];
    float row[KF_H2O_MAX_COLS];
    int32_t evict;                     /* the expected eviction */
} kf_h2o_step;

extern const kf_h2o_step kf_h2o_steps[KF_H2O_STEPS];

/* Sets the scenario's fields on params already filled by keyformer_default_params. */
void kf_h2o_params(keyformer_params *params);

/* kf_read_everything sets the schedule that reads every layer of every token and evicts at every
 * plan (both scenarios use it; the default schedule reads less). */
void kf_read_everything(keyformer_params *params);

/* ---- The Keyformer scenario: a simulated engine ----------------------------------------------
 * Policy Keyformer (Gumbel noise), 2 layers, 4 query heads over 2 KV heads, budget 8, window 3;
 * a prompt of KF_SIM_PROMPT tokens then KF_SIM_STEPS generated ones. The engine refills freed
 * cells lowest-first; attention rows are a causal softmax-like distribution over the live cells
 * with weights fixed by (salt, layer, head, query position, key position): the same stream for
 * every context that is given the same engine state. */
#define KF_SIM_CELLS 64
#define KF_SIM_LAYERS 2
#define KF_SIM_HEADS 4
#define KF_SIM_HEADS_KV 2
#define KF_SIM_BUDGET 8
#define KF_SIM_WINDOW 3
#define KF_SIM_PROMPT 12
#define KF_SIM_STEPS 16

typedef struct kf_sim {
    int32_t pos_of[KF_SIM_CELLS]; /* position held by each cell, -1 = free */
    int32_t next_pos;
    uint32_t salt;
} kf_sim;

void kf_keyformer_params(keyformer_params *params, uint64_t seed);
void kf_sim_init(kf_sim *sim, uint32_t salt);
/* Places n new tokens in the lowest free cells; writes their cells and positions. 0 if full. */
int kf_sim_add(kf_sim *sim, int32_t n, int32_t *cells, int32_t *positions);
/* The number of attention columns: the highest occupied cell + 1. */
int32_t kf_sim_n_kv(const kf_sim *sim);
/* Writes layer's attention for the query positions qpos[0..n_rows) into data, laid out like
 * llama.cpp's kq_soft_max (element (r, h, j) at (h * n_rows + r) * n_kv + j) and fills *a. data
 * must hold n_rows * KF_SIM_HEADS * kf_sim_n_kv(sim) floats. */
void kf_sim_attention(const kf_sim *sim, int32_t layer, const int32_t *qpos, int32_t n_rows, float *data,
                      keyformer_attention *a);
/* Frees a cell; returns its position, or -1 if it was free. */
int32_t kf_sim_free(kf_sim *sim, int32_t cell);

#ifdef __cplusplus
}
#endif

#endif
