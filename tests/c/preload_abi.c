/* The preload library's mirror of llama.cpp's structs (bindings/preload/llama_abi.h) against the
 * real llama.h of the pinned release: every field at the same offset with the same size, the
 * same struct sizes and the same constants. Fails to compile on a difference; prints ok when run. */
#include <stddef.h>
#include <stdio.h>

#include "llama.h"

typedef struct llama_context_params real_context_params;
typedef struct llama_batch real_batch;
#define llama_context_params kfp_llama_context_params
#define llama_batch kfp_llama_batch
#include "llama_abi.h"
#undef llama_context_params
#undef llama_batch

#define SAME(real, mirror, f)                                                                        \
    _Static_assert(offsetof(real, f) == offsetof(struct mirror, f) &&                                \
                       sizeof(((real *)0)->f) == sizeof(((struct mirror *)0)->f),                    \
                   #real "." #f " differs from the mirror")

SAME(real_context_params, kfp_llama_context_params, n_ctx);
SAME(real_context_params, kfp_llama_context_params, n_batch);
SAME(real_context_params, kfp_llama_context_params, n_ubatch);
SAME(real_context_params, kfp_llama_context_params, n_seq_max);
SAME(real_context_params, kfp_llama_context_params, n_rs_seq);
SAME(real_context_params, kfp_llama_context_params, n_outputs_max);
SAME(real_context_params, kfp_llama_context_params, n_outputs_max_per_seq);
SAME(real_context_params, kfp_llama_context_params, n_threads);
SAME(real_context_params, kfp_llama_context_params, n_threads_batch);
SAME(real_context_params, kfp_llama_context_params, ctx_type);
SAME(real_context_params, kfp_llama_context_params, rope_scaling_type);
SAME(real_context_params, kfp_llama_context_params, pooling_type);
SAME(real_context_params, kfp_llama_context_params, attention_type);
SAME(real_context_params, kfp_llama_context_params, flash_attn_type);
SAME(real_context_params, kfp_llama_context_params, rope_freq_base);
SAME(real_context_params, kfp_llama_context_params, rope_freq_scale);
SAME(real_context_params, kfp_llama_context_params, yarn_ext_factor);
SAME(real_context_params, kfp_llama_context_params, yarn_attn_factor);
SAME(real_context_params, kfp_llama_context_params, yarn_beta_fast);
SAME(real_context_params, kfp_llama_context_params, yarn_beta_slow);
SAME(real_context_params, kfp_llama_context_params, yarn_orig_ctx);
SAME(real_context_params, kfp_llama_context_params, defrag_thold);
SAME(real_context_params, kfp_llama_context_params, cb_eval);
SAME(real_context_params, kfp_llama_context_params, cb_eval_user_data);
SAME(real_context_params, kfp_llama_context_params, type_k);
SAME(real_context_params, kfp_llama_context_params, type_v);
SAME(real_context_params, kfp_llama_context_params, abort_callback);
SAME(real_context_params, kfp_llama_context_params, abort_callback_data);
SAME(real_context_params, kfp_llama_context_params, embeddings);
SAME(real_context_params, kfp_llama_context_params, offload_kqv);
SAME(real_context_params, kfp_llama_context_params, no_perf);
SAME(real_context_params, kfp_llama_context_params, op_offload);
SAME(real_context_params, kfp_llama_context_params, swa_full);
SAME(real_context_params, kfp_llama_context_params, kv_unified);
SAME(real_context_params, kfp_llama_context_params, samplers);
SAME(real_context_params, kfp_llama_context_params, n_samplers);
SAME(real_context_params, kfp_llama_context_params, ctx_other);
_Static_assert(sizeof(real_context_params) == sizeof(struct kfp_llama_context_params), "llama_context_params size");

SAME(real_batch, kfp_llama_batch, n_tokens);
SAME(real_batch, kfp_llama_batch, token);
SAME(real_batch, kfp_llama_batch, embd);
SAME(real_batch, kfp_llama_batch, pos);
SAME(real_batch, kfp_llama_batch, n_seq_id);
SAME(real_batch, kfp_llama_batch, seq_id);
SAME(real_batch, kfp_llama_batch, logits);
_Static_assert(sizeof(real_batch) == sizeof(struct kfp_llama_batch), "llama_batch size");

_Static_assert(KFP_FLASH_ATTN_TYPE_AUTO == LLAMA_FLASH_ATTN_TYPE_AUTO, "flash attention auto");
_Static_assert(KFP_FLASH_ATTN_TYPE_DISABLED == LLAMA_FLASH_ATTN_TYPE_DISABLED, "flash attention off");
_Static_assert(KFP_FLASH_ATTN_TYPE_ENABLED == LLAMA_FLASH_ATTN_TYPE_ENABLED, "flash attention on");
_Static_assert(KFP_CONTEXT_TYPE_DEFAULT == LLAMA_CONTEXT_TYPE_DEFAULT, "context type");
_Static_assert(KFP_GGML_TYPE_F32 == GGML_TYPE_F32 && KFP_GGML_TYPE_F16 == GGML_TYPE_F16 &&
                   KFP_GGML_TYPE_BF16 == GGML_TYPE_BF16,
               "ggml types");

int main(void) {
    printf("preload_abi: the mirror matches llama.h (llama_context_params %zu bytes, llama_batch %zu): ok\n",
           sizeof(real_context_params), sizeof(real_batch));
    return 0;
}
