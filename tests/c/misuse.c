/* misuse: every function with bad arguments returns the documented status, leaves a non-empty
 * keyformer_last_error naming the function, and changes no state (the saved state of the
 * sequence is byte-for-byte the same before and after). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyformer.h"
#include "scenario.h"

static int failures, checks;
static keyformer_context *ctx; /* a Keyformer context whose sequence 0 holds a prefilled prompt */
static uint8_t saved[1 << 16];
static size_t saved_n;

static void fail_at(int line, const char *call, const char *why) {
    fprintf(stderr, "misuse.c:%d: %s: %s\n", line, call, why);
    failures++;
}

static size_t snapshot(uint8_t *buf, size_t cap) {
    size_t n = 0;
    if (keyformer_state_save(ctx, 0, buf, cap, &n) != KEYFORMER_OK) {
        fprintf(stderr, "state_save failed: %s\n", keyformer_last_error(ctx));
        exit(1);
    }
    return n;
}

/* Leaves a last error that does not name fn, so that the next check sees a fresh message. */
static void mark(keyformer_context *c, const char *fn) {
    int32_t n;
    if (c == NULL) {
        if (strcmp(fn, "keyformer_context_new") == 0) {
            keyformer_context_free(NULL);
        } else {
            keyformer_context_new(NULL, NULL);
        }
    } else if (strcmp(fn, "keyformer_seq_length") == 0) {
        keyformer_seq_length(c, -1, &n);
    } else {
        keyformer_seq_length(c, -1, NULL);
    }
}

static void expect(int line, const char *call, const char *fn, keyformer_status got, keyformer_status want,
                   const keyformer_context *err_ctx, const char *needle) {
    uint8_t now[sizeof saved];
    const char *msg = keyformer_last_error(err_ctx);
    char why[512];
    checks++;
    if (getenv("KF_VERBOSE") != NULL) {
        printf("%-100.100s -> %s: %s\n", call, keyformer_status_string(got), msg);
    }
    if (got != want) {
        snprintf(why, sizeof why, "status %d (%s), want %d (%s); message: %s", got, keyformer_status_string(got), want,
                 keyformer_status_string(want), msg);
        fail_at(line, call, why);
    }
    if (msg == NULL || msg[0] == '\0') {
        fail_at(line, call, "empty last error");
    } else if (strstr(msg, fn) == NULL) {
        snprintf(why, sizeof why, "last error does not name %s: %s", fn, msg);
        fail_at(line, call, why);
    } else if (needle != NULL && strstr(msg, needle) == NULL) {
        snprintf(why, sizeof why, "last error does not mention %s: %s", needle, msg);
        fail_at(line, call, why);
    }
    if (snapshot(now, sizeof now) != saved_n || memcmp(now, saved, saved_n) != 0) {
        fail_at(line, call, "the state changed");
    }
}

