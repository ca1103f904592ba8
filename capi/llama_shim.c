/* llama_shim.c: the llama.cpp functions of include/keyformer.h (keyformer_llama_*).
 *
 * keyformer_llama_eval_callback answers llama.cpp's asks in C: about 1100 per llama_decode on a
 * 30-layer model, so an ask must cost a few ns. It calls into Go (kfgo_llama_eval) only for the two
 * nodes whose inputs give the ubatch's positions and cells (one each per ubatch), for the ask about
 * each attention tensor (the schedule decides: one per layer per ubatch) or, for a policy that
 * reads keys, each keys tensor, and for each computed tensor it asked for. It compares nodes with what Go handed over at attach (struct
 * kf_graph, llama_shim.h: bindings/llama's node names, resolved op numbers and tensor offsets),
 * so it needs no llama.cpp header.
 *
 * Per-context state on the C side, in a registry keyed by handle: whether the context is attached
 * with its kf_graph, and the host's chained callback. Every change bumps a generation counter; each thread caches its
 * last context's entry by value (thread-local) and re-reads it under the mutex only when the
 * handle or the generation changes, so the ask path takes no lock. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "keyformer.h"
#include "llama_shim.h"
#include "_cgo_export.h"

typedef bool (*kf_eval_cb)(struct ggml_tensor *, bool, void *);

struct kf_llama_slot {
    uintptr_t handle;
    int attached;
    struct kf_graph graph; /* set when attached */
    kf_eval_cb chain;
    void *chain_ud;
    struct kf_llama_slot *next;
};

static pthread_mutex_t kf_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kf_llama_slot *kf_reg; /* guarded by kf_reg_mu */
static atomic_ulong kf_reg_gen = 1;  /* bumped (under kf_reg_mu) by every change */

/* The calling thread's copy of its last context's slot, and the pairing of an ask with the
 * ask = false call that follows it (ggml calls both on the thread that runs llama_decode, the
 * second right after the chunk ending at the asked tensor is computed). */
struct kf_thread {
    uintptr_t handle;
    unsigned long gen; /* 0: never read */
    int attached;
    struct kf_graph graph; /* valid when attached */
    kf_eval_cb chain;
    void *chain_ud;
    const struct ggml_tensor *asked; /* last tensor asked about */
    bool kf_wants;                   /* keyformer wanted it (an attention tensor the schedule reads) */
    bool host_wants;                 /* the chained callback wanted it */
};
static __thread struct kf_thread kf_tls;

/* kf_slot returns h's slot, creating it when create is set (kf_reg_mu held). */
static struct kf_llama_slot *kf_slot(uintptr_t h, int create) {
    struct kf_llama_slot *s;
    for (s = kf_reg; s != NULL; s = s->next) {
        if (s->handle == h) {
            return s;
        }
    }
    if (!create) {
        return NULL;
    }
    s = (struct kf_llama_slot *)calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->handle = h;
    s->next = kf_reg;
    kf_reg = s;
    return s;
}

