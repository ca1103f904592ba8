/* libkeyformer-preload.so: keyformer in an unmodified llama.cpp host (llama-server) by LD_PRELOAD.
 *
 *   LD_PRELOAD=libkeyformer-preload.so KEYFORMER_BUDGET=2048 llama-server -m model.gguf -c 32768 -np 4
 *
 * Without KEYFORMER_BUDGET every call passes straight through. With it, each context the host
 * creates gets a keyformer context (libkeyformer.so, loaded at the first one: the Go library is
 * never preloaded into every process, only opened where it is used) and:
 *  - fewer cells: every sequence holds at most the budget, the eviction slack and one batch, and
 *    a llama_decode carries at most KEYFORMER_N_BATCH tokens (n_batch, by which llama-server cuts
 *    prompts, is lowered), in one KV stream per sequence or in the unified cache the host asked for;
 *  - the host still sees the context it asked for: llama_n_ctx and llama_n_ctx_seq report it, so
 *    prompts and chats longer than the cells are accepted (positions keep counting);
 *  - the scoring policies never evict a sequence's first KEYFORMER_SINKS tokens (KEYFORMER_KEEP_SINKS,
 *    on unless set to 0): slots that read their prompts in shared batches otherwise lost them now
 *    and then, and SmolLM2 then answered nothing at all;
 *  - after every llama_decode the cells each sequence must lose are freed (keyformer_llama_apply),
 *    after a failed one keyformer follows what llama.cpp rolled back (keyformer_llama_sync);
 *  - the host's own cache edits (llama_memory_seq_rm, _seq_add, _seq_cp, _seq_keep, _clear) are
 *    mirrored, and a decode that would continue a sequence past an evicted position (a truncated,
 *    regenerated or edited history) first moves the kept positions up to close the gap;
 *  - state restores are refused (they return 0 / false, which llama-server answers by reading the
 *    prompt again): llama.cpp does not say where it puts restored cells.
 * A context keyformer cannot serve (embeddings, sliding-window, recurrent or hybrid models, a
 * quantized V cache with a policy that reads attention, a draft or MTP context, a llama.cpp whose
 * struct layout differs, a missing libkeyformer.so, bad KEYFORMER_* values) gets one log line and
 * passes through unchanged; nothing here aborts the host.
 *
 * The real llama.cpp functions come from dlsym(RTLD_NEXT); keyformer binds to the libllama they
 * live in by path, so that its own evictions call the real functions, not these wrappers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyformer.h"
#include "llama_abi.h"

#define KFP_EXPORT __attribute__((visibility("default")))
#define KFP_MAX_SESSIONS 64
#define KFP_MAX_LOGGED_ERRORS 20

/* ---- the real llama.cpp functions ------------------------------------------------------------- */

static void *real_symbol(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL) {
        fprintf(stderr, "keyformer-preload: %s not found after this library (dlsym(RTLD_NEXT)): %s\n", name,
                dlerror());
        abort(); /* only reachable when a process calls a llama.cpp function it never loaded */
    }
    return f;
}

/* REAL(name) is the next definition of name, looked up once. */
#define REAL(name)                                                                                  \
    ({                                                                                              \
        static __typeof__(&name) real_##name;                                                       \
        __typeof__(&name) f_ = __atomic_load_n(&real_##name, __ATOMIC_ACQUIRE);                     \
        if (f_ == NULL) {                                                                           \
            f_ = (__typeof__(&name))real_symbol(#name);                                             \
            __atomic_store_n(&real_##name, f_, __ATOMIC_RELEASE);                                   \
        }                                                                                           \
        f_;                                                                                         \
    })

KFP_EXPORT struct llama_context *llama_init_from_model(struct llama_model *model, struct llama_context_params params);
KFP_EXPORT void llama_free(struct llama_context *ctx);
KFP_EXPORT uint32_t llama_n_ctx(const struct llama_context *ctx);
KFP_EXPORT uint32_t llama_n_ctx_seq(const struct llama_context *ctx);
KFP_EXPORT int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch);
KFP_EXPORT bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1);
KFP_EXPORT void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1,
                                     llama_pos delta);
KFP_EXPORT void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id src, llama_seq_id dst, llama_pos p0,
                                    llama_pos p1);
