/* c_consumer: drives synthetic attention streams through the C ABI from C99 (scenario.h):
 *  - the exact H2O scenario: every eviction worked out by hand;
 *  - a Keyformer run checking invariants: length <= budget after every forget, the recent window
 *    never evicted, the same seed giving the same evictions in two contexts, a saved state loaded
 *    into another context (and sequence id) continuing identically;
 *  - plan with too small a capacity: KEYFORMER_ERR_BUFFER_TOO_SMALL with *n_out set;
 *  - several threads driving different sequences of one context at once, while as many threads
 *    drive contexts of their own: the same evictions as one thread driving them in turn;
 *  - the observation schedule (API version 2): what keyformer_wants_attention answers, a version 1
 *    host's smaller keyformer_params getting the defaults, bad schedules rejected by name. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyformer.h"
#include "scenario.h"

static int failures;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* MUST: a call that has to succeed; on failure print the status and message and stop. */
#define MUST(ctx, call)                                                                                      \
    do {                                                                                                     \
        keyformer_status st_ = (call);                                                                       \
        if (st_ != KEYFORMER_OK) {                                                                           \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, keyformer_status_string(st_),  \
                    keyformer_last_error(ctx));                                                              \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

static keyformer_context *new_context(const keyformer_params *p) {
    keyformer_context *ctx = NULL;
    MUST(NULL, keyformer_context_new(p, &ctx));
    return ctx;
}

static int32_t seq_length(keyformer_context *ctx, int32_t seq) {
    int32_t n = -1;
    MUST(ctx, keyformer_seq_length(ctx, seq, &n));
    return n;
}

static void test_versions(void) {
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", KEYFORMER_VERSION_MAJOR, KEYFORMER_VERSION_MINOR, KEYFORMER_VERSION_PATCH);
    CHECK(keyformer_api_version() >= KEYFORMER_API_VERSION, "api version %d", (int)keyformer_api_version());
    CHECK(strcmp(keyformer_version(), want) == 0, "version %s, header %s", keyformer_version(), want);
    CHECK(strcmp(keyformer_status_string(KEYFORMER_OK), "ok") == 0, "%s", keyformer_status_string(KEYFORMER_OK));
}

static void test_h2o_exact(void) {
    keyformer_params p;
    keyformer_context *ctx;
    keyformer_attention a;
    keyformer_eviction ev[8];
    int32_t cells[KF_H2O_PREFILL], pos[KF_H2O_PREFILL], n = -1, i, s;

    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    MUST(NULL, keyformer_default_params(&p));
    kf_h2o_params(&p);
    ctx = new_context(&p);

    for (i = 0; i < KF_H2O_PREFILL; i++) {
        cells[i] = i;
        pos[i] = i;
    }
    MUST(ctx, keyformer_add_cells(ctx, 0, cells, pos, KF_H2O_PREFILL));
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = KF_H2O_PREFILL;
    a.n_heads = 1;
    a.n_cols = KF_H2O_PREFILL;
    a.row_stride = KF_H2O_PREFILL;
    a.head_stride = KF_H2O_PREFILL * KF_H2O_PREFILL;
    a.data = kf_h2o_prefill;
    MUST(ctx, keyformer_observe(ctx, 0, 0, &a));

    /* too small a buffer: nothing written, the needed count set */
    ev[0].cell = -7;
    CHECK(keyformer_plan(ctx, 0, ev, 1, &n) == KEYFORMER_ERR_BUFFER_TOO_SMALL, "plan with capacity 1");
    CHECK(n == KF_H2O_PREFILL_EVICTIONS, "n_out %d, want %d", n, KF_H2O_PREFILL_EVICTIONS);
    CHECK(ev[0].cell == -7, "plan wrote to a too small buffer");
    CHECK(keyformer_last_error(ctx)[0] != '\0', "no message for BUFFER_TOO_SMALL");
    n = -1;
    CHECK(keyformer_plan(ctx, 0, NULL, 0, &n) == KEYFORMER_ERR_BUFFER_TOO_SMALL && n == KF_H2O_PREFILL_EVICTIONS,
          "plan(NULL, 0) to query the count: n_out %d", n);

    MUST(ctx, keyformer_plan(ctx, 0, ev, 8, &n));
    CHECK(n == KF_H2O_PREFILL_EVICTIONS, "prefill: %d evictions", n);
    for (i = 0; i < n && i < KF_H2O_PREFILL_EVICTIONS; i++) {
        CHECK(ev[i].cell == kf_h2o_prefill_evictions[i], "prefill eviction %d: cell %d, want %d", i, ev[i].cell,
              kf_h2o_prefill_evictions[i]);
        CHECK(ev[i].layer == -1 && ev[i].head == -1, "whole-cell eviction has layer %d head %d", ev[i].layer,
              ev[i].head);
    }
    MUST(ctx, keyformer_forget(ctx, 0, ev, n));
    CHECK(seq_length(ctx, 0) == KF_H2O_BUDGET, "length %d after prefill", seq_length(ctx, 0));
    MUST(ctx, keyformer_plan(ctx, 0, ev, 8, &n));
    CHECK(n == 0, "%d evictions at the budget", n);

    for (s = 0; s < KF_H2O_STEPS; s++) {
        const kf_h2o_step *st = &kf_h2o_steps[s];
        MUST(ctx, keyformer_add_cells(ctx, 0, &st->cell, &st->pos, 1));
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.n_rows = 1;
        a.n_heads = 1;
        a.n_cols = st->n_cols;
        a.row_stride = st->n_cols;
        a.head_stride = st->n_cols;
        a.data = st->row;
        a.cells = st->use_cells ? st->cells : NULL;
        MUST(ctx, keyformer_observe(ctx, 0, 0, &a));
        MUST(ctx, keyformer_plan(ctx, 0, ev, 8, &n));
        CHECK(n == 1 && ev[0].cell == st->evict, "step %d: %d evictions, first cell %d, want cell %d", s + 1, n,
              n > 0 ? ev[0].cell : -1, st->evict);
        MUST(ctx, keyformer_forget(ctx, 0, ev, n));
        CHECK(seq_length(ctx, 0) == KF_H2O_BUDGET, "step %d: length %d", s + 1, seq_length(ctx, 0));
    }
    MUST(ctx, keyformer_context_free(ctx));
}

/* One context running the Keyformer scenario on sequence seq, with its own simulated engine. */
typedef struct kf_run {
    keyformer_context *ctx;
    int32_t seq;
    kf_sim sim;
    int32_t log[KF_SIM_PROMPT + KF_SIM_STEPS]; /* evicted positions, in order */
    int n_log;
    float attention[KF_SIM_PROMPT * KF_SIM_HEADS * KF_SIM_CELLS];
} kf_run;

/* Decodes n tokens: add cells, observe every layer, plan, check, free in the engine, forget. */
static void decode(kf_run *r, int32_t n) {
    int32_t cells[KF_SIM_PROMPT], pos[KF_SIM_PROMPT], layer, i, n_ev = -1;
    keyformer_eviction ev[KF_SIM_CELLS];
    keyformer_attention a;

    if (!kf_sim_add(&r->sim, n, cells, pos)) {
        fprintf(stderr, "simulated cache full\n");
        exit(1);
    }
    MUST(r->ctx, keyformer_add_cells(r->ctx, r->seq, cells, pos, n));
    for (layer = 0; layer < KF_SIM_LAYERS; layer++) {
        kf_sim_attention(&r->sim, layer, pos, n, r->attention, &a);
        MUST(r->ctx, keyformer_observe(r->ctx, r->seq, layer, &a));
    }
    MUST(r->ctx, keyformer_plan(r->ctx, r->seq, ev, KF_SIM_CELLS, &n_ev));
    for (i = 0; i < n_ev; i++) {
        int32_t p = kf_sim_free(&r->sim, ev[i].cell);
        CHECK(p >= 0, "evicted cell %d is not in use", ev[i].cell);
        CHECK(p < r->sim.next_pos - KF_SIM_WINDOW, "evicted position %d is in the recent window (next %d)", p,
              r->sim.next_pos);
        if (r->n_log < (int)(sizeof r->log / sizeof r->log[0])) {
            r->log[r->n_log++] = p;
        }
    }
    MUST(r->ctx, keyformer_forget(r->ctx, r->seq, ev, n_ev));
    CHECK(seq_length(r->ctx, r->seq) <= KF_SIM_BUDGET, "length %d over the budget", seq_length(r->ctx, r->seq));
}

static keyformer_context *new_keyformer_context(uint64_t seed) {
    keyformer_params p;
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    MUST(NULL, keyformer_default_params(&p));
    kf_keyformer_params(&p, seed);
    return new_context(&p);
}

/* start sets r up to drive sequence seq of ctx, or of a new context when ctx is NULL. */
static void start_in(kf_run *r, keyformer_context *ctx, uint64_t seed, int32_t seq) {
    memset(r, 0, sizeof *r);
    r->ctx = ctx ? ctx : new_keyformer_context(seed);
    r->seq = seq;
    kf_sim_init(&r->sim, 0x5eed);
}

static void start(kf_run *r, uint64_t seed, int32_t seq) { start_in(r, NULL, seed, seq); }

/* A whole run: the prompt, then every generated token. */
static void run_all(kf_run *r) {
    int i;
    decode(r, KF_SIM_PROMPT);
    for (i = 0; i < KF_SIM_STEPS; i++) {
        decode(r, 1);
    }
}

static void *run_thread(void *arg) {
    run_all((kf_run *)arg);
    return NULL;
}

#define KF_THREADS 4

static int same_log(const kf_run *a, const kf_run *b) {
    return a->n_log == b->n_log && memcmp(a->log, b->log, sizeof a->log[0] * (size_t)a->n_log) == 0;
}

/* Threads 0..KF_THREADS-1 drive sequences of one shared context, threads KF_THREADS.. a context
 * each, all at once. */
static void test_threads(void) {
    static kf_run alone[KF_THREADS], together[KF_THREADS], own[KF_THREADS];
    keyformer_context *a = new_keyformer_context(9), *b = new_keyformer_context(9);
    pthread_t th[2 * KF_THREADS];
    int i;
    for (i = 0; i < KF_THREADS; i++) {
        start_in(&alone[i], a, 9, 10 + i);
        run_all(&alone[i]);
    }
    for (i = 0; i < KF_THREADS; i++) {
        start_in(&together[i], b, 9, 10 + i);
        start(&own[i], 9, 10 + i);
    }
    for (i = 0; i < 2 * KF_THREADS; i++) {
        kf_run *r = i < KF_THREADS ? &together[i] : &own[i - KF_THREADS];
        if (pthread_create(&th[i], NULL, run_thread, r) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (i = 0; i < 2 * KF_THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    for (i = 0; i < KF_THREADS; i++) {
        CHECK(alone[i].n_log == KF_SIM_PROMPT - KF_SIM_BUDGET + KF_SIM_STEPS, "sequence %d: %d evictions", 10 + i,
              alone[i].n_log);
        CHECK(same_log(&alone[i], &together[i]), "sequence %d: threads on one context changed the evictions",
              10 + i);
        CHECK(same_log(&alone[i], &own[i]), "sequence %d: threads on contexts of their own changed the evictions",
              10 + i);
        MUST(own[i].ctx, keyformer_context_free(own[i].ctx));
    }
    MUST(a, keyformer_context_free(a));
    MUST(b, keyformer_context_free(b));
}

static uint8_t *save(kf_run *r, size_t *size) {
    size_t need = 0, written = 0;
    uint8_t *buf;
    MUST(r->ctx, keyformer_state_size(r->ctx, r->seq, &need));
    buf = (uint8_t *)malloc(need);
    MUST(r->ctx, keyformer_state_save(r->ctx, r->seq, buf, need, &written));
    CHECK(written == need, "state_save wrote %zu of %zu bytes", written, need);
    *size = written;
    return buf;
}

static void test_keyformer(void) {
    static kf_run a, b, d, e;
    uint8_t *state, *sd, *se;
    size_t size, nd, ne;
    int i;

    start(&a, 42, 0);
    start(&b, 42, 0);
    decode(&a, KF_SIM_PROMPT);
    decode(&b, KF_SIM_PROMPT);
    CHECK(a.n_log == KF_SIM_PROMPT - KF_SIM_BUDGET, "%d prefill evictions", a.n_log);
    for (i = 0; i < KF_SIM_STEPS; i++) {
        decode(&a, 1);
        decode(&b, 1);
        CHECK(seq_length(a.ctx, 0) == KF_SIM_BUDGET, "step %d: length %d", i + 1, seq_length(a.ctx, 0));
    }
    CHECK(a.n_log == KF_SIM_PROMPT - KF_SIM_BUDGET + KF_SIM_STEPS, "%d evictions in all", a.n_log);
    CHECK(same_log(&a, &b), "same seed, different evictions");

    /* save half way, load into another context and sequence id, continue both identically */
    start(&d, 42, 0);
    start(&e, 42, 5);
    decode(&d, KF_SIM_PROMPT);
    for (i = 0; i < KF_SIM_STEPS / 2; i++) {
        decode(&d, 1);
    }
    state = save(&d, &size);
    MUST(e.ctx, keyformer_state_load(e.ctx, e.seq, state, size));
    CHECK(seq_length(e.ctx, e.seq) == KF_SIM_BUDGET, "loaded length %d", seq_length(e.ctx, e.seq));
    e.sim = d.sim;
    e.n_log = d.n_log;
    memcpy(e.log, d.log, sizeof d.log);
    for (; i < KF_SIM_STEPS; i++) {
        decode(&d, 1);
        decode(&e, 1);
    }
    CHECK(same_log(&d, &e), "the loaded state continued differently");
    CHECK(same_log(&a, &d), "a run that was saved half way differs from an uninterrupted one");
    sd = save(&d, &nd);
    se = save(&e, &ne);
    CHECK(nd == ne && memcmp(sd, se, nd) == 0, "final states differ");

    /* reset forgets the sequence */
    MUST(e.ctx, keyformer_seq_reset(e.ctx, e.seq));
    CHECK(seq_length(e.ctx, e.seq) == 0, "length %d after reset", seq_length(e.ctx, e.seq));

    free(state);
    free(sd);
    free(se);
    MUST(a.ctx, keyformer_context_free(a.ctx));
    MUST(b.ctx, keyformer_context_free(b.ctx));
    MUST(d.ctx, keyformer_context_free(d.ctx));
    MUST(e.ctx, keyformer_context_free(e.ctx));
}

static int32_t wants(keyformer_context *ctx, int32_t layer, int32_t n_new) {
    int32_t w = -1;
    MUST(ctx, keyformer_wants_attention(ctx, 0, layer, n_new, &w));
    return w;
}

/* add_tokens adds n tokens to sequence 0 after the *next position (cells = positions). */
static void add_tokens(keyformer_context *ctx, int32_t *next, int32_t n) {
    int32_t cells[8], i;
    for (i = 0; i < n; i++) {
        cells[i] = *next + i;
    }
    MUST(ctx, keyformer_add_cells(ctx, 0, cells, cells, n));
    *next += n;
}

static void test_schedule(void) {
    keyformer_params p;
    keyformer_context *ctx;
    int32_t layers[2] = {3, 1}, next = 0, w = 0;
    size_t v1 = offsetof(keyformer_params, observe_layer_stride);

    /* A version 1 host: its struct ends before the schedule; nothing past it is written, and the
     * context reads every layer at every decode. */
    memset(&p, 0x5a, sizeof p);
    p.size = (uint32_t)v1;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.observe_layer_stride == 0x5a5a5a5a && p.evict_slack == 0x5a5a5a5a, "default_params wrote past a v1 size");
    p.n_layer = 4;
    p.n_head = p.n_head_kv = 2;
    ctx = new_context(&p);
    MUST(ctx, keyformer_set_prompt_length(ctx, 0, 4));
    add_tokens(ctx, &next, 4);
    add_tokens(ctx, &next, 1);
    CHECK(wants(ctx, 3, 1) == 1 && wants(ctx, 0, 1) == 1, "a v1 context reads every layer of every decode");
    MUST(ctx, keyformer_context_free(ctx));

    /* Version 2: layers 1 and 3 (the list is copied), every 2nd generated token. */
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.observe_layer_stride == 2 && p.observe_decode_stride == 8 && p.evict_slack == 16 && p.n_observe_layers == 0,
          "defaults: layer stride %d, decode stride %d, slack %d", p.observe_layer_stride, p.observe_decode_stride,
          p.evict_slack);
    p.n_layer = 4;
    p.n_head = p.n_head_kv = 2;
    p.observe_layers = layers;
    p.n_observe_layers = 2;
    p.observe_decode_stride = 2;
    ctx = new_context(&p);
    layers[0] = 0;
    next = 0;
    MUST(ctx, keyformer_set_prompt_length(ctx, 0, 6));
    add_tokens(ctx, &next, 3);
    CHECK(wants(ctx, 1, 3) == 1 && wants(ctx, 3, 3) == 1 && wants(ctx, 0, 3) == 0 && wants(ctx, 2, 3) == 0,
          "a prompt chunk reads the listed layers only");
    add_tokens(ctx, &next, 1);
    CHECK(wants(ctx, 1, 1) == 1, "a single prompt token is read");
    add_tokens(ctx, &next, 2);
    add_tokens(ctx, &next, 1); /* generated token 1 */
    CHECK(wants(ctx, 1, 1) == 0, "generated token 1 read with decode stride 2");
    add_tokens(ctx, &next, 1); /* generated token 2 */
    CHECK(wants(ctx, 1, 1) == 1 && wants(ctx, 0, 1) == 0, "generated token 2: layers 1 and 3");
    CHECK(keyformer_wants_attention(ctx, 0, 4, 1, &w) == KEYFORMER_ERR_INVALID_ARGUMENT, "layer out of range");
    CHECK(keyformer_wants_attention(ctx, 0, 1, 0, &w) == KEYFORMER_ERR_INVALID_ARGUMENT, "n_new 0");
    CHECK(keyformer_wants_attention(ctx, 0, 1, 1, NULL) == KEYFORMER_ERR_INVALID_ARGUMENT, "wanted NULL");
    MUST(ctx, keyformer_context_free(ctx));

    /* Streaming reads no attention. */
    p.policy = KEYFORMER_POLICY_STREAMING;
    p.n_observe_layers = 0;
    p.observe_layers = NULL;
    ctx = new_context(&p);
    next = 0;
    add_tokens(ctx, &next, 5);
    CHECK(wants(ctx, 0, 5) == 0, "streaming reads no attention");
    MUST(ctx, keyformer_context_free(ctx));

    /* Bad schedules: an error naming the field, no context. */
    {
        struct {
            int32_t stride, n, decode, slack;
            const int32_t *list;
            const char *field;
        } bad[] = {
            {-5, 0, 1, 0, NULL, "observe_layer_stride"},
            {1, 2, 1, 0, NULL, "observe_layers"},
            {1, -1, 1, 0, NULL, "n_observe_layers"},
            {1, 1, 1, 0, &layers[0] /* 0 */, NULL},
            {1, 0, -3, 0, NULL, "observe_decode_stride"},
            {1, 0, 1, -1, NULL, "evict_slack"},
        };
        size_t i;
        int32_t dup[2] = {2, 2};
        p.policy = KEYFORMER_POLICY_KEYFORMER;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            keyformer_context *c = (keyformer_context *)&failures; /* must come back NULL */
            p.observe_layer_stride = bad[i].stride;
            p.n_observe_layers = bad[i].n;
            p.observe_layers = bad[i].list;
            p.observe_decode_stride = bad[i].decode;
            p.evict_slack = bad[i].slack;
            if (bad[i].field == NULL) { /* a valid one, then the same list with a duplicate */
                MUST(NULL, keyformer_context_new(&p, &c));
                MUST(c, keyformer_context_free(c));
                p.observe_layers = dup;
                p.n_observe_layers = 2;
                bad[i].field = "observe_layers";
            }
            CHECK(keyformer_context_new(&p, &c) == KEYFORMER_ERR_INVALID_ARGUMENT && c == NULL &&
                      strstr(keyformer_last_error(NULL), bad[i].field) != NULL,
                  "bad schedule %d: %s", (int)i, keyformer_last_error(NULL));
        }
    }
}

/* API version 4: the ranking options (off by default, left alone for a version 2 host's size) and
 * keydiff, which reads keys: the token whose key points elsewhere outlives the typical ones. */
static void test_keydiff(void) {
    keyformer_params p;
    keyformer_context *ctx;
    keyformer_eviction ev[8];
    float keys[8 * 2 * 4];
    int32_t next = 0, n = 0, i;
    size_t v2 = offsetof(keyformer_params, rank_mean_attention);

    memset(&p, 0x5a, sizeof p);
    p.size = (uint32_t)v2;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.rank_span == 0x5a5a5a5a, "default_params wrote past a v2 size");
    CHECK(p.policy == KEYFORMER_POLICY_KEYFORMER, "a version 3 host keeps Keyformer as the default, got %d", p.policy);
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.rank_mean_attention == 0 && p.rank_span == 0 && p.rank_keep_sinks == 0, "ranking defaults: %d %d %d",
          p.rank_mean_attention, p.rank_span, p.rank_keep_sinks);
    CHECK(p.policy == KEYFORMER_POLICY_KEYDIFF, "the default policy is %d, want KeyDiff", p.policy);
    p.n_layer = 2;
    p.n_head = 4;
    p.n_head_kv = 2;
    p.budget_tokens = 4;
    p.window_tokens = 1;
    p.observe_layer_stride = 1;
    ctx = new_context(&p);
    MUST(ctx, keyformer_set_prompt_length(ctx, 0, 8));
    add_tokens(ctx, &next, 8);
    CHECK(wants(ctx, 1, 8) == 1, "keydiff wants the keys of a prompt chunk");
    for (i = 0; i < 8 * 2 * 4; i++) {
        keys[i] = (i % 4 == (i / 8 == 5 ? 1 : 0)) ? 3.0f : 0.01f * (float)(i % 7); /* token 5 points elsewhere */
    }
    keyformer_keys k = {.size = sizeof k, .n_rows = 8, .n_heads = 2, .head_dim = 4, .row_stride = 8, .head_stride = 4,
                        .data = keys};
    MUST(ctx, keyformer_observe_keys(ctx, 0, 1, &k));
    MUST(ctx, keyformer_plan(ctx, 0, ev, 8, &n));
    CHECK(n == 4, "keydiff plans %d evictions, want 4", n);
    for (i = 0; i < n; i++) {
        CHECK(ev[i].cell != 5, "the token with the unusual key is evicted");
    }
    k.n_heads = 4;
    CHECK(keyformer_observe_keys(ctx, 0, 1, &k) == KEYFORMER_ERR_INVALID_ARGUMENT &&
              strstr(keyformer_last_error(ctx), "KV heads") != NULL,
          "keys with n_head heads: %s", keyformer_last_error(ctx));
    k.n_heads = 2;
    keys[3] = NAN;
    CHECK(keyformer_observe_keys(ctx, 0, 1, &k) == KEYFORMER_ERR_INVALID_ATTENTION, "NaN keys");
    CHECK(keyformer_observe_keys(ctx, 0, 1, NULL) == KEYFORMER_ERR_INVALID_ARGUMENT, "NULL keys");
    k.size = 8;
    CHECK(keyformer_observe_keys(ctx, 0, 1, &k) == KEYFORMER_ERR_INVALID_ARGUMENT &&
              strstr(keyformer_last_error(ctx), "size") != NULL,
          "a keys size of 8: %s", keyformer_last_error(ctx));
    MUST(ctx, keyformer_context_free(ctx));

    p.rank_mean_attention = 1; /* keydiff reads no attention */
    ctx = (keyformer_context *)&failures;
    CHECK(keyformer_context_new(&p, &ctx) == KEYFORMER_ERR_INVALID_ARGUMENT && ctx == NULL &&
              strstr(keyformer_last_error(NULL), "rank_mean_attention") != NULL,
          "mean attention with keydiff: %s", keyformer_last_error(NULL));
    p.policy = KEYFORMER_POLICY_H2O;
    p.rank_span = -1;
    CHECK(keyformer_context_new(&p, &ctx) == KEYFORMER_ERR_INVALID_ARGUMENT &&
              strstr(keyformer_last_error(NULL), "rank_span") != NULL,
          "span -1: %s", keyformer_last_error(NULL));
    p.rank_span = 2;
    p.rank_keep_sinks = 3;
    CHECK(keyformer_context_new(&p, &ctx) == KEYFORMER_ERR_INVALID_ARGUMENT &&
              strstr(keyformer_last_error(NULL), "rank_keep_sinks") != NULL,
          "keep sinks 3: %s", keyformer_last_error(NULL));
}