/* EXPECT(fn, status, ctx whose last error explains, substring or NULL, arguments...) calls fn. */
#define EXPECT(fn, want, err_ctx, needle, ...)                                                               \
    do {                                                                                                     \
        mark((keyformer_context *)(err_ctx), #fn);                                                           \
        expect(__LINE__, #fn "(" #__VA_ARGS__ ")", #fn, fn(__VA_ARGS__), want, err_ctx, needle);              \
    } while (0)

static keyformer_attention one_row(const float *row, int32_t n_cols) {
    keyformer_attention a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = 1;
    a.n_heads = KF_SIM_HEADS;
    a.n_cols = n_cols;
    a.row_stride = n_cols;
    a.head_stride = n_cols;
    a.data = row;
    return a;
}

static void misuse_params(void) {
    keyformer_params p, good;
    keyformer_context *out = (keyformer_context *)&p;

    EXPECT(keyformer_default_params, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, NULL, NULL);
    memset(&p, 0, sizeof p);
    EXPECT(keyformer_default_params, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, "size", &p);
    p.size = sizeof p - 1;
    EXPECT(keyformer_default_params, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, "size", &p);
    p.size = 0xdeadbeefu;
    EXPECT(keyformer_default_params, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, "size", &p);

    memset(&good, 0, sizeof good);
    good.size = sizeof good;
    if (keyformer_default_params(&good) != KEYFORMER_OK) {
        fprintf(stderr, "default_params failed\n");
        exit(1);
    }
    kf_keyformer_params(&good, 1);

    EXPECT(keyformer_context_new, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, "params", NULL, &out);
    EXPECT(keyformer_context_new, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, "out", &good, NULL);
    if (out != NULL) {
        fail_at(__LINE__, "keyformer_context_new", "*out not NULL after a failure");
    }
#define BAD_PARAM(field_change, needle)                                                                      \
    do {                                                                                                     \
        p = good;                                                                                            \
        field_change;                                                                                        \
        EXPECT(keyformer_context_new, KEYFORMER_ERR_INVALID_ARGUMENT, NULL, needle, &p, &out);                \
    } while (0)
    BAD_PARAM(p.size = 0, "size");
    BAD_PARAM(p.size = sizeof p - 4, "size");
    BAD_PARAM(p.policy = 99, "policy");
    BAD_PARAM(p.policy = -1, "policy");
    BAD_PARAM(p.granularity = 7, "granularity");
    BAD_PARAM(p.n_layer = 0, "n_layer");
    BAD_PARAM(p.n_layer = -3, "n_layer");
    BAD_PARAM(p.n_head = 0, "n_head");
    BAD_PARAM(p.n_head_kv = 3, "n_head");
    BAD_PARAM(p.n_head_kv = 0, "n_head_kv");
    BAD_PARAM(p.budget_tokens = -1, "budget");
    BAD_PARAM((p.budget_tokens = 0, p.budget_fraction = NAN), "budget");
    BAD_PARAM((p.budget_tokens = 0, p.budget_fraction = 1.5f), "budget");
    BAD_PARAM((p.budget_tokens = 0, p.budget_fraction = 0), "budget");
    BAD_PARAM(p.window_tokens = KF_SIM_BUDGET, "window");
    BAD_PARAM(p.window_tokens = -2, "window");
    BAD_PARAM((p.window_tokens = 0, p.window_fraction = 1), "window");
    BAD_PARAM(p.n_sinks = -1, "n_sinks");
    BAD_PARAM(p.tau_init = 0, "tau_init");
    BAD_PARAM(p.tau_end = INFINITY, "tau_end");
    BAD_PARAM(p.n_new_tokens = 0, "n_new_tokens");
    BAD_PARAM(p.noise = 2, "noise");
    BAD_PARAM((p.granularity = KEYFORMER_GRANULARITY_PER_HEAD, p.policy = KEYFORMER_POLICY_WINDOW), "granularity");
}

/* Every function that takes a context, with a handle that is not a live context. */
static void misuse_handles(keyformer_context *bad, const char *what) {
    keyformer_eviction ev[4];
    keyformer_attention a;
    float row[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    int32_t cell = 40, pos = 1000, n;
    size_t sz;
    uint8_t buf[8];

    a = one_row(row, 4);
    a.n_heads = 1;
    EXPECT(keyformer_context_free, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad);
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 4);
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, &cell, &pos, 1);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 0, &a);
    {
        keyformer_keys k = {.size = sizeof k, .n_rows = 1, .n_heads = 1, .head_dim = 4, .head_stride = 4, .data = row};
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 0, &k);
    }
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 0, 1, &n);
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, ev, 4, &n);
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, ev, 0);
    EXPECT(keyformer_seq_length, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, &n);
    EXPECT(keyformer_seq_reset, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0);
    EXPECT(keyformer_state_size, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, &sz);
    EXPECT(keyformer_state_save, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, buf, sizeof buf, &sz);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, saved, saved_n);
    EXPECT(keyformer_llama_seq_rm, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, -1, -1);
    EXPECT(keyformer_llama_seq_add, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 0, 4, 1);
    EXPECT(keyformer_llama_seq_cp, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0, 1, -1, -1);
    EXPECT(keyformer_llama_seq_keep, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, 0);
    EXPECT(keyformer_llama_clear, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad);
    EXPECT(keyformer_llama_sync, KEYFORMER_ERR_INVALID_HANDLE, NULL, what, bad, -1);
    /* the last error of an unknown handle is the process-global one */
    if (bad != NULL && strcmp(keyformer_last_error(bad), keyformer_last_error(NULL)) != 0) {
        fail_at(__LINE__, "keyformer_last_error", "an unknown handle does not give the global message");
    }
}