KFP_EXPORT void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq);
KFP_EXPORT void llama_memory_seq_div(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1, int d);
KFP_EXPORT void llama_memory_clear(llama_memory_t mem, bool data);
KFP_EXPORT size_t llama_state_set_data(struct llama_context *ctx, const uint8_t *src, size_t size);
KFP_EXPORT bool llama_state_load_file(struct llama_context *ctx, const char *path, llama_token *tokens_out,
                                      size_t n_token_capacity, size_t *n_token_count_out);
KFP_EXPORT size_t llama_state_seq_set_data(struct llama_context *ctx, const uint8_t *src, size_t size,
                                           llama_seq_id dest_seq_id);
KFP_EXPORT size_t llama_state_seq_set_data_ext(struct llama_context *ctx, const uint8_t *src, size_t size,
                                               llama_seq_id dest_seq_id, uint32_t flags);
KFP_EXPORT size_t llama_state_seq_load_file(struct llama_context *ctx, const char *path, llama_seq_id dest_seq_id,
                                            llama_token *tokens_out, size_t n_token_capacity,
                                            size_t *n_token_count_out);

/* Called, never interposed (looked up like the others, so that a process without llama.cpp
 * loads this library even where symbols are bound at load time). */
struct llama_context_params llama_context_default_params(void);
llama_memory_t llama_get_memory(const struct llama_context *ctx);
llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq);
llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq);
int32_t llama_model_n_layer(const struct llama_model *model);
int32_t llama_model_n_head(const struct llama_model *model);
int32_t llama_model_n_head_kv(const struct llama_model *model);
int32_t llama_model_n_ctx_train(const struct llama_model *model);
int32_t llama_model_n_swa(const struct llama_model *model);
bool llama_model_is_recurrent(const struct llama_model *model);
bool llama_model_is_hybrid(const struct llama_model *model);

/* ---- configuration, log, libkeyformer.so ------------------------------------------------------- */

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static struct kfp_config config; /* budget 0: off */
static FILE *log_file;
static FILE *stats_file;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER; /* log_file and stats_file lines */

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_lock);
    FILE *f = log_file != NULL ? log_file : stderr;
    fputs("keyformer-preload: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&out_lock);
    va_end(ap);
}

static const char *getenv_lookup(const char *name, void *user_data) {
    (void)user_data;
    return getenv(name);
}

static void setup(void) {
    char err[256];
    if (kfp_config_read(getenv_lookup, NULL, &config, err, sizeof err) != 0) {
        logf_("%s; keyformer is off in this process", err);
        return;
    }
    if (config.budget == 0) return;
    if (config.log != NULL && (log_file = fopen(config.log, "a")) == NULL) {
        logf_("KEYFORMER_LOG=%s: cannot open it; logging to stderr", config.log);
    }
    if (config.stats != NULL && (stats_file = fopen(config.stats, "a")) == NULL) {
        logf_("KEYFORMER_STATS=%s: cannot open it; keyformer is off in this process", config.stats);
        config.budget = 0;
    }
}

/* The libkeyformer.so functions the preload calls. */
static struct {
    int32_t (*api_version)(void);
    const char *(*last_error)(const keyformer_context *);
    keyformer_status (*default_params)(keyformer_params *);
    keyformer_status (*context_new)(const keyformer_params *, keyformer_context **);
    keyformer_status (*context_free)(keyformer_context *);
    keyformer_status (*seq_length)(keyformer_context *, int32_t, int32_t *);
    bool (*eval_callback)(struct ggml_tensor *, bool, void *);
    keyformer_status (*attach)(keyformer_context *, struct llama_context *, const char *);
    keyformer_status (*chain)(keyformer_context *, bool (*)(struct ggml_tensor *, bool, void *), void *);
    keyformer_status (*set_batch)(keyformer_context *, const int32_t *, int32_t);
    keyformer_status (*apply)(keyformer_context *, int32_t, int32_t *);
    keyformer_status (*seq_rm)(keyformer_context *, int32_t, int32_t, int32_t);
    keyformer_status (*seq_add)(keyformer_context *, int32_t, int32_t, int32_t, int32_t);
    keyformer_status (*seq_cp)(keyformer_context *, int32_t, int32_t, int32_t, int32_t);
    keyformer_status (*seq_keep)(keyformer_context *, int32_t);
    keyformer_status (*clear)(keyformer_context *);
    keyformer_status (*sync)(keyformer_context *, int32_t);
} kf;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int kf_loaded; /* 0 not tried, 1 loaded, -1 failed */

