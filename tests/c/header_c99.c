/* header_c99: keyformer.h compiles warning-free as C99 (-std=c99 -Wall -Wextra -Werror -pedantic)
 * and its structs keep their layout on LP64 (the ABI other languages mirror): version 1's fields
 * where they were, version 2's, 4's and 6's appended. */
#include "keyformer.h"

#include <stddef.h>

#define KF_ASSERT(name, cond) typedef char kf_assert_##name[(cond) ? 1 : -1]

#if UINTPTR_MAX == 0xffffffffffffffffu
KF_ASSERT(params_size, sizeof(keyformer_params) == 120);
KF_ASSERT(params_v6, offsetof(keyformer_params, observe_prompt_rows) == 112);
KF_ASSERT(params_v4, offsetof(keyformer_params, rank_mean_attention) == 96);
KF_ASSERT(keys_size, sizeof(keyformer_keys) == 40);
KF_ASSERT(keys_data, offsetof(keyformer_keys, data) == 32);
KF_ASSERT(params_seed, offsetof(keyformer_params, seed) == 64);
KF_ASSERT(params_v2, offsetof(keyformer_params, observe_layer_stride) == 72);
KF_ASSERT(params_layers, offsetof(keyformer_params, observe_layers) == 80);
KF_ASSERT(attention_size, sizeof(keyformer_attention) == 56);
KF_ASSERT(attention_data, offsetof(keyformer_attention, data) == 32);
KF_ASSERT(attention_logits, offsetof(keyformer_attention, logits) == 48);
#endif
KF_ASSERT(eviction_size, sizeof(keyformer_eviction) == 12);
KF_ASSERT(status_size, sizeof(keyformer_status) == 4);

int kf_header_c99(void);
int kf_header_c99(void) {
    keyformer_params p;
    keyformer_status (*fn)(keyformer_context *, int32_t, keyformer_eviction *, int32_t, int32_t *) = keyformer_plan;
    /* The llama.cpp functions: the eval callback has ggml_backend_sched_eval_callback's type. */
    bool (*cb)(struct ggml_tensor *, bool, void *) = keyformer_llama_eval_callback;
    keyformer_status (*attach)(keyformer_context *, struct llama_context *, const char *) = keyformer_llama_attach;
    keyformer_status (*chain)(keyformer_context *, bool (*)(struct ggml_tensor *, bool, void *), void *) =
        keyformer_llama_chain;
    /* The cache-edit mirrors (API version 3) take llama_memory_*'s arguments in llama.cpp's order. */
    keyformer_status (*seq_rm)(keyformer_context *, int32_t, int32_t, int32_t) = keyformer_llama_seq_rm;
    keyformer_status (*seq_add)(keyformer_context *, int32_t, int32_t, int32_t, int32_t) = keyformer_llama_seq_add;
    keyformer_status (*seq_cp)(keyformer_context *, int32_t, int32_t, int32_t, int32_t) = keyformer_llama_seq_cp;
    keyformer_status (*seq_keep)(keyformer_context *, int32_t) = keyformer_llama_seq_keep;
    keyformer_status (*clear)(keyformer_context *) = keyformer_llama_clear;
    keyformer_status (*sync)(keyformer_context *, int32_t) = keyformer_llama_sync;
    keyformer_status (*keys)(keyformer_context *, int32_t, int32_t, const keyformer_keys *) = keyformer_observe_keys;
    p.size = sizeof p;
    return (int)p.size + (fn != NULL) + (cb != NULL) + (attach != NULL) + (chain != NULL) + KEYFORMER_API_VERSION + KEYFORMER_ERR_INTERNAL + KEYFORMER_POLICY_WINDOW +
           KEYFORMER_GRANULARITY_PER_HEAD + (seq_rm != NULL) + (seq_add != NULL) + (seq_cp != NULL) + (seq_keep != NULL) +
           (clear != NULL) + (sync != NULL) + (keys != NULL) + KEYFORMER_POLICY_KEYDIFF;
}