void kf_llama_set_attached(uintptr_t h, const struct kf_graph *g) {
    pthread_mutex_lock(&kf_reg_mu);
    struct kf_llama_slot *s = kf_slot(h, g != NULL);
    if (s != NULL) {
        s->attached = g != NULL;
        if (g != NULL) {
            s->graph = *g;
        }
        atomic_fetch_add_explicit(&kf_reg_gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&kf_reg_mu);
}

static int kf_llama_set_chain(uintptr_t h, kf_eval_cb cb, void *ud) {
    int ok = 1;
    pthread_mutex_lock(&kf_reg_mu);
    struct kf_llama_slot *s = kf_slot(h, cb != NULL);
    if (s != NULL) {
        s->chain = cb;
        s->chain_ud = cb != NULL ? ud : NULL;
        atomic_fetch_add_explicit(&kf_reg_gen, 1, memory_order_release);
    } else if (cb != NULL) {
        ok = 0; /* out of memory */
    }
    pthread_mutex_unlock(&kf_reg_mu);
    return ok;
}

/* Called by keyformer_context_free (shim.c) once the handle is released. */
void kf_llama_drop(uintptr_t h);
void kf_llama_drop(uintptr_t h) {
    pthread_mutex_lock(&kf_reg_mu);
    struct kf_llama_slot **p = &kf_reg;
    while (*p != NULL && (*p)->handle != h) {
        p = &(*p)->next;
    }
    if (*p != NULL) {
        struct kf_llama_slot *s = *p;
        *p = s->next;
        free(s);
        atomic_fetch_add_explicit(&kf_reg_gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&kf_reg_mu);
}

/* kf_refresh re-reads the calling thread's copy of h's slot (none: not attached, no chain). */
static void kf_refresh(struct kf_thread *th, uintptr_t h) {
    pthread_mutex_lock(&kf_reg_mu);
    const struct kf_llama_slot *s = kf_slot(h, 0);
    th->handle = h;
    th->gen = atomic_load_explicit(&kf_reg_gen, memory_order_relaxed);
    th->attached = s != NULL && s->attached;
    if (th->attached) {
        th->graph = s->graph;
    }
    th->chain = s != NULL ? s->chain : NULL;
    th->chain_ud = s != NULL ? s->chain_ud : NULL;
    pthread_mutex_unlock(&kf_reg_mu);
}

/* kf_name is t's name; kf_op its op (read at the offsets of the thread's attached context). */
static inline const char *kf_name(const struct kf_graph *g, const struct ggml_tensor *t) {
    return (const char *)t + g->off_name;
}

static inline int32_t kf_op(const struct kf_graph *g, const struct ggml_tensor *t) {
    int32_t op;
    memcpy(&op, (const char *)t + g->off_op, sizeof op);
    return op;
}

/* kf_is reports whether name starts with the n bytes of want (the first byte compared inline:
 * most nodes differ there). */
static inline bool kf_is(const char *name, const char *want, uint32_t n) {
    return name[0] == want[0] && memcmp(name, want, n) == 0;
}

bool keyformer_llama_eval_callback(struct ggml_tensor *t, bool ask, void *user_data) {
    uintptr_t h = (uintptr_t)user_data;
    struct kf_thread *th = &kf_tls; /* one thread-local lookup per call: */
#if defined(__GNUC__)
    __asm__("" : "+r"(th)); /* (keeps the compiler from recomputing the address after each call) */
#endif
    if (th->handle != h || th->gen != atomic_load_explicit(&kf_reg_gen, memory_order_acquire)) {
        kf_refresh(th, h);
    }
    if (t == NULL) {
        return !ask;
    }
    if (ask) {
        bool want = false;
        if (th->attached) {
            const struct kf_graph *g = &th->graph;
            const char *name = kf_name(g, t);
            if (kf_is(name, g->attention, g->attention_len)) {
                want = kfgo_llama_eval(h, t, 1) != 0;
            } else {
                int32_t op = kf_op(g, t);
                if (op == g->op_positions && kf_is(name, g->positions, g->positions_len)) {
                    kfgo_llama_eval(h, t, 1); /* reads the node's input; always "no" */
                } else if (g->read_keys && (op == g->op_keys[0] || op == g->op_keys[1]) &&
                           kf_is(name, g->keys, g->keys_len)) {
                    want = kfgo_llama_eval(h, t, 1) != 0; /* wants the keys it reads */
                } else if (op == g->op_cells && kf_is(name, g->cells, g->cells_len)) {
                    kfgo_llama_eval(h, t, 1); /* reads the node's input; always "no" */
                }
            }
        }
        bool host = th->chain != NULL && th->chain(t, true, th->chain_ud);
        th->asked = t;
        th->kf_wants = want;
        th->host_wants = host;
        return want || host;
    }
    bool mine = th->asked == t;
    bool host = mine && th->host_wants && th->chain != NULL;
    bool ours = mine && th->kf_wants;
    th->asked = NULL;
    if (ours && th->attached) {
        kfgo_llama_eval(h, t, 0); /* may detach the context (a recovered panic): refresh below */
        if (th->gen != atomic_load_explicit(&kf_reg_gen, memory_order_acquire)) {
            kf_refresh(th, h);
        }
    }
    if (host && th->chain != NULL) {
        return th->chain(t, false, th->chain_ud);
    }
    return true; /* never false: that would stop the graph while llama_decode reports success */
}

keyformer_status keyformer_llama_attach(keyformer_context *ctx, struct llama_context *lctx,
                                        const char *llama_library) {
    return kfgo_llama_attach((uintptr_t)ctx, lctx, (char *)llama_library);
}

keyformer_status keyformer_llama_chain(keyformer_context *ctx, bool (*cb)(struct ggml_tensor *, bool, void *),
                                       void *user_data) {
    keyformer_status st = kfgo_llama_check((uintptr_t)ctx, "keyformer_llama_chain");
    if (st != KEYFORMER_OK) {
        return st;
    }
    if (!kf_llama_set_chain((uintptr_t)ctx, cb, user_data)) {
        return kfgo_llama_fail((uintptr_t)ctx, "keyformer_llama_chain", "out of memory");
    }
    return KEYFORMER_OK;
}

keyformer_status keyformer_llama_set_batch(keyformer_context *ctx, const int32_t *seq_of_token, int32_t n) {
    return kfgo_llama_set_batch((uintptr_t)ctx, (int32_t *)seq_of_token, n);
}

keyformer_status keyformer_llama_apply(keyformer_context *ctx, int32_t seq, int32_t *n_evicted) {
    return kfgo_llama_apply((uintptr_t)ctx, seq, n_evicted);
}

keyformer_status keyformer_llama_restore(keyformer_context *ctx, int32_t seq, const uint8_t *state, size_t size) {
    return kfgo_llama_restore((uintptr_t)ctx, seq, (uint8_t *)state, size);
}

keyformer_status keyformer_llama_seq_rm(keyformer_context *ctx, int32_t seq, int32_t p0, int32_t p1) {
    return kfgo_llama_seq_rm((uintptr_t)ctx, seq, p0, p1);
}

keyformer_status keyformer_llama_seq_add(keyformer_context *ctx, int32_t seq, int32_t p0, int32_t p1, int32_t delta) {
    return kfgo_llama_seq_add((uintptr_t)ctx, seq, p0, p1, delta);
}

keyformer_status keyformer_llama_seq_cp(keyformer_context *ctx, int32_t src, int32_t dst, int32_t p0, int32_t p1) {
    return kfgo_llama_seq_cp((uintptr_t)ctx, src, dst, p0, p1);
}

keyformer_status keyformer_llama_seq_keep(keyformer_context *ctx, int32_t seq) {
    return kfgo_llama_seq_keep((uintptr_t)ctx, seq);
}

keyformer_status keyformer_llama_clear(keyformer_context *ctx) {
    return kfgo_llama_clear((uintptr_t)ctx);
}

keyformer_status keyformer_llama_sync(keyformer_context *ctx, int32_t seq) {
    return kfgo_llama_sync((uintptr_t)ctx, seq);
}
