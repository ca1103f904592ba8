/* llama_host: a C llama.cpp host that uses keyformer through the C ABI (keyformer_llama_*), linked
 * against the pinned llama.cpp runtime of build/deps (libllama, libggml, libggml-base).
 *
 *   llama_host MODE LIB_DIR MODEL
 *
 * Modes (each a ctest test, see CMakeLists.txt):
 *   generate  SmolLM2 with budget 256 in a cache of budget + n_ubatch cells: a ~900-token prompt in
 *             n_ubatch chunks, then 32 greedy tokens, keyformer_llama_apply after every decode;
 *             checks the budget after each apply, then saves and restores the sequence
 *             (llama_state_seq_* + keyformer_state_save / keyformer_llama_restore) and checks that
 *             the next token's logits match the ones before the save.
 *   edits     a host that edits its own cache: prefix reuse after evictions (llama_memory_seq_rm
 *             mirrored by keyformer_llama_seq_rm), the apply that fails when it is not mirrored and
 *             keyformer_llama_sync repairing it, llama_memory_clear + keyformer_llama_clear.
 *   errors    flash attention on -> KEYFORMER_ERR_UNSUPPORTED naming flash attention; no cb_eval,
 *             apply before attach, a library that is not loaded, per-head granularity, the cache
 *             edits' sequence ids.
 *   chain     a host eval callback chained behind keyformer's (keyformer_llama_chain): it is asked
 *             about every node, sees the tensors it asked for (result_output, kq_soft_max-3) and
 *             only those, while keyformer keeps the budget.
 *   streams   two sequences in a cache of one KV stream per sequence (n_seq_max 2, kv_unified
 *             false), their prompts read side by side in each llama_decode and then generated
 *             together: each sequence within its budget, in its own stream, as llama.cpp holds it;
 *             llama_memory_seq_cp across the streams mirrored, and the copy evicting on its own.
 *   readme    the README snippet (readme_llama.c).
 *   bench     ns per ask through keyformer_llama_eval_callback (the asks of a real decode replayed)
 *             and ms per decoded token with no callback, an unattached one and keyformer's.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "keyformer.h"
#include "llama.h"
#include "readme_llama.h"

#define BUDGET 256
#define UBATCH 128
#define N_GEN 32

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        fprintf(stderr, "llama_host: FAIL (%s:%d): ", __FILE__, __LINE__);                                             \
        fprintf(stderr, __VA_ARGS__);                                                                                  \
        fputc('\n', stderr);                                                                                           \
        exit(1);                                                                                                       \
    } while (0)
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) FAIL(__VA_ARGS__);                                                                                \
    } while (0)
#define KF_OK(kf, call)                                                                                                \
    do {                                                                                                               \
        keyformer_status st_ = (call);                                                                                 \
        CHECK(st_ == KEYFORMER_OK, "%s: %s: %s", #call, keyformer_status_string(st_), keyformer_last_error(kf));       \
    } while (0)

static const char PARAGRAPH[] =
    "The lighthouse on Gull Point was kept for forty years by Marta Lind, who wrote the weather in a green "
    "ledger every morning at six. Ships from the northern ports passed the point in autumn, loaded with "
    "timber and salt fish, and Marta counted their lights from the gallery. When the storm of 1911 broke the "
    "great lens, she kept a paraffin lamp burning in the window for eleven nights until the glass came from "
    "the mainland. ";
static const char QUESTION[] = "Who kept the lighthouse on Gull Point, and what did she write every morning?";

static int n_threads(void) {
    const char *env = getenv("KEYFORMER_TEST_THREADS");
    if (env != NULL && atoi(env) > 0) {
        return atoi(env);
    }
    return 1; /* spinning workers of several threads stall badly on a loaded machine (CI) */
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static struct llama_model *load_model(const char *lib_dir, const char *path) {
    llama_log_set(quiet_log, NULL);
    ggml_backend_load_all_from_path(lib_dir);
    CHECK(ggml_backend_dev_count() > 0, "no ggml backend in %s", lib_dir);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    CHECK(model != NULL, "cannot load %s", path);
    return model;
}

/* The default schedule's evict_slack: after a generated token a sequence holds at most budget +
 * slack tokens. */
static int32_t slack;

static keyformer_context *new_kf_policy(const struct llama_model *model, int32_t budget, keyformer_granularity g,
                                        keyformer_policy policy) {
    keyformer_params p = {.size = sizeof p};
    KF_OK(NULL, keyformer_default_params(&p));
    slack = p.evict_slack;
    p.policy = policy;
    p.granularity = g;
    p.n_layer = llama_model_n_layer(model);
    p.n_head = llama_model_n_head(model);
    p.n_head_kv = llama_model_n_head_kv(model);
    p.budget_tokens = budget;
    p.n_new_tokens = N_GEN;
    p.seed = 7;
    keyformer_context *kf = NULL;
    KF_OK(NULL, keyformer_context_new(&p, &kf));
    return kf;
}

static keyformer_context *new_kf(const struct llama_model *model, int32_t budget, keyformer_granularity g) {
    return new_kf_policy(model, budget, g, KEYFORMER_POLICY_KEYFORMER);
}

/* The element type of the K and V caches new_lctx creates (llama.cpp's default, f16, unless a
 * mode sets another). */
static enum ggml_type cache_type = GGML_TYPE_F16;

/* A context of n_ctx cells; cb NULL: no eval callback. */
static struct llama_context *new_lctx(struct llama_model *model, uint32_t n_ctx, enum llama_flash_attn_type fa,
                                      ggml_backend_sched_eval_callback cb, void *ud) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = cp.n_ubatch = UBATCH;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = n_threads();
    cp.flash_attn_type = fa;
    cp.type_k = cp.type_v = cache_type;
    cp.cb_eval = cb;
    cp.cb_eval_user_data = ud;
    struct llama_context *lctx = llama_init_from_model(model, cp);
    CHECK(lctx != NULL, "llama_init_from_model failed");
    return lctx;
}