static void misuse_calls(void) {
    keyformer_eviction ev[KF_SIM_CELLS], bad_ev;
    keyformer_attention a, b;
    float row[KF_SIM_HEADS * KF_SIM_CELLS];
    int32_t cells[2] = {40, 41}, pos[2] = {1000, 1001}, n = -1, i;
    size_t sz = 0;
    uint8_t *garbage, small[4];
    const int32_t n_kv = 16;

    /* the llama.cpp cache edits on a context never attached (their argument checks need one:
     * tests/c/llama_host.c) */
    EXPECT(keyformer_llama_seq_rm, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx, 0, -1, -1);
    EXPECT(keyformer_llama_seq_add, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx, 0, 0, 4, -2);
    EXPECT(keyformer_llama_seq_cp, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx, 0, 1, -1, -1);
    EXPECT(keyformer_llama_seq_keep, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx, 1);
    EXPECT(keyformer_llama_clear, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx);
    EXPECT(keyformer_llama_sync, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keyformer_llama_attach", ctx, -1);

    /* sequence ids */
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, 4);
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, 4);
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "prompt", ctx, 0, 0);
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "prompt", ctx, 0, -5);
    EXPECT(keyformer_set_prompt_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "prompt", ctx, 0, KF_SIM_PROMPT + 1);

    /* add_cells */
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "cells", ctx, 0, NULL, pos, 1);
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "positions", ctx, 0, cells, NULL, 1);
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "negative", ctx, 0, cells, pos, -1);
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, cells, pos, 1);
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, cells, pos, 1);
    cells[1] = cells[0];
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "twice", ctx, 0, cells, pos, 2);
    cells[1] = 41;
    pos[1] = pos[0];
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "position", ctx, 0, cells, pos, 2);
    pos[1] = 1001;
    cells[0] = 0; /* held already by the prompt? the prompt's cells are 0..11 minus the evicted ones */
    pos[0] = 5;   /* comes before the positions held */
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "position", ctx, 0, cells, pos, 2);
    cells[0] = -1;
    pos[0] = 1000;
    EXPECT(keyformer_add_cells, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "cell", ctx, 0, cells, pos, 2);

    /* wants_attention */
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "wanted", ctx, 0, 0, 1, NULL);
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "layer", ctx, 0, -1, 1, &n);
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "layer", ctx, 0, KF_SIM_LAYERS, 1, &n);
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_new", ctx, 0, 0, 0, &n);
    EXPECT(keyformer_wants_attention, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, 0, 1, &n);

    /* observe_keys: the context's policy reads attention; bad keys are refused before that. */
    {
        keyformer_keys k = {.size = sizeof k, .n_rows = 1, .n_heads = 1, .head_dim = 4, .head_stride = 4, .data = row};
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "reads no keys", ctx, 0, 0, &k);
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "keys is NULL", ctx, 0, 0, NULL);
        k.size = 4;
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "size", ctx, 0, 0, &k);
        k.size = sizeof k;
        k.data = NULL;
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "data", ctx, 0, 0, &k);
        k.data = row;
        k.head_dim = 0;
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "head_dim", ctx, 0, 0, &k);
        k.head_dim = 4;
        k.row_stride = -1;
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "strides", ctx, 0, 0, &k);
        k.row_stride = 0;
        EXPECT(keyformer_observe_keys, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, 0, &k);
    }

    /* observe */
    for (i = 0; i < KF_SIM_HEADS * n_kv; i++) {
        row[i] = 1.0f / (float)n_kv;
    }
    a = one_row(row, n_kv);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "attention", ctx, 0, 0, NULL);
    b = a;
    b.size = 0;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "size", ctx, 0, 0, &b);
    b.size = sizeof b - 1;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "size", ctx, 0, 0, &b);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "layer", ctx, 0, -1, &a);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "layer", ctx, 0, KF_SIM_LAYERS, &a);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, 0, &a);
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, 0, &a);
    b = a;
    b.n_heads = KF_SIM_HEADS - 1;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "heads", ctx, 0, 0, &b);
    b = a;
    b.n_rows = 0;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_rows", ctx, 0, 0, &b);
    b.n_rows = -4;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_rows", ctx, 0, 0, &b);
    b = a;
    b.n_cols = 0;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_cols", ctx, 0, 0, &b);
    b = a;
    b.row_stride = -1;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "stride", ctx, 0, 0, &b);
    b = a;
    b.n_rows = 2;
    b.row_stride = INT64_MAX;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "spans", ctx, 0, 0, &b);
    b = a;
    b.head_stride = INT64_MAX / 2;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "spans", ctx, 0, 0, &b);
    b = a;
    b.data = NULL;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "data", ctx, 0, 0, &b);
    b = a;
    b.logits = 2;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "logits", ctx, 0, 0, &b);
    row[3] = NAN;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &a);
    row[3] = INFINITY;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &a);
    row[3] = -0.25f;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &a);
    row[3] = 1.5f;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &a);
    row[3] = 1.0f / (float)n_kv;
    row[KF_SIM_HEADS * n_kv - 1] = NAN; /* the last head's row */
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &a);
    row[KF_SIM_HEADS * n_kv - 1] = 1.0f / (float)n_kv;
    b = a;
    b.logits = 1;
    row[7] = INFINITY;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &b);
    row[7] = NAN;
    EXPECT(keyformer_observe, KEYFORMER_ERR_INVALID_ATTENTION, ctx, NULL, ctx, 0, 0, &b);
    row[7] = 1.0f / (float)n_kv;

    /* plan */
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_out", ctx, 0, ev, KF_SIM_CELLS, NULL);
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "out", ctx, 0, NULL, 4, &n);
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "capacity", ctx, 0, ev, -1, &n);
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, ev, KF_SIM_CELLS, &n);
    EXPECT(keyformer_plan, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, ev, KF_SIM_CELLS, &n);

    /* forget */
    bad_ev.cell = 63; /* not in the sequence */
    bad_ev.layer = -1;
    bad_ev.head = -1;
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "evictions", ctx, 0, NULL, 1);
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "negative", ctx, 0, &bad_ev, -1);
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "cell", ctx, 0, &bad_ev, 1);
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, &bad_ev, 1);
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, &bad_ev, 1);
    ev[0].cell = 0; /* cell 0 holds a token: a valid eviction followed by an invalid one */
    ev[0].layer = -1;
    ev[0].head = -1;
    ev[1] = bad_ev;
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "cell", ctx, 0, ev, 2);
    ev[1] = ev[0];
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "twice", ctx, 0, ev, 2);
    ev[0].layer = 0;
    ev[0].head = 0;
    EXPECT(keyformer_forget, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "granularity", ctx, 0, ev, 1);

    /* seq_length, seq_reset */
    EXPECT(keyformer_seq_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "n_out", ctx, 0, NULL);
    EXPECT(keyformer_seq_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, &n);
    EXPECT(keyformer_seq_length, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, &n);
    EXPECT(keyformer_seq_reset, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1);
    EXPECT(keyformer_seq_reset, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536);

    /* state_size, state_save */
    EXPECT(keyformer_state_size, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "size_out", ctx, 0, NULL);
    EXPECT(keyformer_state_size, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, &sz);
    EXPECT(keyformer_state_size, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, &sz);
    EXPECT(keyformer_state_save, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "written", ctx, 0, small, sizeof small, NULL);
    EXPECT(keyformer_state_save, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "buf", ctx, 0, NULL, 16, &sz);
    EXPECT(keyformer_state_save, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, small, sizeof small, &sz);
    EXPECT(keyformer_state_save, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, small, sizeof small, &sz);
    sz = 0;
    EXPECT(keyformer_state_save, KEYFORMER_ERR_BUFFER_TOO_SMALL, ctx, NULL, ctx, 0, small, sizeof small, &sz);
    if (sz != saved_n) {
        fail_at(__LINE__, "keyformer_state_save", "*written is not the size needed");
    }
    sz = 0;
    EXPECT(keyformer_state_save, KEYFORMER_ERR_BUFFER_TOO_SMALL, ctx, NULL, ctx, 0, NULL, 0, &sz);
    if (sz != saved_n) {
        fail_at(__LINE__, "keyformer_state_save", "*written is not the size needed (NULL, 0)");
    }

    /* state_load */
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "buf", ctx, 0, NULL, 16);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, -1, saved, saved_n);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_ARGUMENT, ctx, "sequence", ctx, 65536, saved, saved_n);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, NULL, 0);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, (const uint8_t *)"hello", 5);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, saved, saved_n - 1);
    garbage = (uint8_t *)malloc(saved_n + 4);
    memcpy(garbage, saved, saved_n);
    memset(garbage + saved_n, 0, 4);
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, garbage, saved_n + 4);
    garbage[0] ^= 0xff; /* bad magic */
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, garbage, saved_n);
    memcpy(garbage, saved, saved_n);
    garbage[6] = KEYFORMER_POLICY_H2O; /* another policy */
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, garbage, saved_n);
    memcpy(garbage, saved, saved_n);
    garbage[8] ^= 1; /* another model shape */
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, garbage, saved_n);
    memcpy(garbage, saved, saved_n);
    memset(garbage + saved_n - 4, 0xff, 4); /* a NaN score */
    EXPECT(keyformer_state_load, KEYFORMER_ERR_INVALID_STATE, ctx, NULL, ctx, 0, garbage, saved_n);
    free(garbage);
}