/* Opens libkeyformer.so (KEYFORMER_LIB, else libkeyformer.so.0 beside this library, else the
 * loader's search path) and binds kf. Returns 0, or -1 after logging why. */
static int load_keyformer(void) {
    pthread_mutex_lock(&load_lock);
    if (kf_loaded != 0) {
        pthread_mutex_unlock(&load_lock);
        return kf_loaded > 0 ? 0 : -1;
    }
    kf_loaded = -1;
    char path[4096];
    const char *lib = config.lib;
    Dl_info self;
    if (lib == NULL && dladdr((void *)load_keyformer, &self) != 0 && self.dli_fname != NULL) {
        const char *slash = strrchr(self.dli_fname, '/');
        if (slash != NULL &&
            snprintf(path, sizeof path, "%.*s/libkeyformer.so.0", (int)(slash - self.dli_fname), self.dli_fname) <
                (int)sizeof path) {
            lib = path;
        }
    }
    void *h = dlopen(lib != NULL ? lib : "libkeyformer.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL && config.lib == NULL) h = dlopen("libkeyformer.so.0", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        logf_("cannot open libkeyformer.so (%s; set KEYFORMER_LIB to its path); keyformer is off", dlerror());
        pthread_mutex_unlock(&load_lock);
        return -1;
    }
    struct {
        void **slot;
        const char *name;
    } syms[] = {
        {(void **)&kf.api_version, "keyformer_api_version"},
        {(void **)&kf.last_error, "keyformer_last_error"},
        {(void **)&kf.default_params, "keyformer_default_params"},
        {(void **)&kf.context_new, "keyformer_context_new"},
        {(void **)&kf.context_free, "keyformer_context_free"},
        {(void **)&kf.seq_length, "keyformer_seq_length"},
        {(void **)&kf.eval_callback, "keyformer_llama_eval_callback"},
        {(void **)&kf.attach, "keyformer_llama_attach"},
        {(void **)&kf.chain, "keyformer_llama_chain"},
        {(void **)&kf.set_batch, "keyformer_llama_set_batch"},
        {(void **)&kf.apply, "keyformer_llama_apply"},
        {(void **)&kf.seq_rm, "keyformer_llama_seq_rm"},
        {(void **)&kf.seq_add, "keyformer_llama_seq_add"},
        {(void **)&kf.seq_cp, "keyformer_llama_seq_cp"},
        {(void **)&kf.seq_keep, "keyformer_llama_seq_keep"},
        {(void **)&kf.clear, "keyformer_llama_clear"},
        {(void **)&kf.sync, "keyformer_llama_sync"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        if ((*syms[i].slot = dlsym(h, syms[i].name)) == NULL) {
            logf_("libkeyformer.so lacks %s (an older library?); keyformer is off", syms[i].name);
            pthread_mutex_unlock(&load_lock);
            return -1;
        }
    }
    if (kf.api_version() < KEYFORMER_API_VERSION) {
        logf_("libkeyformer.so has API version %d, this library needs %d; keyformer is off", kf.api_version(),
              KEYFORMER_API_VERSION);
        pthread_mutex_unlock(&load_lock);
        return -1;
    }
    kf_loaded = 1;
    pthread_mutex_unlock(&load_lock);
    return 0;
}

/* Whether llama_context_default_params() reads back, through this library's mirror, the defaults
 * of the llama.cpp release it mirrors (a different layout would be edited in the wrong places). */
static bool layout_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        struct llama_context_params d = REAL(llama_context_default_params)();
        ok = d.n_ctx == 512 && d.n_batch == 2048 && d.n_ubatch == 512 && d.n_seq_max == 1 &&
             d.flash_attn_type == KFP_FLASH_ATTN_TYPE_AUTO && d.type_k == KFP_GGML_TYPE_F16 &&
             d.type_v == KFP_GGML_TYPE_F16 && d.cb_eval == NULL && !d.embeddings && d.offload_kqv && !d.kv_unified &&
             d.samplers == NULL && d.n_samplers == 0 && d.ctx_other == NULL;
    }
    return ok == 1;
}