/* The prompt: the paragraph reps times and the question, in the model's chat template. */
static llama_token *tokenize(const struct llama_model *model, int reps, int32_t *n_out) {
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    size_t len = (size_t)reps * strlen(PARAGRAPH) + strlen(QUESTION) + 1;
    char *content = malloc(len);
    CHECK(content != NULL, "out of memory");
    content[0] = 0;
    for (int i = 0; i < reps; i++) {
        strcat(content, PARAGRAPH);
    }
    strcat(content, QUESTION);
    llama_chat_message msg = {"user", content};
    const char *tmpl = llama_model_chat_template(model, NULL);
    int32_t cap = 2 * (int32_t)len + 256;
    char *text = malloc((size_t)cap);
    CHECK(text != NULL, "out of memory");
    int32_t n = tmpl != NULL ? llama_chat_apply_template(tmpl, &msg, 1, true, text, cap) : -1;
    if (n < 0 || n >= cap) { /* no usable template: the plain text */
        n = (int32_t)strlen(content);
        memcpy(text, content, (size_t)n + 1);
    }
    llama_token *toks = malloc(sizeof *toks * ((size_t)n + 16));
    CHECK(toks != NULL, "out of memory");
    int32_t nt = llama_tokenize(vocab, text, n, toks, n + 16, true, true);
    CHECK(nt > 0, "llama_tokenize: %d", nt);
    free(text);
    free(content);
    *n_out = nt;
    return toks;
}

static llama_token argmax_of(const float *logits, int32_t n_vocab) {
    llama_token best = 0;
    for (llama_token t = 1; t < n_vocab; t++) {
        if (logits[t] > logits[best]) {
            best = t;
        }
    }
    return best;
}

llama_token readme_argmax(struct llama_context *lctx) {
    int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(lctx)));
    return argmax_of(llama_get_logits_ith(lctx, -1), n_vocab);
}

static int32_t seq_length(keyformer_context *kf) {
    int32_t n = -1;
    KF_OK(kf, keyformer_seq_length(kf, 0, &n));
    return n;
}

/* Decodes toks[0..n) in UBATCH chunks, applying (and checking the budget) after each; returns the
 * cells evicted. */
static int32_t feed(struct llama_context *lctx, keyformer_context *kf, llama_token *toks, int32_t n, int32_t budget) {
    int32_t evicted = 0;
    for (int32_t i = 0; i < n; i += UBATCH) {
        int32_t m = n - i < UBATCH ? n - i : UBATCH;
        int rc = llama_decode(lctx, llama_batch_get_one(toks + i, m));
        CHECK(rc == 0, "llama_decode of tokens [%d, %d) returned %d (no room in the cache: were cells freed?)", i,
              i + m, rc);
        int32_t ev = -1;
        KF_OK(kf, keyformer_llama_apply(kf, 0, &ev));
        evicted += ev;
        int32_t len = seq_length(kf);
        CHECK(len <= budget, "after the decode of tokens [%d, %d): %d tokens > budget %d", i, i + m, len, budget);
    }
    return evicted;
}

/* Generates up to n_gen greedy tokens into text; returns the count. With stop_at_eog it stops at the end of
 * generation; without, it decodes the end token too (the edits checks need every token decoded whatever the
 * model chooses: ggml's kernels differ by CPU, and so do the last bits of the logits). */
static int32_t generate(struct llama_context *lctx, keyformer_context *kf, int32_t n_gen, bool stop_at_eog,
                        int32_t budget, char *text, size_t cap, int32_t *evicted) {
    const struct llama_vocab *vocab = llama_model_get_vocab(llama_get_model(lctx));
    size_t used = 0;
    int32_t i;
    text[0] = 0;
    for (i = 0; i < n_gen; i++) {
        llama_token tok = readme_argmax(lctx);
        if (stop_at_eog && llama_vocab_is_eog(vocab, tok)) {
            break;
        }
        char piece[64];
        int32_t np = llama_token_to_piece(vocab, tok, piece, (int32_t)sizeof piece, 0, false);
        if (np > 0 && used + (size_t)np < cap) {
            memcpy(text + used, piece, (size_t)np);
            used += (size_t)np;
            text[used] = 0;
        }
        int rc = llama_decode(lctx, llama_batch_get_one(&tok, 1));
        CHECK(rc == 0, "llama_decode of generated token %d returned %d", i, rc);
        int32_t ev = -1;
        KF_OK(kf, keyformer_llama_apply(kf, 0, &ev));
        *evicted += ev;
        int32_t len = seq_length(kf);
        CHECK(len <= budget + slack, "after generated token %d: %d tokens > budget %d + slack %d", i, len, budget,
              slack);
    }
    return i;
}