/* The context works normally after all that: one more generated token. */
static void still_works(kf_sim *sim) {
    int32_t cell, pos, layer, n = 0, len = 0;
    keyformer_attention a;
    keyformer_eviction ev[4];
    static float buf[KF_SIM_HEADS * KF_SIM_CELLS];
    if (!kf_sim_add(sim, 1, &cell, &pos) || keyformer_add_cells(ctx, 0, &cell, &pos, 1) != KEYFORMER_OK) {
        fail_at(__LINE__, "keyformer_add_cells", keyformer_last_error(ctx));
        return;
    }
    for (layer = 0; layer < KF_SIM_LAYERS; layer++) {
        kf_sim_attention(sim, layer, &pos, 1, buf, &a);
        if (keyformer_observe(ctx, 0, layer, &a) != KEYFORMER_OK) {
            fail_at(__LINE__, "keyformer_observe", keyformer_last_error(ctx));
        }
    }
    if (keyformer_plan(ctx, 0, ev, 4, &n) != KEYFORMER_OK || n != 1 ||
        keyformer_forget(ctx, 0, ev, n) != KEYFORMER_OK || keyformer_seq_length(ctx, 0, &len) != KEYFORMER_OK ||
        len != KF_SIM_BUDGET) {
        fail_at(__LINE__, "plan/forget after misuse", keyformer_last_error(ctx));
    }
}