/* ---- sessions: the keyformer context of each llama.cpp context ---------------------------------- */

struct session {
    struct llama_context *ctx;
    llama_memory_t mem;
    keyformer_context *kf;
    pthread_mutex_t lock; /* the decode and the edits of ctx */
    uint32_t n_ctx, n_ctx_seq;                 /* what the host is told */
    uint32_t real_n_ctx, real_n_ctx_seq;       /* what llama.cpp holds */
    bool per_stream;
    int32_t *seqs; /* the sequence of each token of the current batch */
    int32_t seqs_cap;
    int64_t evicted, gaps_closed;
    int errors_logged;
};

static struct session *sessions[KFP_MAX_SESSIONS];
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int in_init; /* llama_init_from_model reached again from inside it */

static struct session *find(const struct llama_context *ctx, llama_memory_t mem) {
    struct session *s = NULL;
    pthread_mutex_lock(&sessions_lock);
    for (int i = 0; i < KFP_MAX_SESSIONS && s == NULL; i++) {
        if (sessions[i] != NULL && (ctx != NULL ? sessions[i]->ctx == ctx : sessions[i]->mem == mem)) s = sessions[i];
    }
    pthread_mutex_unlock(&sessions_lock);
    return s;
}

/* Logs a failed keyformer call on s (the first KFP_MAX_LOGGED_ERRORS of them). */
static void session_error(struct session *s, const char *what, keyformer_status st) {
    if (s->errors_logged++ < KFP_MAX_LOGGED_ERRORS) {
        logf_("%s: %s (status %d)%s", what, kf.last_error(s->kf), (int)st,
              s->errors_logged == KFP_MAX_LOGGED_ERRORS ? "; further errors of this context are not logged" : "");
    }
}

static uint32_t pad256(uint64_t n) {
    uint64_t p = (n + 255) / 256 * 256;
    return p > UINT32_MAX ? UINT32_MAX - 255 : (uint32_t)p;
}

static bool reads_attention(int32_t policy) {
    return policy != KEYFORMER_POLICY_KEYDIFF && policy != KEYFORMER_POLICY_STREAMING &&
           policy != KEYFORMER_POLICY_WINDOW;
}

static bool quantized(int32_t type) { return type != KFP_GGML_TYPE_F32 && type != KFP_GGML_TYPE_F16 && type != KFP_GGML_TYPE_BF16; }

/* Why keyformer cannot serve a context of model with params, or NULL. */
static const char *refusal(const struct llama_model *model, const struct llama_context_params *p, int32_t policy) {
    if (!layout_ok()) return "this llama.cpp's llama_context_params differs from the release the preload was built for";
    if (p->embeddings) return "an embeddings context";
    if (p->ctx_type != KFP_CONTEXT_TYPE_DEFAULT || p->ctx_other != NULL) return "a draft or MTP context";
    if (REAL(llama_model_n_swa)(model) > 0) return "a sliding-window model";
    if (REAL(llama_model_is_recurrent)(model) || REAL(llama_model_is_hybrid)(model)) return "a recurrent or hybrid model";
    if (reads_attention(policy) && quantized(p->type_v)) {
        return "a quantized V cache needs flash attention, and this policy reads the attention (use KEYFORMER_POLICY=keydiff)";
    }
    return NULL;
}

/* The keyformer parameters for model: the library's defaults with the KEYFORMER_* overrides. */
static keyformer_params params_for(const struct llama_model *model) {
    keyformer_params kp = {.size = sizeof kp};
    kf.default_params(&kp);
    if (config.policy >= 0) kp.policy = config.policy;
    kp.n_layer = REAL(llama_model_n_layer)(model);
    kp.n_head = REAL(llama_model_n_head)(model);
    kp.n_head_kv = REAL(llama_model_n_head_kv)(model);
    kp.budget_tokens = config.budget;
    if (config.window >= 0) kp.window_tokens = config.window;
    if (config.sinks >= 0) kp.n_sinks = config.sinks;
    kp.rank_keep_sinks = config.keep_sinks;
    if (config.evict_slack >= 0) kp.evict_slack = config.evict_slack;
    if (config.observe_layer_stride >= 0) kp.observe_layer_stride = config.observe_layer_stride;
    if (config.observe_decode_stride >= 0) kp.observe_decode_stride = config.observe_decode_stride;
    return kp;
}