static int mode_generate(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 10, &n_prompt);
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    struct llama_context *lctx =
        new_lctx(model, BUDGET + UBATCH, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, kf);
    uint32_t n_ctx = llama_n_ctx(lctx);
    printf("llama_host: prompt %d tokens, budget %d, n_ctx %u, n_ubatch %d\n", n_prompt, BUDGET, n_ctx, UBATCH);
    CHECK((uint32_t)n_prompt > n_ctx, "the prompt (%d tokens) must be longer than the cache (%u cells)", n_prompt,
          n_ctx);
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    KF_OK(kf, keyformer_set_prompt_length(kf, 0, n_prompt));

    double t0 = now_s();
    int32_t evicted = feed(lctx, kf, prompt, n_prompt, BUDGET);
    double t1 = now_s();
    char text[4096];
    int32_t n_gen = generate(lctx, kf, N_GEN, true, BUDGET, text, sizeof text, &evicted);
    double t2 = now_s();
    CHECK(n_gen > 0, "no token generated");
    int32_t kept = seq_length(kf);
    printf("llama_host: text: %s\n", text);
    printf("llama_host: evicted %d cells, kept %d of %d tokens (prompt %d + generated %d); prefill %.0f tokens/s, "
           "decode %.1f ms/token\n",
           evicted, kept, n_prompt + n_gen, n_prompt, n_gen, n_prompt / (t1 - t0), 1e3 * (t2 - t1) / n_gen);
    CHECK(kept >= BUDGET && kept <= BUDGET + slack, "kept %d tokens, want the budget %d + at most %d", kept, BUDGET,
          slack);
    CHECK(evicted == n_prompt + n_gen - kept, "evicted %d, want %d", evicted, n_prompt + n_gen - kept);
    llama_memory_t mem = llama_get_memory(lctx);
    CHECK(llama_memory_seq_pos_max(mem, 0) == n_prompt + n_gen - 1, "llama.cpp's last position %d, want %d",
          (int)llama_memory_seq_pos_max(mem, 0), n_prompt + n_gen - 1);

    /* Save the sequence (llama.cpp + keyformer), decode one token for reference logits, restore
     * into the cleared cache, decode the same token: the same logits, the same budget. */
    size_t lsize = llama_state_seq_get_size(lctx, 0);
    uint8_t *lstate = malloc(lsize);
    CHECK(lstate != NULL && llama_state_seq_get_data(lctx, lstate, lsize, 0) == lsize, "llama_state_seq_get_data");
    size_t ksize = 0, written = 0;
    KF_OK(kf, keyformer_state_size(kf, 0, &ksize));
    uint8_t *kstate = malloc(ksize);
    CHECK(kstate != NULL, "out of memory");
    KF_OK(kf, keyformer_state_save(kf, 0, kstate, ksize, &written));
    llama_token next = readme_argmax(lctx);
    CHECK(llama_decode(lctx, llama_batch_get_one(&next, 1)) == 0, "reference decode");
    int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    float *ref = malloc(sizeof *ref * (size_t)n_vocab);
    CHECK(ref != NULL, "out of memory");
    memcpy(ref, llama_get_logits_ith(lctx, -1), sizeof *ref * (size_t)n_vocab);

    llama_memory_clear(mem, true);
    KF_OK(kf, keyformer_seq_reset(kf, 0));
    CHECK(llama_state_seq_set_data(lctx, lstate, lsize, 0) > 0, "llama_state_seq_set_data");
    KF_OK(kf, keyformer_llama_restore(kf, 0, kstate, written));
    CHECK(seq_length(kf) == kept, "restored %d tokens, want %d", seq_length(kf), kept);
    CHECK(llama_decode(lctx, llama_batch_get_one(&next, 1)) == 0, "decode after restore");
    int32_t ev = -1;
    KF_OK(kf, keyformer_llama_apply(kf, 0, &ev));
    int32_t over = kept + 1 - BUDGET; /* the slack evicts back to the budget once it is used up */
    CHECK(ev == (over >= slack ? over : 0) && seq_length(kf) == kept + 1 - ev, "after restore: evicted %d, %d tokens",
          ev, seq_length(kf));
    const float *got = llama_get_logits_ith(lctx, -1);
    double maxdiff = 0;
    for (int32_t t = 0; t < n_vocab; t++) {
        double d = fabs((double)got[t] - (double)ref[t]);
        maxdiff = d > maxdiff ? d : maxdiff;
    }
    printf("llama_host: restore: %zu + %zu state bytes, max logit difference %.2g\n", lsize, written, maxdiff);
    /* The restored sequence sits packed in other cells, so attention sums its columns in another
     * order; ggml's CPU matmuls quantise activations (q8), which turns those last-bit differences
     * into up to ~0.5 on a 28-layer model. A wrong restore (cells or positions mixed up) moves the
     * logits by several units and the choice with them. */
    CHECK(readme_argmax(lctx) == argmax_of(ref, n_vocab) && maxdiff < 1,
          "logits after restore differ by %g (or choose another token)", maxdiff);
    /* A state that does not match llama.cpp's: an error, never a crash. */
    CHECK(keyformer_llama_restore(kf, 0, kstate, written / 2) == KEYFORMER_ERR_INVALID_STATE, "truncated state");

    free(ref);
    free(kstate);
    free(lstate);
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: generate ok\n");
    return 0;
}

/* keydiff: the policy that reads keys, not attention, with flash attention on and a q8_0 cache
 * (llama.cpp's own memory saving under the eviction): the cache stays within the budget, and
 * every ubatch's keys reach the plugin (an apply fails when a ubatch's wanted keys never came). */
static int mode_keydiff(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 10, &n_prompt);
    keyformer_context *kf = new_kf_policy(model, BUDGET, KEYFORMER_GRANULARITY_SHARED, KEYFORMER_POLICY_KEYDIFF);
    cache_type = GGML_TYPE_Q8_0;
    struct llama_context *lctx =
        new_lctx(model, BUDGET + UBATCH, LLAMA_FLASH_ATTN_TYPE_ENABLED, keyformer_llama_eval_callback, kf);
    cache_type = GGML_TYPE_F16;
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    KF_OK(kf, keyformer_set_prompt_length(kf, 0, n_prompt));
    int32_t evicted = feed(lctx, kf, prompt, n_prompt, BUDGET);
    char text[4096];
    int32_t n_gen = generate(lctx, kf, N_GEN, true, BUDGET, text, sizeof text, &evicted);
    int32_t kept = seq_length(kf);
    printf("llama_host: keydiff, flash attention, q8_0 cache: %s\n", text);
    printf("llama_host: evicted %d cells, kept %d of %d tokens\n", evicted, kept, n_prompt + n_gen);
    CHECK(n_gen > 0, "no token generated");
    CHECK(kept >= BUDGET && kept <= BUDGET + slack, "kept %d tokens, want the budget %d + at most %d", kept, BUDGET,
          slack);
    CHECK(evicted == n_prompt + n_gen - kept, "evicted %d, want %d", evicted, n_prompt + n_gen - kept);
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: keydiff ok\n");
    return 0;
}