int main(void) {
    keyformer_params p;
    keyformer_context *freed = NULL;
    keyformer_attention a;
    keyformer_eviction ev[KF_SIM_CELLS];
    kf_sim sim;
    static float buf[KF_SIM_PROMPT * KF_SIM_HEADS * KF_SIM_CELLS];
    int32_t cells[KF_SIM_PROMPT], pos[KF_SIM_PROMPT], layer, n = 0, i;
    keyformer_status codes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, -1, 1000};

    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    if (keyformer_default_params(&p) != KEYFORMER_OK) {
        return 1;
    }
    kf_keyformer_params(&p, 7);
    if (keyformer_context_new(&p, &ctx) != KEYFORMER_OK || keyformer_context_new(&p, &freed) != KEYFORMER_OK ||
        keyformer_context_free(freed) != KEYFORMER_OK) {
        fprintf(stderr, "setup: %s\n", keyformer_last_error(NULL));
        return 1;
    }
    if (keyformer_last_error(ctx)[0] != '\0') {
        fail_at(__LINE__, "keyformer_last_error", "a new context has a last error");
    }
    kf_sim_init(&sim, 1);
    kf_sim_add(&sim, KF_SIM_PROMPT, cells, pos);
    if (keyformer_add_cells(ctx, 0, cells, pos, KF_SIM_PROMPT) != KEYFORMER_OK) {
        return 1;
    }
    for (layer = 0; layer < KF_SIM_LAYERS; layer++) {
        kf_sim_attention(&sim, layer, pos, KF_SIM_PROMPT, buf, &a);
        if (keyformer_observe(ctx, 0, layer, &a) != KEYFORMER_OK) {
            return 1;
        }
    }
    if (keyformer_plan(ctx, 0, ev, KF_SIM_CELLS, &n) != KEYFORMER_OK ||
        keyformer_forget(ctx, 0, ev, n) != KEYFORMER_OK) {
        fprintf(stderr, "setup: %s\n", keyformer_last_error(ctx));
        return 1;
    }
    for (i = 0; i < n; i++) {
        kf_sim_free(&sim, ev[i].cell);
    }
    saved_n = snapshot(saved, sizeof saved);

    misuse_params();
    misuse_handles(NULL, "NULL");
    misuse_handles((keyformer_context *)(uintptr_t)0xdeadbeef, "unknown");
    misuse_handles(freed, "unknown");
    misuse_calls();
    still_works(&sim);

    for (i = 0; i < (int32_t)(sizeof codes / sizeof codes[0]); i++) {
        const char *s = keyformer_status_string(codes[i]);
        if (s == NULL || s[0] == '\0') {
            fail_at(__LINE__, "keyformer_status_string", "empty");
        }
    }
    if (keyformer_context_free(ctx) != KEYFORMER_OK) {
        fail_at(__LINE__, "keyformer_context_free", keyformer_last_error(NULL));
    }
    if (failures) {
        fprintf(stderr, "misuse: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("misuse: %d checks ok\n", checks);
    return 0;
}