/* API version 6: observe_prompt_rows (0 by default, left alone for a version 4 host's size) reads
 * a prompt chunk's last rows only: rows before them are never read, NaN or not. */
static void test_prompt_rows(void) {
    keyformer_params p;
    keyformer_context *ctx;
    keyformer_attention a;
    float att[4 * 4];
    int32_t next = 0, i;
    size_t v4 = offsetof(keyformer_params, observe_prompt_rows);

    memset(&p, 0x5a, sizeof p);
    p.size = (uint32_t)v4;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.observe_prompt_rows == 0x5a5a5a5a5a5a5a5aLL, "default_params wrote past a v4 size");
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    MUST(NULL, keyformer_default_params(&p));
    CHECK(p.observe_prompt_rows == 0, "observe_prompt_rows defaults to %lld", (long long)p.observe_prompt_rows);
    p.policy = KEYFORMER_POLICY_H2O;
    p.n_layer = 1;
    p.n_head = 1;
    p.n_head_kv = 1;
    p.budget_tokens = 2;
    p.window_tokens = 1;
    p.observe_prompt_rows = 2;
    ctx = new_context(&p);
    add_tokens(ctx, &next, 4);
    for (i = 0; i < 16; i++) { /* row r attends to cells 0..r alike; rows 0 and 1 are NaN */
        att[i] = i / 4 < 2 ? NAN : (i % 4 <= i / 4 ? 1.0f / (float)(i / 4 + 1) : 0.0f);
    }
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = 4;
    a.n_heads = 1;
    a.n_cols = 4;
    a.row_stride = 4;
    a.head_stride = 16;
    a.data = att;
    MUST(ctx, keyformer_observe(ctx, 0, 0, &a));
    MUST(ctx, keyformer_context_free(ctx));

    p.observe_prompt_rows = 0; /* every row: the NaN rows are read */
    ctx = new_context(&p);
    next = 0;
    add_tokens(ctx, &next, 4);
    CHECK(keyformer_observe(ctx, 0, 0, &a) == KEYFORMER_ERR_INVALID_ATTENTION, "NaN rows read with observe_prompt_rows 0");
    MUST(ctx, keyformer_context_free(ctx));

    p.observe_prompt_rows = -1;
    ctx = (keyformer_context *)&failures;
    CHECK(keyformer_context_new(&p, &ctx) == KEYFORMER_ERR_INVALID_ARGUMENT && ctx == NULL &&
              strstr(keyformer_last_error(NULL), "observe_prompt_rows") != NULL,
          "observe_prompt_rows -1: %s", keyformer_last_error(NULL));
}