/* edits: a host that edits its own cache. Prefix reuse after evictions: drop a tail with
 * llama_memory_seq_rm, mirror it, decode another continuation from there. Unmirrored, the next
 * apply fails; after rolling llama.cpp back, keyformer_llama_sync repairs the sequence. Then
 * llama_memory_clear and a new prompt from position 0. */
static int mode_edits(struct llama_model *model) {
    int32_t n_prompt = 0, evicted = 0;
    llama_token *prompt = tokenize(model, 4, &n_prompt);
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    struct llama_context *lctx =
        new_lctx(model, BUDGET + UBATCH, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, kf);
    llama_memory_t mem = llama_get_memory(lctx);
    char text[1024];
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    KF_OK(kf, keyformer_set_prompt_length(kf, 0, n_prompt));
    evicted += feed(lctx, kf, prompt, n_prompt, BUDGET);
    CHECK(generate(lctx, kf, 8, false, BUDGET, text, sizeof text, &evicted) == 8, "generation stopped early");
    CHECK(evicted > 0, "nothing evicted");

    /* Prefix reuse: the tail of 4 tokens goes (the recent window holds it whole). */
    int32_t p = llama_memory_seq_pos_max(mem, 0) - 3, held = seq_length(kf);
    CHECK(llama_memory_seq_rm(mem, 0, p, -1), "llama_memory_seq_rm");
    KF_OK(kf, keyformer_llama_seq_rm(kf, 0, p, -1));
    CHECK(llama_memory_seq_pos_max(mem, 0) == p - 1 && seq_length(kf) == held - 4, "after seq_rm: pos_max %d, %d tokens",
          (int)llama_memory_seq_pos_max(mem, 0), seq_length(kf));
    feed(lctx, kf, prompt + 10, 2 * UBATCH, BUDGET);
    CHECK(generate(lctx, kf, 4, false, BUDGET, text, sizeof text, &evicted) == 4, "generation after prefix reuse");
    printf("llama_host: edits: prefix reuse at %d after %d evictions: %s\n", p, evicted, text);

    /* Unmirrored: the tracker still holds the tail, and the next apply fails. */
    p = llama_memory_seq_pos_max(mem, 0) - 3;
    CHECK(llama_memory_seq_rm(mem, 0, p, -1), "llama_memory_seq_rm");
    CHECK(llama_decode(lctx, llama_batch_get_one(prompt, 4)) == 0, "decode after an unmirrored seq_rm");
    int32_t ev = -1;
    keyformer_status st = keyformer_llama_apply(kf, 0, &ev);
    CHECK(st == KEYFORMER_ERR_INVALID_ARGUMENT && strstr(keyformer_last_error(kf), "does not come after") != NULL,
          "apply after an unmirrored seq_rm: %s: %s", keyformer_status_string(st), keyformer_last_error(kf));
    /* Roll llama.cpp back to before that decode; sync forgets the tail llama.cpp no longer holds. */
    CHECK(llama_memory_seq_rm(mem, 0, p, -1), "llama_memory_seq_rm");
    KF_OK(kf, keyformer_llama_sync(kf, 0));
    CHECK(seq_length(kf) <= BUDGET + slack, "after sync: %d tokens", seq_length(kf));
    feed(lctx, kf, prompt + 20, UBATCH, BUDGET);
    CHECK(generate(lctx, kf, 4, false, BUDGET, text, sizeof text, &evicted) == 4, "generation after sync");

    /* Clear: a new prompt from position 0. */
    llama_memory_clear(mem, true);
    KF_OK(kf, keyformer_llama_clear(kf));
    CHECK(seq_length(kf) == 0, "after clear: %d tokens", seq_length(kf));
    KF_OK(kf, keyformer_set_prompt_length(kf, 0, n_prompt));
    feed(lctx, kf, prompt, n_prompt, BUDGET);
    CHECK(generate(lctx, kf, 4, false, BUDGET, text, sizeof text, &evicted) == 4, "generation after clear");

    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: edits ok\n");
    return 0;
}

/* streams: a host with two sequences in a cache of one KV stream per sequence. Each llama_decode
 * holds a chunk of each prompt (llama.cpp regroups the ubatch by stream), then one token of each;
 * every apply keeps each sequence within its budget, llama.cpp's positions and keyformer's agree;
 * llama_memory_seq_cp copies stream 0 into stream 1, mirrored, and both go on evicting. */
