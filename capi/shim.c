/* shim.c: the public functions of include/keyformer.h, forwarded to the Go exports (kfgo_*) of
 * this package. The header is the single source of the public names and types; the shim only
 * turns handles into integers (no Go pointer ever crosses the boundary) and drops const, which Go
 * cannot express. Static strings live here. */
#include <stddef.h>
#include <stdint.h>

#include "keyformer.h"
#include "_cgo_export.h"

#define KF_STR2(x) #x
#define KF_STR(x) KF_STR2(x)

static uintptr_t kf_handle(const keyformer_context *ctx) { return (uintptr_t)ctx; }

int32_t keyformer_api_version(void) { return KEYFORMER_API_VERSION; }

const char *keyformer_version(void) {
    return KF_STR(KEYFORMER_VERSION_MAJOR) "." KF_STR(KEYFORMER_VERSION_MINOR) "." KF_STR(KEYFORMER_VERSION_PATCH);
}

const char *keyformer_status_string(keyformer_status status) {
    switch (status) {
    case KEYFORMER_OK: return "ok";
    case KEYFORMER_ERR_INVALID_ARGUMENT: return "invalid argument";
    case KEYFORMER_ERR_INVALID_HANDLE: return "invalid handle";
    case KEYFORMER_ERR_INVALID_ATTENTION: return "invalid attention";
    case KEYFORMER_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case KEYFORMER_ERR_INVALID_STATE: return "invalid state";
    case KEYFORMER_ERR_UNSUPPORTED: return "unsupported";
    case KEYFORMER_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *keyformer_last_error(const keyformer_context *ctx) { return kfgo_last_error(kf_handle(ctx)); }

keyformer_status keyformer_default_params(keyformer_params *params) { return kfgo_default_params(params); }

keyformer_status keyformer_context_new(const keyformer_params *params, keyformer_context **out) {
    uintptr_t h = 0;
    keyformer_status st = kfgo_context_new((keyformer_params *)params, out ? &h : NULL);
    if (out) {
        *out = st == KEYFORMER_OK ? (keyformer_context *)h : NULL;
    }
    return st;
}

void kf_llama_drop(uintptr_t h); /* llama_shim.c */

keyformer_status keyformer_context_free(keyformer_context *ctx) {
    keyformer_status st = kfgo_context_free(kf_handle(ctx));
    if (st == KEYFORMER_OK) {
        kf_llama_drop(kf_handle(ctx)); /* its llama.cpp binding and chained callback */
    }
    return st;
}

keyformer_status keyformer_set_prompt_length(keyformer_context *ctx, int32_t seq, int32_t n_prompt) {
    return kfgo_set_prompt_length(kf_handle(ctx), seq, n_prompt);
}

keyformer_status keyformer_add_cells(keyformer_context *ctx, int32_t seq, const int32_t *cells,
                                     const int32_t *positions, int32_t n) {
    return kfgo_add_cells(kf_handle(ctx), seq, (int32_t *)cells, (int32_t *)positions, n);
}

keyformer_status keyformer_wants_attention(keyformer_context *ctx, int32_t seq, int32_t layer, int32_t n_new,
                                          int32_t *wanted) {
    return kfgo_wants_attention(kf_handle(ctx), seq, layer, n_new, wanted);
}

keyformer_status keyformer_observe(keyformer_context *ctx, int32_t seq, int32_t layer,
                                   const keyformer_attention *attention) {
    return kfgo_observe(kf_handle(ctx), seq, layer, (keyformer_attention *)attention);
}

keyformer_status keyformer_observe_keys(keyformer_context *ctx, int32_t seq, int32_t layer,
                                        const keyformer_keys *keys) {
    return kfgo_observe_keys(kf_handle(ctx), seq, layer, (keyformer_keys *)keys);
}

keyformer_status keyformer_plan(keyformer_context *ctx, int32_t seq, keyformer_eviction *out, int32_t capacity,
                                int32_t *n_out) {
    return kfgo_plan(kf_handle(ctx), seq, out, capacity, n_out);
}

keyformer_status keyformer_forget(keyformer_context *ctx, int32_t seq, const keyformer_eviction *evictions,
                                  int32_t n) {
    return kfgo_forget(kf_handle(ctx), seq, (keyformer_eviction *)evictions, n);
}

keyformer_status keyformer_seq_length(keyformer_context *ctx, int32_t seq, int32_t *n_out) {
    return kfgo_seq_length(kf_handle(ctx), seq, n_out);
}

keyformer_status keyformer_seq_reset(keyformer_context *ctx, int32_t seq) {
    return kfgo_seq_reset(kf_handle(ctx), seq);
}

keyformer_status keyformer_state_size(keyformer_context *ctx, int32_t seq, size_t *size_out) {
    return kfgo_state_size(kf_handle(ctx), seq, size_out);
}

keyformer_status keyformer_state_save(keyformer_context *ctx, int32_t seq, uint8_t *buf, size_t capacity,
                                      size_t *written) {
    return kfgo_state_save(kf_handle(ctx), seq, buf, capacity, written);
}

keyformer_status keyformer_state_load(keyformer_context *ctx, int32_t seq, const uint8_t *buf, size_t size) {
    return kfgo_state_load(kf_handle(ctx), seq, (uint8_t *)buf, size);
}
