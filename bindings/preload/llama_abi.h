/* The part of llama.cpp's C API (the pinned release, build/scripts/pins.env) that the preload library
 * interposes or calls, declared here so that `make lib` builds it without llama.cpp's headers.
 * The layouts are those of llama.h: tests/c/preload_abi.c checks every offset and size against the
 * real header, and the preload reads llama_context_default_params() back through this mirror at
 * run time (layout_ok in preload.c) and stays out of the way of a llama.cpp whose layout differs. */
#ifndef KEYFORMER_PRELOAD_LLAMA_ABI_H
#define KEYFORMER_PRELOAD_LLAMA_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct llama_model;
struct llama_context;
struct llama_memory_i;
struct ggml_tensor;
typedef struct llama_memory_i *llama_memory_t;
typedef int32_t llama_pos;
typedef int32_t llama_token;
typedef int32_t llama_seq_id;
typedef bool (*ggml_backend_sched_eval_callback)(struct ggml_tensor *t, bool ask, void *user_data);
typedef bool (*ggml_abort_callback)(void *data);

#define KFP_FLASH_ATTN_TYPE_AUTO (-1)
#define KFP_FLASH_ATTN_TYPE_DISABLED 0
#define KFP_FLASH_ATTN_TYPE_ENABLED 1
#define KFP_CONTEXT_TYPE_DEFAULT 0
#define KFP_GGML_TYPE_F32 0
#define KFP_GGML_TYPE_F16 1
#define KFP_GGML_TYPE_BF16 30

/* struct llama_context_params (160 bytes; enums are int32_t). */
struct llama_context_params {
    uint32_t n_ctx;
    uint32_t n_batch;
    uint32_t n_ubatch;
    uint32_t n_seq_max;
    uint32_t n_rs_seq;
    uint32_t n_outputs_max;
    uint32_t n_outputs_max_per_seq;
    int32_t n_threads;
    int32_t n_threads_batch;
    int32_t ctx_type;
    int32_t rope_scaling_type;
    int32_t pooling_type;
    int32_t attention_type;
    int32_t flash_attn_type;
    float rope_freq_base;
    float rope_freq_scale;
    float yarn_ext_factor;
    float yarn_attn_factor;
    float yarn_beta_fast;
    float yarn_beta_slow;
    uint32_t yarn_orig_ctx;
    float defrag_thold;
    ggml_backend_sched_eval_callback cb_eval;
    void *cb_eval_user_data;
    int32_t type_k;
    int32_t type_v;
    ggml_abort_callback abort_callback;
    void *abort_callback_data;
    bool embeddings;
    bool offload_kqv;
    bool no_perf;
    bool op_offload;
    bool swa_full;
    bool kv_unified;
    void *samplers;
    size_t n_samplers;
    struct llama_context *ctx_other;
};

/* struct llama_batch (56 bytes). */
struct llama_batch {
    int32_t n_tokens;
    llama_token *token;
    float *embd;
    llama_pos *pos;
    int32_t *n_seq_id;
    llama_seq_id **seq_id;
    int8_t *logits;
};

#endif
