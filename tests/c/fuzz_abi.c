/* libFuzzer target: libkeyformer.so's exported C functions driven by arbitrary bytes.
 *
 * The input is a little program: first the context's parameters (struct size, policy, shape,
 * budget, schedule, ranking options; floats taken raw, so NaN and infinities reach the checks),
 * then operations (add cells, observe attention or keys of any shape and values, plan and forget,
 * state save and load of the saved or of fuzzed bytes, reset, the llama.cpp mirror calls on an
 * unattached context, NULL arguments), each with fuzzed arguments within the caller's side of the
 * contract (buffers as long as their stated extents). What it checks, besides ASan and UBSan:
 *  - every status is a documented one, and a failed call leaves a message in keyformer_last_error;
 *  - a plan that was forgotten leaves a sequence within its budget and slack (token budgets);
 *  - a saved state loads back into another sequence and saves the same bytes there;
 *  - nothing crashes: a Go panic would abort the process.
 * Built by `make fuzz-c` with clang -fsanitize=fuzzer,address,undefined against build/lib. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keyformer.h"

#define CHECK(cond, ...)                                                                                         \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "fuzz_abi: %s:%d: %s: ", __FILE__, __LINE__, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                                                        \
            fputc('\n', stderr);                                                                                 \
            abort();                                                                                             \
        }                                                                                                        \
    } while (0)

struct input {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct input *in) {
    if (in->n == 0) return 0;
    in->n--;
    return *in->p++;
}

static int32_t i32(struct input *in, int32_t lo, int32_t hi) { /* in [lo, hi] */
    uint32_t v = (uint32_t)u8(in) | (uint32_t)u8(in) << 8;
    return lo + (int32_t)(v % (uint32_t)(hi - lo + 1));
}