/* Creates the context with keyformer (see the top of the file), or NULL after logging where
 * keyformer cannot serve it (the caller then creates it as the host asked). *created tells a NULL
 * of llama.cpp's (the context could not be made at all) from a refusal. */
static struct llama_context *init_with_keyformer(struct llama_model *model, struct llama_context_params params,
                                                 bool *created) {
    *created = false;
    if (load_keyformer() != 0) return NULL;
    keyformer_params kp = params_for(model);
    int32_t policy = kp.policy;
    const char *why = refusal(model, &params, policy);
    if (why != NULL) {
        logf_("%s: this context passes through without keyformer", why);
        return NULL;
    }
    keyformer_context *k = NULL;
    keyformer_status kst = kf.context_new(&kp, &k);
    if (kst != KEYFORMER_OK) {
        logf_("keyformer_context_new: %s (status %d); this context passes through", kf.last_error(NULL), (int)kst);
        return NULL;
    }

    uint32_t n_seq = params.n_seq_max > 0 ? params.n_seq_max : 1;
    uint32_t asked = params.n_ctx > 0 ? params.n_ctx : (uint32_t)REAL(llama_model_n_ctx_train)(model);
    uint32_t n_ctx = pad256(asked), n_ctx_seq = n_ctx; /* as llama.cpp sizes what the host asked for */
    if (!params.kv_unified && n_seq > 1) {
        n_ctx_seq = pad256(n_ctx / n_seq);
        n_ctx = n_ctx_seq * n_seq;
    }
    struct llama_context_params p = params;
    if (p.n_batch > (uint32_t)config.n_batch) p.n_batch = (uint32_t)config.n_batch;
    if (p.n_ubatch > p.n_batch) p.n_ubatch = p.n_batch;
    if (policy != KEYFORMER_POLICY_FULL) {
        uint64_t kept = (uint64_t)config.budget + (uint64_t)kp.evict_slack;
        uint64_t cells = params.kv_unified || n_seq == 1 ? n_seq * kept + p.n_batch : n_seq * (kept + p.n_batch);
        if (cells < n_ctx) p.n_ctx = (uint32_t)cells;
    }
    if (reads_attention(policy) && p.flash_attn_type != KFP_FLASH_ATTN_TYPE_DISABLED) {
        if (p.flash_attn_type == KFP_FLASH_ATTN_TYPE_ENABLED) {
            logf_("flash attention turned off: policy %s reads the attention matrix", kfp_policy_name(policy));
        }
        p.flash_attn_type = KFP_FLASH_ATTN_TYPE_DISABLED;
    }
    p.cb_eval = kf.eval_callback;
    p.cb_eval_user_data = k;

    struct llama_context *ctx = REAL(llama_init_from_model)(model, p);
    if (ctx == NULL) {
        kf.context_free(k);
        *created = true; /* llama.cpp's own failure: the host hears of it as it would */
        return NULL;
    }
    Dl_info real;
    const char *libllama = dladdr((void *)REAL(llama_decode), &real) != 0 ? real.dli_fname : NULL;
    keyformer_status st = kf.attach(k, ctx, libllama);
    if (st == KEYFORMER_OK && params.cb_eval != NULL) st = kf.chain(k, params.cb_eval, params.cb_eval_user_data);
    struct session *s = st == KEYFORMER_OK ? calloc(1, sizeof *s) : NULL;
    int slot = -1;
    if (s != NULL) {
        pthread_mutex_lock(&sessions_lock);
        for (int i = 0; i < KFP_MAX_SESSIONS && slot < 0; i++) {
            if (sessions[i] == NULL) slot = i;
        }
        if (slot >= 0) {
            *s = (struct session){.ctx = ctx, .mem = REAL(llama_get_memory)(ctx), .kf = k, .n_ctx = n_ctx,
                                  .n_ctx_seq = n_ctx_seq, .real_n_ctx = REAL(llama_n_ctx)(ctx),
                                  .real_n_ctx_seq = REAL(llama_n_ctx_seq)(ctx)};
            s->per_stream = s->real_n_ctx_seq < s->real_n_ctx;
            pthread_mutex_init(&s->lock, NULL);
            sessions[slot] = s;
        }
        pthread_mutex_unlock(&sessions_lock);
    }
    if (slot < 0) {
        if (st != KEYFORMER_OK) {
            logf_("keyformer_llama_attach: %s (status %d); this context passes through", kf.last_error(k), (int)st);
        } else {
            logf_("more than %d contexts with keyformer at once; this one passes through", KFP_MAX_SESSIONS);
        }
        free(s);
        REAL(llama_free)(ctx);
        kf.context_free(k);
        return NULL;
    }
    logf_("policy %s, budget %d cells per sequence, %u sequence%s%s: %u cells (%u per sequence) where the host "
          "asked for %u; llama_n_ctx reports %u, llama_n_ctx_seq %u; at most %u tokens per llama_decode",
          kfp_policy_name(policy), (int)config.budget, n_seq, n_seq > 1 ? "s" : "",
          s->per_stream ? " in one KV stream each" : (n_seq > 1 ? " in a unified cache" : ""), s->real_n_ctx,
          s->real_n_ctx_seq, asked, n_ctx, n_ctx_seq, p.n_batch);
    return ctx;
}

