/* scenario.c: data and the simulated engine of scenario.h. */
#include "scenario.h"

#include <string.h>

const float kf_h2o_prefill[KF_H2O_PREFILL * KF_H2O_PREFILL] = {
    1.0f,  0,     0,     0,    0,    0,
    0.3f,  0.7f,  0,     0,    0,    0,
    0.1f,  0.6f,  0.3f,  0,    0,    0,
    0.1f,  0.5f,  0.1f,  0.3f, 0,    0,
    0.05f, 0.4f,  0.05f, 0.4f, 0.1f, 0,
    0.05f, 0.3f,  0.05f, 0.4f, 0.1f, 0.1f,
};

const int32_t kf_h2o_prefill_evictions[KF_H2O_PREFILL_EVICTIONS] = {2, 3};

const kf_h2o_step kf_h2o_steps[KF_H2O_STEPS] = {
    {2, 6, 6, 0, {0}, {0.1f, 0.2f, 0.3f, 0, 0.3f, 0.1f}, 4},
    {3, 7, 6, 1, {0, 1, -1, 5, 2, 3}, {0.5f, 0.1f, 0, 0.1f, 0.1f, 0.2f}, 5},
    {4, 8, 5, 0, {0}, {0.1f, 0.1f, 0.1f, 0.6f, 0.1f}, 2},
    {2, 9, 5, 0, {0}, {0.6f, 0.1f, 0.1f, 0.1f, 0.1f}, 3},
};

void kf_read_everything(keyformer_params *p) {
    p->observe_layer_stride = 1;
    p->observe_decode_stride = 1;
    p->evict_slack = 0;
}

void kf_h2o_params(keyformer_params *p) {
    p->policy = KEYFORMER_POLICY_H2O;
    p->n_layer = 1;
    p->n_head = 1;
    p->n_head_kv = 1;
    p->budget_tokens = KF_H2O_BUDGET;
    p->window_tokens = KF_H2O_WINDOW;
    p->noise = 0;
    kf_read_everything(p);
}

void kf_keyformer_params(keyformer_params *p, uint64_t seed) {
    p->policy = KEYFORMER_POLICY_KEYFORMER;
    p->n_layer = KF_SIM_LAYERS;
    p->n_head = KF_SIM_HEADS;
    p->n_head_kv = KF_SIM_HEADS_KV;
    p->budget_tokens = KF_SIM_BUDGET;
    p->window_tokens = KF_SIM_WINDOW;
    p->n_new_tokens = KF_SIM_STEPS;
    p->seed = seed;
    kf_read_everything(p);
}

void kf_sim_init(kf_sim *sim, uint32_t salt) {
    int i;
    for (i = 0; i < KF_SIM_CELLS; i++) {
        sim->pos_of[i] = -1;
    }
    sim->next_pos = 0;
    sim->salt = salt;
}

int kf_sim_add(kf_sim *sim, int32_t n, int32_t *cells, int32_t *positions) {
    int32_t c = 0, i;
    for (i = 0; i < n; i++) {
        while (c < KF_SIM_CELLS && sim->pos_of[c] >= 0) {
            c++;
        }
        if (c == KF_SIM_CELLS) {
            return 0;
        }
        sim->pos_of[c] = sim->next_pos;
        cells[i] = c;
        positions[i] = sim->next_pos++;
    }
    return 1;
}

int32_t kf_sim_n_kv(const kf_sim *sim) {
    int32_t c;
    for (c = KF_SIM_CELLS; c > 0; c--) {
        if (sim->pos_of[c - 1] >= 0) {
            return c;
        }
    }
    return 0;
}

/* A 32-bit integer hash (lowbias32). */
static uint32_t kf_hash(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

void kf_sim_attention(const kf_sim *sim, int32_t layer, const int32_t *qpos, int32_t n_rows, float *data,
                      keyformer_attention *a) {
    int32_t n_kv = kf_sim_n_kv(sim), r, h, j;
    for (h = 0; h < KF_SIM_HEADS; h++) {
        for (r = 0; r < n_rows; r++) {
            float *row = data + ((int64_t)h * n_rows + r) * n_kv;
            float sum = 0;
            for (j = 0; j < n_kv; j++) {
                int32_t p = sim->pos_of[j];
                float w = 0;
                if (p >= 0 && p <= qpos[r]) {
                    uint32_t k = kf_hash(sim->salt ^ kf_hash((uint32_t)(layer * 131 + h) ^ kf_hash((uint32_t)qpos[r] * 8191u + (uint32_t)p)));
                    /* every third position is a key token that draws more attention */
                    w = 0.05f + (float)(k >> 8) * (1.0f / 16777216.0f) + (p % 3 == 0 ? 2.0f : 0.0f);
                }
                row[j] = w;
                sum += w;
            }
            for (j = 0; j < n_kv; j++) {
                row[j] /= sum;
            }
        }
    }
    memset(a, 0, sizeof *a);
    a->size = sizeof *a;
    a->n_rows = n_rows;
    a->n_heads = KF_SIM_HEADS;
    a->n_cols = n_kv;
    a->row_stride = n_kv;
    a->head_stride = (int64_t)n_kv * n_rows;
    a->data = data;
    a->cells = NULL;
    a->logits = 0;
}

int32_t kf_sim_free(kf_sim *sim, int32_t cell) {
    int32_t p;
    if (cell < 0 || cell >= KF_SIM_CELLS) {
        return -1;
    }
    p = sim->pos_of[cell];
    sim->pos_of[cell] = -1;
    return p;
}