/* Each thread fails on its own sequence of one shared context (and creates contexts with its own
 * bad n_layer) many times over, and reads back its own message every time: other threads' failures
 * neither replace nor free it (ASan sees a read of a freed message). */
#define KF_ERROR_ROUNDS 2000

static keyformer_context *shared_ctx;
static int error_mismatches[KF_THREADS];

static void *fail_thread(void *arg) {
    int t = (int)(intptr_t)arg, i;
    char want[32];
    for (i = 0; i < KF_ERROR_ROUNDS; i++) {
        int32_t n = -(t * KF_ERROR_ROUNDS + i + 1);
        keyformer_params p;
        keyformer_context *c = NULL;
        sprintf(want, "%d", (int)n);
        if (keyformer_set_prompt_length(shared_ctx, t, n) != KEYFORMER_ERR_INVALID_ARGUMENT ||
            strstr(keyformer_last_error(shared_ctx), want) == NULL) {
            error_mismatches[t]++;
        }
        memset(&p, 0, sizeof p);
        p.size = sizeof p;
        keyformer_default_params(&p);
        p.n_layer = n;
        p.n_head = p.n_head_kv = 1;
        if (keyformer_context_new(&p, &c) != KEYFORMER_ERR_INVALID_ARGUMENT ||
            strstr(keyformer_last_error(NULL), want) == NULL) {
            error_mismatches[t]++;
        }
    }
    return NULL;
}

static void test_errors_per_thread(void) {
    pthread_t th[KF_THREADS];
    int i;
    shared_ctx = new_keyformer_context(3);
    for (i = 0; i < KF_THREADS; i++) {
        if (pthread_create(&th[i], NULL, fail_thread, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (i = 0; i < KF_THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK(error_mismatches[i] == 0, "thread %d read another thread's message %d times", i, error_mismatches[i]);
    }
    CHECK(keyformer_last_error(shared_ctx)[0] == 0, "the main thread has no failure of its own on the context");
    MUST(shared_ctx, keyformer_context_free(shared_ctx));
}

int main(void) {
    test_versions();
    test_h2o_exact();
    test_keyformer();
    test_threads();
    test_errors_per_thread();
    test_schedule();
    test_keydiff();
    test_prompt_rows();
    if (failures) {
        fprintf(stderr, "c_consumer: %d check(s) failed\n", failures);
        return 1;
    }
    printf("c_consumer: ok\n");
    return 0;
}