KFP_EXPORT struct llama_context *llama_init_from_model(struct llama_model *model, struct llama_context_params params) {
    pthread_once(&setup_once, setup);
    if (config.budget == 0 || in_init) return REAL(llama_init_from_model)(model, params);
    in_init = 1;
    bool created;
    struct llama_context *ctx = init_with_keyformer(model, params, &created);
    if (ctx == NULL && !created) ctx = REAL(llama_init_from_model)(model, params);
    in_init = 0;
    return ctx;
}

KFP_EXPORT void llama_free(struct llama_context *ctx) {
    struct session *s = NULL;
    pthread_mutex_lock(&sessions_lock);
    for (int i = 0; i < KFP_MAX_SESSIONS && ctx != NULL; i++) {
        if (sessions[i] != NULL && sessions[i]->ctx == ctx) {
            s = sessions[i];
            sessions[i] = NULL;
        }
    }
    pthread_mutex_unlock(&sessions_lock);
    REAL(llama_free)(ctx);
    if (s != NULL) {
        kf.context_free(s->kf);
        pthread_mutex_destroy(&s->lock);
        free(s->seqs);
        free(s);
    }
}

KFP_EXPORT uint32_t llama_n_ctx(const struct llama_context *ctx) {
    struct session *s = find(ctx, NULL);
    return s != NULL ? s->n_ctx : REAL(llama_n_ctx)(ctx);
}

KFP_EXPORT uint32_t llama_n_ctx_seq(const struct llama_context *ctx) {
    struct session *s = find(ctx, NULL);
    return s != NULL ? s->n_ctx_seq : REAL(llama_n_ctx_seq)(ctx);
}

/* ---- decoding ------------------------------------------------------------------------------------ */

static llama_seq_id seq_of(const struct llama_batch *b, int32_t i) {
    return b->seq_id != NULL && b->n_seq_id != NULL && b->n_seq_id[i] > 0 && b->seq_id[i] != NULL ? b->seq_id[i][0] : 0;
}

/* Before a decode of b: where a sequence's first position in b lies past the next position after
 * the last one llama.cpp holds (the host truncated its history to a position whose predecessor was
 * evicted), the kept positions move up to close the gap, in llama.cpp and in keyformer. */