static int mode_streams(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 6, &n_prompt);
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2 * (BUDGET + UBATCH); /* each stream: the budget and the chunk one decode adds to it */
    cp.n_batch = cp.n_ubatch = UBATCH;
    cp.n_seq_max = 2;
    cp.kv_unified = false;
    cp.n_threads = cp.n_threads_batch = n_threads();
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = keyformer_llama_eval_callback;
    cp.cb_eval_user_data = kf;
    struct llama_context *lctx = llama_init_from_model(model, cp);
    CHECK(lctx != NULL, "llama_init_from_model failed");
    CHECK(llama_n_ctx_seq(lctx) < llama_n_ctx(lctx), "n_ctx_seq %u, n_ctx %u: not a stream per sequence",
          llama_n_ctx_seq(lctx), llama_n_ctx(lctx));
    llama_memory_t mem = llama_get_memory(lctx);
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    struct llama_batch b = llama_batch_init(UBATCH, 0, 1);
    const int32_t half = UBATCH / 2;
    int32_t evicted = 0, next[2] = {0, 0};
    llama_token last[2] = {0, 0};
    for (int32_t step = 0; step < n_prompt / half + 8; step++) {
        bool reading = step < n_prompt / half;
        b.n_tokens = 0;
        for (int32_t s = 0; s < 2; s++) {
            int32_t n = reading ? half : 1;
            for (int32_t i = 0; i < n; i++) {
                int32_t k = b.n_tokens++;
                /* sequence 1 reads the prompt from its middle on, wrapping round */
                b.token[k] = reading ? prompt[(step * half + i + s * n_prompt / 2) % n_prompt] : last[s];
                b.pos[k] = next[s]++;
                b.n_seq_id[k] = 1;
                b.seq_id[k][0] = s;
                b.logits[k] = i == n - 1;
            }
        }
        CHECK(llama_decode(lctx, b) == 0, "llama_decode of step %d", step);
        int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
        for (int32_t s = 0; s < 2; s++) {
            int32_t ev = -1, len = -1;
            KF_OK(kf, keyformer_llama_apply(kf, s, &ev));
            evicted += ev;
            KF_OK(kf, keyformer_seq_length(kf, s, &len));
            CHECK(len <= BUDGET + slack, "step %d: sequence %d holds %d tokens > budget %d + slack %d", step, s, len,
                  BUDGET, slack);
            CHECK(llama_memory_seq_pos_max(mem, s) == next[s] - 1, "sequence %d: llama.cpp's last position %d, want %d", s,
                  (int)llama_memory_seq_pos_max(mem, s), next[s] - 1);
            last[s] = argmax_of(llama_get_logits_ith(lctx, s == 0 ? b.n_tokens / 2 - 1 : b.n_tokens - 1), n_vocab);
        }
    }
    int32_t len0 = -1, len1 = -1;
    KF_OK(kf, keyformer_seq_length(kf, 0, &len0));
    KF_OK(kf, keyformer_seq_length(kf, 1, &len1));
    CHECK(evicted > 0 && evicted == next[0] + next[1] - len0 - len1, "evicted %d cells of %d + %d tokens, %d + %d kept",
          evicted, next[0], next[1], len0, len1);

    /* Across streams llama.cpp copies stream 0 into stream 1 (the whole range), emptying it first. */
    llama_memory_seq_cp(mem, 0, 1, -1, -1);
    KF_OK(kf, keyformer_llama_seq_cp(kf, 0, 1, -1, -1));
    KF_OK(kf, keyformer_seq_length(kf, 0, &len0));
    KF_OK(kf, keyformer_seq_length(kf, 1, &len1));
    CHECK(len0 == len1 && llama_memory_seq_pos_max(mem, 1) == next[0] - 1 &&
              llama_memory_seq_pos_min(mem, 1) == llama_memory_seq_pos_min(mem, 0),
          "after seq_cp: %d and %d tokens, positions [%d, %d] and [%d, %d]", len0, len1,
          (int)llama_memory_seq_pos_min(mem, 0), (int)llama_memory_seq_pos_max(mem, 0),
          (int)llama_memory_seq_pos_min(mem, 1), (int)llama_memory_seq_pos_max(mem, 1));
    int32_t before = evicted;
    next[1] = next[0];
    for (int32_t step = 0; step < 2 * slack + 4; step++) {
        b.n_tokens = 0;
        for (int32_t s = 0; s < 2; s++) {
            int32_t k = b.n_tokens++;
            b.token[k] = prompt[(step + 7 * s) % n_prompt];
            b.pos[k] = next[s]++;
            b.n_seq_id[k] = 1;
            b.seq_id[k][0] = s;
            b.logits[k] = true;
        }
        CHECK(llama_decode(lctx, b) == 0, "llama_decode after seq_cp, step %d", step);
        for (int32_t s = 0; s < 2; s++) {
            int32_t ev = -1;
            KF_OK(kf, keyformer_llama_apply(kf, s, &ev));
            evicted += ev;
        }
    }
    CHECK(evicted - before >= 2 * (slack + 1), "after seq_cp: %d cells evicted, want both sequences evicting",
          evicted - before);
    printf("llama_host: streams: two %d-token prompts side by side, %u cells per stream, %d cells evicted\n", n_prompt,
           llama_n_ctx_seq(lctx), evicted);
    llama_batch_free(b);
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: streams ok\n");
    return 0;
}