static float f32_raw(struct input *in) {
    uint32_t v = (uint32_t)u8(in) | (uint32_t)u8(in) << 8 | (uint32_t)u8(in) << 16 | (uint32_t)u8(in) << 24;
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* A value for an attention or key element: mostly valid probabilities, sometimes anything. */
static float element(struct input *in) {
    uint8_t k = u8(in);
    if (k < 200) return (float)k / 199.0f;
    if (k < 250) return (float)u8(in) / 255.0f * 0.01f;
    return f32_raw(in);
}

/* s: a status just returned by a call on ctx. */
static void check_status(keyformer_context *ctx, keyformer_status s, const char *call) {
    CHECK(s >= KEYFORMER_OK && s <= KEYFORMER_ERR_INTERNAL, "%s returned %d", call, (int)s);
    CHECK(s != KEYFORMER_ERR_INTERNAL, "%s: internal error (a recovered panic): %s", call, keyformer_last_error(ctx));
    CHECK(keyformer_status_string(s) != NULL && keyformer_status_string(s)[0] != '\0', "%s", call);
    if (s != KEYFORMER_OK && s != KEYFORMER_ERR_BUFFER_TOO_SMALL) {
        const char *msg = keyformer_last_error(ctx);
        CHECK(msg != NULL && msg[0] != '\0', "%s failed (%s) without a message", call, keyformer_status_string(s));
    }
}

#define CALL(ctx, expr) check_status((ctx), (expr), #expr)

static void params_from(struct input *in, keyformer_params *p) {
    /* each version's size, and two no version had */
    static const uint32_t sizes[] = {sizeof(keyformer_params), offsetof(keyformer_params, observe_layer_stride),
                                     offsetof(keyformer_params, rank_mean_attention),
                                     offsetof(keyformer_params, observe_prompt_rows), 0, 7};
    memset(p, 0, sizeof *p);
    p->size = sizeof *p;
    CALL(NULL, keyformer_default_params(p));
    p->policy = i32(in, -1, 8);
    p->granularity = i32(in, -1, 2);
    p->n_layer = i32(in, 0, 4);
    p->n_head_kv = i32(in, 0, 3);
    p->n_head = p->n_head_kv * i32(in, 0, 2);
    uint8_t mode = u8(in);
    p->budget_tokens = mode & 1 ? i32(in, -1, 48) : 0;
    if (mode & 2) p->budget_fraction = mode & 4 ? f32_raw(in) : (float)u8(in) / 255.0f;
    if (mode & 8) p->window_tokens = i32(in, -1, 24);
    if (mode & 16) p->window_fraction = (float)u8(in) / 255.0f;
    if (mode & 32) p->n_sinks = i32(in, -1, 8);
    if (mode & 64) p->tau_init = f32_raw(in);
    if (mode & 128) p->evict_slack = i32(in, -1, 8);
    uint8_t more = u8(in);
    p->noise = more & 1;
    p->seed = u8(in);
    if (more & 2) p->observe_layer_stride = i32(in, -1, 3);
    if (more & 4) p->observe_decode_stride = i32(in, -1, 9);
    p->rank_mean_attention = more & 8 ? 1 : 0;
    p->rank_span = more & 16 ? i32(in, -1, 4) : 0;
    p->rank_keep_sinks = more & 32 ? 1 : 0;
    if (more & 64) p->observe_prompt_rows = i32(in, -1, 4);
    if (more & 128) p->size = sizes[u8(in) % (sizeof sizes / sizeof sizes[0])];
}

/* The extent, in elements, of an n_rows x n_heads x n_cols block at the given strides. */
static size_t extent(int32_t rows, int32_t heads, int32_t cols, int64_t row_stride, int64_t head_stride) {
    if (rows <= 0 || heads <= 0 || cols <= 0) return 1;
    return (size_t)((rows - 1) * row_stride + (heads - 1) * head_stride + cols);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct input in = {data, size};
    keyformer_params p;
    params_from(&in, &p);
    keyformer_context *ctx = (keyformer_context *)1;
    keyformer_status s = keyformer_context_new(&p, &ctx);
    check_status(NULL, s, "keyformer_context_new");
    if (s != KEYFORMER_OK) {
        CHECK(ctx == NULL, "a failed keyformer_context_new left *out set");
        return 0;
    }
    int32_t next_pos[4] = {0}, next_cell = 0;
    uint8_t *saved = NULL;
    size_t saved_n = 0;
    for (int op = 0; op < 64 && in.n > 0; op++) {
        int32_t seq = i32(&in, 0, 3);
        switch (u8(&in) % 14) {
        case 0: { /* add cells: fresh cells at increasing positions, sometimes a bad one */
            int32_t n = i32(&in, 0, 12), cells[12], pos[12];
            for (int32_t i = 0; i < n; i++) {
                cells[i] = next_cell++;
                pos[i] = next_pos[seq]++;
            }
            if (n > 0 && u8(&in) < 16) cells[i32(&in, 0, n - 1)] = i32(&in, -2, next_cell);
            if (n > 0 && u8(&in) < 16) pos[i32(&in, 0, n - 1)] = i32(&in, -2, next_pos[seq]);
            CALL(ctx, keyformer_add_cells(ctx, seq, cells, pos, n));
            break;
        }
        case 1: { /* attention of any shape and stride, columns mapped to cells or not */
            keyformer_attention a = {.size = sizeof a};
            a.n_rows = i32(&in, 0, 4);
            a.n_heads = u8(&in) < 230 ? p.n_head : i32(&in, -1, 6);
            a.n_cols = i32(&in, 0, 40);
            a.row_stride = a.n_cols + i32(&in, 0, 3);
            a.head_stride = a.row_stride * (a.n_rows > 0 ? a.n_rows : 1);
            if (u8(&in) < 8) a.row_stride = i32(&in, -1, 2);
            if (u8(&in) < 16) a.size = (uint32_t)i32(&in, 0, sizeof a + 8);
            a.logits = u8(&in) < 32;
            size_t ext = a.row_stride >= 0 && a.head_stride >= 0 && a.n_cols >= 0
                             ? extent(a.n_rows, a.n_heads, a.n_cols, a.row_stride, a.head_stride)
                             : 1;
            float *buf = malloc(ext * sizeof *buf);
            int32_t *cells = a.n_cols > 0 ? malloc((size_t)a.n_cols * sizeof *cells) : NULL;
            for (size_t i = 0; i < ext; i++) buf[i] = element(&in);
            for (int32_t j = 0; j < a.n_cols; j++) cells[j] = u8(&in) < 240 ? j : i32(&in, -2, next_cell + 2);
            a.data = u8(&in) < 250 ? buf : NULL;
            a.cells = u8(&in) < 128 ? cells : NULL;
            int32_t layer = i32(&in, -1, p.n_layer);
            if (u8(&in) < 8) {
                CALL(ctx, keyformer_observe(ctx, seq, layer, NULL));
            } else {
                CALL(ctx, keyformer_observe(ctx, seq, layer, &a));
            }
            free(cells);
            free(buf);
            break;
        }
        case 2: { /* keys */
            keyformer_keys k = {.size = sizeof k};
            k.n_rows = i32(&in, 0, 6);
            k.n_heads = u8(&in) < 230 ? p.n_head_kv : i32(&in, -1, 4);
            k.head_dim = i32(&in, 0, 8);
            k.head_stride = k.head_dim;
            k.row_stride = (int64_t)k.head_dim * (k.n_heads > 0 ? k.n_heads : 1);
            size_t ext = extent(k.n_rows, k.n_heads, k.head_dim, k.row_stride, k.head_stride);
            float *buf = malloc(ext * sizeof *buf);
            for (size_t i = 0; i < ext; i++) buf[i] = element(&in) * 4.0f - 2.0f;
            k.data = buf;
            CALL(ctx, keyformer_observe_keys(ctx, seq, i32(&in, -1, p.n_layer), &k));
            free(buf);
            break;
        }
        case 3: { /* plan, then forget what was planned (or a fuzzed list) */
            int32_t n = 0;
            keyformer_status st = keyformer_plan(ctx, seq, NULL, 0, &n);
            check_status(ctx, st, "keyformer_plan (count)");
            if (st != KEYFORMER_OK && st != KEYFORMER_ERR_BUFFER_TOO_SMALL) break;
            keyformer_eviction *ev = malloc(((size_t)n + 1) * sizeof *ev);
            int32_t m = -1;
            CALL(ctx, st = keyformer_plan(ctx, seq, ev, n, &m));
            if (st != KEYFORMER_OK) {
                free(ev);
                break;
            }
            CHECK(m == n, "the plan asked for %d entries and wrote %d", n, m);
            bool fuzzed = m > 0 && u8(&in) < 16;
            if (fuzzed) ev[i32(&in, 0, m - 1)].cell = i32(&in, -2, next_cell + 2);
            CALL(ctx, st = keyformer_forget(ctx, seq, ev, m));
            int32_t len = -1;
            CALL(ctx, keyformer_seq_length(ctx, seq, &len));
            if (st == KEYFORMER_OK && !fuzzed && p.granularity == KEYFORMER_GRANULARITY_SHARED && p.budget_tokens > 0 &&
                p.policy != KEYFORMER_POLICY_FULL) {
                int32_t slack = p.size > offsetof(keyformer_params, evict_slack) ? p.evict_slack : 0;
                CHECK(len <= p.budget_tokens + slack, "sequence %d holds %d tokens after its plan (budget %d, slack %d)",
                      seq, len, p.budget_tokens, slack);
            }
            free(ev);
            break;
        }
        case 4: { /* save, then load into another sequence, which saves the same bytes */
            size_t need = 0, wrote = 0;
            CALL(ctx, keyformer_state_size(ctx, seq, &need));
            free(saved);
            saved = malloc(need + 1);
            keyformer_status st = keyformer_state_save(ctx, seq, saved, need, &wrote);
            check_status(ctx, st, "keyformer_state_save");
            saved_n = st == KEYFORMER_OK ? wrote : 0;
            if (st != KEYFORMER_OK) break;
            int32_t other = (seq + 1) % 4;
            CALL(ctx, st = keyformer_state_load(ctx, other, saved, saved_n));
            CHECK(st == KEYFORMER_OK, "a saved state did not load: %s", keyformer_last_error(ctx));
            uint8_t *again = malloc(saved_n + 1);
            CALL(ctx, keyformer_state_save(ctx, other, again, saved_n, &wrote));
            CHECK(wrote == saved_n && memcmp(again, saved, saved_n) == 0, "state of %d and its copy in %d differ", seq,
                  other);
            free(again);
            if (next_pos[other] < next_pos[seq]) next_pos[other] = next_pos[seq];
            break;
        }
        case 5: { /* load fuzzed bytes, or the saved state with fuzzed bytes over it */
            size_t n = (size_t)i32(&in, 0, 256);
            uint8_t *buf = malloc(n + saved_n + 1);
            size_t len = 0;
            if (saved_n > 0 && u8(&in) < 160) {
                memcpy(buf, saved, saved_n);
                len = saved_n;
                for (size_t i = 0; i < n / 16 && len > 0; i++) buf[(size_t)i32(&in, 0, (int32_t)len - 1)] = u8(&in);
            } else {
                for (; len < n && in.n > 0; len++) buf[len] = u8(&in);
            }
            CALL(ctx, keyformer_state_load(ctx, seq, buf, len));
            free(buf);
            next_pos[seq] += 1 << 10; /* a loaded state may hold later positions */
            break;
        }
        case 6:
            CALL(ctx, keyformer_seq_reset(ctx, seq));
            break;
        case 7: {
            int32_t wanted = -1;
            CALL(ctx, keyformer_wants_attention(ctx, seq, i32(&in, -1, p.n_layer), i32(&in, -1, 8), &wanted));
            break;
        }
        case 8:
            CALL(ctx, keyformer_set_prompt_length(ctx, seq, i32(&in, -1, 64)));
            break;
        case 9: /* the llama.cpp mirror calls: this context is not attached, so each must refuse */
            CALL(ctx, keyformer_llama_seq_rm(ctx, i32(&in, -2, 4), i32(&in, -1, 64), i32(&in, -1, 64)));
            CALL(ctx, keyformer_llama_seq_add(ctx, seq, i32(&in, -1, 64), i32(&in, -1, 64), i32(&in, -64, 64)));
            CALL(ctx, keyformer_llama_seq_cp(ctx, seq, i32(&in, -1, 4), -1, -1));
            CALL(ctx, keyformer_llama_seq_keep(ctx, seq));
            CALL(ctx, keyformer_llama_sync(ctx, i32(&in, -1, 4)));
            break;
        case 10: {
            int32_t n = -1;
            CALL(ctx, keyformer_llama_apply(ctx, seq, &n));
            int32_t seqs[4] = {seq, seq, (seq + 1) % 4, i32(&in, -2, 5)};
            CALL(ctx, keyformer_llama_set_batch(ctx, seqs, i32(&in, -1, 4)));
            break;
        }
        case 11: /* NULL where a pointer is needed */
            CALL(ctx, keyformer_seq_length(ctx, seq, NULL));
            CALL(ctx, keyformer_plan(ctx, seq, NULL, 1, NULL));
            CALL(ctx, keyformer_add_cells(ctx, seq, NULL, NULL, 1));
            CALL(ctx, keyformer_state_size(ctx, seq, NULL));
            CALL(ctx, keyformer_forget(ctx, seq, NULL, 2));
            break;
        case 12: /* sequence ids out of range */
            CALL(ctx, keyformer_seq_reset(ctx, i32(&in, -3, 2) * 65536 + i32(&in, -1, 1)));
            break;
        default: {
            int32_t len = -1;
            CALL(ctx, keyformer_seq_length(ctx, seq, &len));
            break;
        }
        }
    }
    free(saved);
    CALL(ctx, keyformer_context_free(ctx));
    CHECK(keyformer_context_free(ctx) == KEYFORMER_ERR_INVALID_HANDLE, "a freed context was freed again");
    return 0;
}