static void close_gaps(struct session *s, const struct llama_batch *b) {
    if (b->pos == NULL) return; /* llama.cpp places the tokens after the last position */
    for (int32_t i = 0; i < b->n_tokens; i++) {
        llama_seq_id seq = seq_of(b, i);
        bool first = true;
        llama_pos y = b->pos[i];
        for (int32_t j = 0; j < b->n_tokens; j++) {
            if (seq_of(b, j) != seq) continue;
            if (j < i) first = false;
            if (b->pos[j] < y) y = b->pos[j];
        }
        if (!first) continue;
        llama_pos x = REAL(llama_memory_seq_pos_max)(s->mem, seq);
        if (x >= 0 && y > x + 1) {
            llama_pos delta = y - 1 - x;
            REAL(llama_memory_seq_add)(s->mem, seq, -1, y, delta);
            keyformer_status st = kf.seq_add(s->kf, seq, -1, y, delta);
            if (st != KEYFORMER_OK) session_error(s, "closing a position gap (keyformer_llama_seq_add)", st);
            s->gaps_closed++;
        }
    }
}

static void write_stats(struct session *s, llama_seq_id seq, int32_t evicted) {
    int32_t held = -1;
    if (stats_file == NULL || kf.seq_length(s->kf, seq, &held) != KEYFORMER_OK) return;
    pthread_mutex_lock(&out_lock);
    fprintf(stats_file,
            "{\"ctx\":\"%p\",\"seq\":%d,\"cells\":%d,\"evicted\":%d,\"pos_min\":%d,\"pos_max\":%d,\"n_ctx\":%u,\"n_ctx_seq\":%u,"
            "\"n_ctx_virtual\":%u,\"n_ctx_seq_virtual\":%u,\"gaps_closed\":%" PRId64 "}\n",
            (void *)s->ctx, (int)seq, (int)held, (int)evicted, (int)REAL(llama_memory_seq_pos_min)(s->mem, seq),
            (int)REAL(llama_memory_seq_pos_max)(s->mem, seq),
            s->real_n_ctx, s->real_n_ctx_seq, s->n_ctx, s->n_ctx_seq, s->gaps_closed);
    fflush(stats_file);
    pthread_mutex_unlock(&out_lock);
}

KFP_EXPORT int32_t llama_decode(struct llama_context *ctx, struct llama_batch batch) {
    struct session *s = find(ctx, NULL);
    if (s == NULL || batch.n_tokens <= 0 || batch.token == NULL) return REAL(llama_decode)(ctx, batch);
    pthread_mutex_lock(&s->lock);
    if (s->seqs_cap < batch.n_tokens) {
        int32_t *grown = realloc(s->seqs, (size_t)batch.n_tokens * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&s->lock);
            return REAL(llama_decode)(ctx, batch);
        }
        s->seqs = grown;
        s->seqs_cap = batch.n_tokens;
    }
    for (int32_t i = 0; i < batch.n_tokens; i++) s->seqs[i] = seq_of(&batch, i);
    keyformer_status st;
    if (!s->per_stream && (st = kf.set_batch(s->kf, s->seqs, batch.n_tokens)) != KEYFORMER_OK) {
        session_error(s, "keyformer_llama_set_batch", st);
    }
    close_gaps(s, &batch);
    int32_t rc = REAL(llama_decode)(ctx, batch);
    if (rc != 0) {
        if ((st = kf.sync(s->kf, -1)) != KEYFORMER_OK) session_error(s, "keyformer_llama_sync", st);
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    for (int32_t i = 0; i < batch.n_tokens; i++) {
        llama_seq_id seq = s->seqs[i];
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = s->seqs[j] == seq;
        if (seen) continue;
        int32_t n = 0;
        if ((st = kf.apply(s->kf, seq, &n)) != KEYFORMER_OK) session_error(s, "keyformer_llama_apply", st);
        s->evicted += n;
        write_stats(s, seq, n);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- the host's cache edits, mirrored ------------------------------------------------------------ */

/* MIRROR(mem, what, call): after the real edit on mem, repeats it in keyformer with call (an
 * expression of k, the keyformer context). */
#define MIRROR(mem_, what_, call_)                                                                  \
    do {                                                                                            \
        struct session *s_ = find(NULL, (mem_));                                                    \
        if (s_ != NULL) {                                                                           \
            pthread_mutex_lock(&s_->lock);                                                          \
            keyformer_context *k = s_->kf;                                                          \
            keyformer_status st_ = (call_);                                                         \
            if (st_ != KEYFORMER_OK) session_error(s_, (what_), st_);                               \
            pthread_mutex_unlock(&s_->lock);                                                        \
        }                                                                                           \
    } while (0)

KFP_EXPORT bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1) {
    bool ok = REAL(llama_memory_seq_rm)(mem, seq, p0, p1);
    if (ok) MIRROR(mem, "keyformer_llama_seq_rm", kf.seq_rm(k, seq, p0, p1));
    return ok;
}

KFP_EXPORT void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1,
                                     llama_pos delta) {
    REAL(llama_memory_seq_add)(mem, seq, p0, p1, delta);
    MIRROR(mem, "keyformer_llama_seq_add", kf.seq_add(k, seq, p0, p1, delta));
}