static int mode_errors(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 2, &n_prompt);
    int32_t ev = -1;

    /* Flash attention on: no attention matrix, apply says so. */
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    struct llama_context *lctx = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_ENABLED, keyformer_llama_eval_callback, kf);
    CHECK(keyformer_llama_apply(kf, 0, &ev) == KEYFORMER_ERR_INVALID_ARGUMENT, "apply before attach");
    CHECK(strstr(keyformer_last_error(kf), "keyformer_llama_attach") != NULL, "message: %s", keyformer_last_error(kf));
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    CHECK(llama_decode(lctx, llama_batch_get_one(prompt, UBATCH)) == 0, "decode");
    keyformer_status st = keyformer_llama_apply(kf, 0, &ev);
    printf("llama_host: flash attention on: %s: %s\n", keyformer_status_string(st), keyformer_last_error(kf));
    CHECK(st == KEYFORMER_ERR_UNSUPPORTED, "flash attention: status %d", st);
    CHECK(strstr(keyformer_last_error(kf), "flash attention") != NULL, "message: %s", keyformer_last_error(kf));
    CHECK(ev == 0, "n_evicted %d", ev);
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));

    /* No cb_eval: apply cannot have seen anything. */
    kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    lctx = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_DISABLED, NULL, NULL);
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    CHECK(llama_decode(lctx, llama_batch_get_one(prompt, UBATCH)) == 0, "decode");
    st = keyformer_llama_apply(kf, 0, &ev);
    CHECK(st == KEYFORMER_ERR_INVALID_ARGUMENT && strstr(keyformer_last_error(kf), "cb_eval") != NULL,
          "no cb_eval: %d %s", st, keyformer_last_error(kf));
    printf("llama_host: no cb_eval: %s\n", keyformer_last_error(kf));

    /* Bad arguments. */
    CHECK(keyformer_llama_attach(kf, NULL, NULL) == KEYFORMER_ERR_INVALID_ARGUMENT, "NULL lctx");
    st = keyformer_llama_attach(kf, lctx, "libkeyformer-no-such-llama.so");
    CHECK(st == KEYFORMER_ERR_INVALID_ARGUMENT && strstr(keyformer_last_error(kf), "not loaded") != NULL,
          "unloaded library: %d %s", st, keyformer_last_error(kf));
    CHECK(keyformer_llama_attach(NULL, lctx, NULL) == KEYFORMER_ERR_INVALID_HANDLE, "NULL ctx");
    CHECK(keyformer_llama_apply(NULL, 0, &ev) == KEYFORMER_ERR_INVALID_HANDLE, "NULL ctx");
    CHECK(keyformer_llama_chain(NULL, NULL, NULL) == KEYFORMER_ERR_INVALID_HANDLE, "NULL ctx");
    CHECK(keyformer_llama_set_batch(kf, NULL, 3) == KEYFORMER_ERR_INVALID_ARGUMENT, "NULL batch");
    CHECK(keyformer_llama_set_batch(kf, NULL, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "negative n");
    int32_t bad[2] = {0, -2};
    CHECK(keyformer_llama_set_batch(kf, bad, 2) == KEYFORMER_ERR_INVALID_ARGUMENT, "negative sequence");
    CHECK(keyformer_llama_restore(kf, 0, NULL, 5) == KEYFORMER_ERR_INVALID_ARGUMENT, "NULL state");
    CHECK(keyformer_llama_restore(kf, -1, NULL, 0) == KEYFORMER_ERR_INVALID_ARGUMENT, "bad sequence");
    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(keyformer_llama_restore(kf, 0, junk, sizeof junk) == KEYFORMER_ERR_INVALID_STATE, "junk state");
    /* The cache edits check their sequence ids, even for an empty range, and change nothing. */
    int32_t held = seq_length(kf);
    CHECK(keyformer_llama_seq_rm(kf, 65536, 0, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_rm: sequence 65536");
    CHECK(strstr(keyformer_last_error(kf), "keyformer_llama_seq_rm") != NULL, "message: %s", keyformer_last_error(kf));
    CHECK(keyformer_llama_seq_rm(kf, 70000, 5, 2) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_rm: empty range, bad id");
    CHECK(keyformer_llama_seq_add(kf, -1, 0, -1, 1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_add: sequence -1");
    CHECK(keyformer_llama_seq_add(kf, 65536, 0, -1, 1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_add: sequence 65536");
    CHECK(keyformer_llama_seq_cp(kf, -1, 1, -1, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_cp: src -1");
    CHECK(keyformer_llama_seq_cp(kf, 0, -1, -1, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_cp: dst -1");
    CHECK(keyformer_llama_seq_cp(kf, 0, 65536, -1, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_cp: dst 65536");
    CHECK(keyformer_llama_seq_keep(kf, -1) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_keep: sequence -1");
    CHECK(keyformer_llama_seq_keep(kf, 65536) == KEYFORMER_ERR_INVALID_ARGUMENT, "seq_keep: sequence 65536");
    CHECK(strstr(keyformer_last_error(kf), "keyformer_llama_seq_keep") != NULL, "message: %s", keyformer_last_error(kf));
    CHECK(seq_length(kf) == held, "the failed edits changed sequence 0: %d tokens, %d before", seq_length(kf), held);
    CHECK(keyformer_llama_seq_rm(NULL, 0, -1, -1) == KEYFORMER_ERR_INVALID_HANDLE, "seq_rm: NULL ctx");
    CHECK(keyformer_llama_sync(NULL, -1) == KEYFORMER_ERR_INVALID_HANDLE, "sync: NULL ctx");
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    CHECK(keyformer_llama_apply(kf, 0, &ev) == KEYFORMER_ERR_INVALID_HANDLE, "freed ctx");

    /* Per-head granularity: llama.cpp frees whole cells. */
    kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_PER_HEAD);
    lctx = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, kf);
    st = keyformer_llama_attach(kf, lctx, NULL);
    CHECK(st == KEYFORMER_ERR_INVALID_ARGUMENT && strstr(keyformer_last_error(kf), "shared") != NULL,
          "per-head: %d %s", st, keyformer_last_error(kf));
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: errors ok\n");
    return 0;
}

/* The host's own eval callback for the chain test. */
struct host_cb {
    long asks, decodes_seen, result_output, kq3, unexpected;
    double kq3_row_sum;
};

static bool host_eval(struct ggml_tensor *t, bool ask, void *ud) {
    struct host_cb *h = ud;
    bool mine = strcmp(t->name, "result_output") == 0 || strcmp(t->name, "kq_soft_max-3") == 0;
    if (ask) {
        h->asks++;
        return mine;
    }
    if (!mine) {
        h->unexpected++;
        return true;
    }
    if (strcmp(t->name, "result_output") == 0) {
        h->result_output++;
    } else {
        h->kq3++;
        const float *row = t->data; /* CPU: host memory; row 0 of head 0 */
        double s = 0;
        for (int64_t j = 0; j < t->ne[0]; j++) {
            s += row[j];
        }
        h->kq3_row_sum = s;
    }
    return true;
}

static int mode_chain(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 6, &n_prompt);
    struct host_cb h = {0};
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    KF_OK(kf, keyformer_llama_chain(kf, host_eval, &h)); /* before attach is fine */
    struct llama_context *lctx =
        new_lctx(model, BUDGET + UBATCH, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, kf);
    KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
    KF_OK(kf, keyformer_set_prompt_length(kf, 0, n_prompt));
    int32_t evicted = feed(lctx, kf, prompt, n_prompt, BUDGET);
    int32_t n_chunks = (n_prompt + UBATCH - 1) / UBATCH;
    char text[1024];
    int32_t n_gen = generate(lctx, kf, 8, true, BUDGET, text, sizeof text, &evicted);
    long decodes = n_chunks + n_gen;
    printf("llama_host: chain: %ld decodes, host asked %ld times (%.0f per decode), saw result_output %ld, "
           "kq_soft_max-3 %ld (row sum %.4f), unexpected %ld; keyformer evicted %d, kept %d\n",
           decodes, h.asks, (double)h.asks / (double)decodes, h.result_output, h.kq3, h.kq3_row_sum, h.unexpected,
           evicted, seq_length(kf));
    CHECK(h.unexpected == 0, "the host callback got %ld tensors it did not ask for", h.unexpected);
    CHECK(h.result_output == decodes, "result_output seen %ld times, want %ld", h.result_output, decodes);
    CHECK(h.kq3 == decodes, "kq_soft_max-3 seen %ld times, want %ld", h.kq3, decodes);
    CHECK(fabs(h.kq3_row_sum - 1) < 1e-3, "kq_soft_max-3 row sums to %g", h.kq3_row_sum);
    CHECK(h.asks > 100 * decodes, "only %ld asks", h.asks);
    CHECK(evicted == n_prompt + n_gen - seq_length(kf) && seq_length(kf) >= BUDGET && seq_length(kf) <= BUDGET + slack,
          "keyformer: evicted %d, kept %d", evicted, seq_length(kf));

    /* Unchained: the host callback is asked no more. */
    KF_OK(kf, keyformer_llama_chain(kf, NULL, NULL));
    long asks = h.asks;
    generate(lctx, kf, 2, true, BUDGET, text, sizeof text, &evicted);
    CHECK(h.asks == asks, "asked %ld times after unchaining", h.asks - asks);
    llama_free(lctx);
    KF_OK(NULL, keyformer_context_free(kf));
    free(prompt);
    printf("llama_host: chain ok\n");
    return 0;
}

static int mode_readme(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 8, &n_prompt);
    int32_t kept = readme_llama(model, prompt, n_prompt, 16, n_threads());
    printf("llama_host: readme: prompt %d tokens, kept %d\n", n_prompt, kept);
    CHECK(kept == 256, "the snippet kept %d tokens", kept);
    free(prompt);
    printf("llama_host: readme ok\n");
    return 0;
}

/* bench: the asks of one real decode, recorded by a chained callback, replayed. */
struct recorder {
    struct ggml_tensor *nodes;
    long n, cap;
};

static bool record_eval(struct ggml_tensor *t, bool ask, void *ud) {
    struct recorder *r = ud;
    if (ask && r->n < r->cap) {
        struct ggml_tensor *c = &r->nodes[r->n++];
        memset(c, 0, sizeof *c);
        memcpy(c->name, t->name, sizeof c->name);
        c->op = t->op;
        c->type = t->type;
    }
    return false;
}

static bool noop_eval(struct ggml_tensor *t, bool ask, void *ud) {
    (void)t;
    (void)ud;
    return !ask;
}

static double decode_ms(struct llama_model *model, ggml_backend_sched_eval_callback cb, keyformer_context *kf,
                        bool attach, llama_token *prompt, int32_t n_prompt, int n_tok) {
    struct llama_context *lctx = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_DISABLED, cb, kf);
    if (attach) {
        KF_OK(kf, keyformer_llama_attach(kf, lctx, NULL));
        KF_OK(kf, keyformer_seq_reset(kf, 0));
    }
    for (int32_t i = 0; i < n_prompt; i += UBATCH) {
        int32_t m = n_prompt - i < UBATCH ? n_prompt - i : UBATCH;
        CHECK(llama_decode(lctx, llama_batch_get_one(prompt + i, m)) == 0, "decode");
        if (attach) KF_OK(kf, keyformer_llama_apply(kf, 0, NULL));
    }
    double t0 = now_s();
    for (int i = 0; i < n_tok; i++) {
        llama_token tok = readme_argmax(lctx);
        CHECK(llama_decode(lctx, llama_batch_get_one(&tok, 1)) == 0, "decode");
        if (attach) KF_OK(kf, keyformer_llama_apply(kf, 0, NULL));
    }
    double ms = 1e3 * (now_s() - t0) / n_tok;
    llama_free(lctx);
    return ms;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int mode_bench(struct llama_model *model) {
    int32_t n_prompt = 0;
    llama_token *prompt = tokenize(model, 2, &n_prompt); /* ~190 tokens: below the budget, no eviction */
    keyformer_context *kf = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    struct recorder rec = {.cap = 8192};
    rec.nodes = malloc(sizeof *rec.nodes * (size_t)rec.cap);
    CHECK(rec.nodes != NULL, "out of memory");
    keyformer_context *krec = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    KF_OK(krec, keyformer_llama_chain(krec, record_eval, &rec));
    struct llama_context *lctx = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, krec);
    CHECK(llama_decode(lctx, llama_batch_get_one(prompt, 64)) == 0, "decode");
    llama_token tok = readme_argmax(lctx);
    rec.n = 0; /* the asks of one single-token decode */
    CHECK(llama_decode(lctx, llama_batch_get_one(&tok, 1)) == 0, "decode");
    llama_free(lctx);
    long n_asks = rec.n, n_attn = 0, w = 0;
    /* The replay keeps the nodes answered in C alone: the two whose inputs Go reads (2 per ubatch) and
     * the attention tensors (whose answer depends on those inputs, and which call into Go) are left
     * out; their cost is in the decode times below. */
    for (long i = 0; i < rec.n; i++) {
        struct ggml_tensor *t = &rec.nodes[i];
        bool attn = strncmp(t->name, "kq_soft_max-", 12) == 0;
        n_attn += attn;
        if (attn || (t->op == GGML_OP_ROPE && strcmp(t->name, "Kcur-0") == 0) ||
            (t->op == GGML_OP_SET_ROWS && strcmp(t->name, "cache_k_l0 (view)") == 0)) {
            continue;
        }
        rec.nodes[w++] = *t;
    }
    rec.n = w;

    /* Replay the asks: attached (names compared), attached + a chained host callback, unattached. */
    struct llama_context *lb = new_lctx(model, 512, LLAMA_FLASH_ATTN_TYPE_DISABLED, keyformer_llama_eval_callback, kf);
    KF_OK(kf, keyformer_llama_attach(kf, lb, NULL));
    keyformer_context *kfree_ = new_kf(model, BUDGET, KEYFORMER_GRANULARITY_SHARED);
    const int rounds = 2000;
    double ns[3], base = 1e30;
    bool (*volatile noop)(struct ggml_tensor *, bool, void *) = noop_eval; /* an indirect call, as ggml's */
    for (int rep = 0; rep < 5; rep++) {
        long yes = 0;
        double t0 = now_s();
        for (int r = 0; r < rounds; r++) {
            for (long i = 0; i < rec.n; i++) {
                yes += noop(&rec.nodes[i], true, kf);
            }
        }
        double el = now_s() - t0;
        base = el < base ? el : base;
        CHECK(yes == 0, "noop");
    }
    base = 1e9 * base / ((double)rounds * (double)rec.n);
    bool (*volatile cb)(struct ggml_tensor *, bool, void *) = keyformer_llama_eval_callback;
    for (int v = 0; v < 3; v++) {
        keyformer_context *k = v == 2 ? kfree_ : kf;
        if (v == 1) KF_OK(kf, keyformer_llama_chain(kf, noop_eval, NULL));
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) {
            long yes = 0;
            double t0 = now_s();
            for (int r = 0; r < rounds; r++) {
                for (long i = 0; i < rec.n; i++) {
                    yes += cb(&rec.nodes[i], true, k);
                }
            }
            double el = now_s() - t0;
            best = el < best ? el : best;
            CHECK(yes == 0, "answered yes %ld times", yes);
        }
        ns[v] = 1e9 * best / ((double)rounds * (double)rec.n);
        if (v == 1) KF_OK(kf, keyformer_llama_chain(kf, NULL, NULL));
    }
    llama_free(lb);

    /* Decode time: no callback, keyformer's callback unattached (answers no, C only), keyformer. */
    const int n_tok = 48, n_rounds = 3;
    double none[3], unatt[3], kfms[3];
    for (int r = 0; r < n_rounds; r++) {
        none[r] = decode_ms(model, NULL, NULL, false, prompt, n_prompt, n_tok);
        unatt[r] = decode_ms(model, keyformer_llama_eval_callback, kfree_, false, prompt, n_prompt, n_tok);
        kfms[r] = decode_ms(model, keyformer_llama_eval_callback, kf, true, prompt, n_prompt, n_tok);
    }
    qsort(none, n_rounds, sizeof(double), cmp_double);
    qsort(unatt, n_rounds, sizeof(double), cmp_double);
    qsort(kfms, n_rounds, sizeof(double), cmp_double);
    printf("llama_host: bench: %ld asks per single-token decode (%ld attention), %d threads, cache ~%d tokens\n",
           n_asks, n_attn, n_threads(), n_prompt + n_tok / 2);
    printf("llama_host: bench: per ask answered in C: %.1f ns attached, %.1f ns with a chained no-op host "
           "callback, %.1f ns unattached; an empty callback: %.1f ns\n",
           ns[0], ns[1], ns[2], base);
    printf("llama_host: bench: decode ms/token (median of %d): no callback %.2f, keyformer callback unattached %.2f, "
           "keyformer %.2f (x%.3f)\n",
           n_rounds, none[1], unatt[1], kfms[1], kfms[1] / none[1]);
    printf("{\"asks_per_decode\":%ld,\"empty_callback_ns\":%.2f,\"ask_ns\":%.2f,\"ask_ns_chained\":%.2f,\"ask_ns_unattached\":%.2f,"
           "\"decode_ms_none\":%.3f,\"decode_ms_unattached\":%.3f,\"decode_ms_keyformer\":%.3f}\n",
           n_asks, base, ns[0], ns[1], ns[2], none[1], unatt[1], kfms[1]);
    KF_OK(NULL, keyformer_context_free(kf));
    KF_OK(NULL, keyformer_context_free(kfree_));
    KF_OK(NULL, keyformer_context_free(krec));
    free(rec.nodes);
    free(prompt);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: llama_host generate|edits|keydiff|streams|errors|chain|readme|bench LIB_DIR MODEL\n");
        return 2;
    }
    CHECK(keyformer_api_version() >= KEYFORMER_API_VERSION, "API version %d", keyformer_api_version());
    struct llama_model *model = load_model(argv[2], argv[3]);
    int rc = 2;
    if (strcmp(argv[1], "generate") == 0) {
        rc = mode_generate(model);
    } else if (strcmp(argv[1], "edits") == 0) {
        rc = mode_edits(model);
    } else if (strcmp(argv[1], "keydiff") == 0) {
        rc = mode_keydiff(model);
    } else if (strcmp(argv[1], "streams") == 0) {
        rc = mode_streams(model);
    } else if (strcmp(argv[1], "errors") == 0) {
        rc = mode_errors(model);
    } else if (strcmp(argv[1], "chain") == 0) {
        rc = mode_chain(model);
    } else if (strcmp(argv[1], "readme") == 0) {
        rc = mode_readme(model);
    } else if (strcmp(argv[1], "bench") == 0) {
        rc = mode_bench(model);
    } else {
        fprintf(stderr, "llama_host: unknown mode %s\n", argv[1]);
    }
    llama_model_free(model);
    llama_backend_free();
    return rc;
}