KFP_EXPORT void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id src, llama_seq_id dst, llama_pos p0,
                                    llama_pos p1) {
    REAL(llama_memory_seq_cp)(mem, src, dst, p0, p1);
    MIRROR(mem, "keyformer_llama_seq_cp", kf.seq_cp(k, src, dst, p0, p1));
}

KFP_EXPORT void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq) {
    REAL(llama_memory_seq_keep)(mem, seq);
    MIRROR(mem, "keyformer_llama_seq_keep", kf.seq_keep(k, seq));
}

/* Dividing positions (self-extend) has no counterpart in keyformer: the sequence is forgotten
 * there (its cells stay in llama.cpp, unscored), with a log line. */
KFP_EXPORT void llama_memory_seq_div(llama_memory_t mem, llama_seq_id seq, llama_pos p0, llama_pos p1, int d) {
    REAL(llama_memory_seq_div)(mem, seq, p0, p1, d);
    if (find(NULL, mem) != NULL) logf_("llama_memory_seq_div of sequence %d: keyformer forgets that sequence", (int)seq);
    MIRROR(mem, "keyformer_llama_seq_rm", kf.seq_rm(k, seq, -1, -1));
}

KFP_EXPORT void llama_memory_clear(llama_memory_t mem, bool data) {
    REAL(llama_memory_clear)(mem, data);
    MIRROR(mem, "keyformer_llama_clear", kf.clear(k));
}

/* ---- state restores, refused --------------------------------------------------------------------- */

static bool refuse_restore(struct llama_context *ctx, const char *what) {
    if (find(ctx, NULL) == NULL) return false;
    logf_("%s refused: keyformer cannot tell where llama.cpp puts restored cells (the host reads the prompt "
          "again)", what);
    return true;
}

KFP_EXPORT size_t llama_state_set_data(struct llama_context *ctx, const uint8_t *src, size_t size) {
    return refuse_restore(ctx, "llama_state_set_data") ? 0 : REAL(llama_state_set_data)(ctx, src, size);
}

KFP_EXPORT bool llama_state_load_file(struct llama_context *ctx, const char *path, llama_token *tokens_out,
                                      size_t n_token_capacity, size_t *n_token_count_out) {
    return refuse_restore(ctx, "llama_state_load_file")
               ? false
               : REAL(llama_state_load_file)(ctx, path, tokens_out, n_token_capacity, n_token_count_out);
}

KFP_EXPORT size_t llama_state_seq_set_data(struct llama_context *ctx, const uint8_t *src, size_t size,
                                           llama_seq_id dest_seq_id) {
    return refuse_restore(ctx, "llama_state_seq_set_data") ? 0
                                                            : REAL(llama_state_seq_set_data)(ctx, src, size, dest_seq_id);
}

KFP_EXPORT size_t llama_state_seq_set_data_ext(struct llama_context *ctx, const uint8_t *src, size_t size,
                                               llama_seq_id dest_seq_id, uint32_t flags) {
    return refuse_restore(ctx, "llama_state_seq_set_data_ext")
               ? 0
               : REAL(llama_state_seq_set_data_ext)(ctx, src, size, dest_seq_id, flags);
}

KFP_EXPORT size_t llama_state_seq_load_file(struct llama_context *ctx, const char *path, llama_seq_id dest_seq_id,
                                            llama_token *tokens_out, size_t n_token_capacity,
                                            size_t *n_token_count_out) {
    return refuse_restore(ctx, "llama_state_seq_load_file")
               ? 0
               : REAL(llama_state_seq_load_file)(ctx, path, dest_seq_id, tokens_out, n_token_capacity,
                                                 n_token_count_out);
}
