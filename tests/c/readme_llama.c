/* readme_llama.c: the README's "Use with llama.cpp" snippet, compiled into llama_host and run by the
 * readme_llama test. The lines marked + are what a llama.cpp host adds to its usual loop: a
 * bounded prompt (fed in n_ubatch chunks, evicting after each) and greedy generation; the cache
 * never holds more than budget + n_ubatch cells. Returns the tokens kept, or -1. */
#include <stdio.h>

#include "keyformer.h"
#include "llama.h"
#include "readme_llama.h"

int32_t readme_llama(struct llama_model *model, llama_token *prompt, int32_t n_prompt, int32_t n_gen, int n_threads) {
    keyformer_params kp = {.size = sizeof kp};  keyformer_context *kf;  int32_t n_evicted, kept = -1, ub = 128;  /* + */
    keyformer_default_params(&kp);  kp.budget_tokens = 256;  kp.n_new_tokens = n_gen;                           /* + */
    kp.n_layer = llama_model_n_layer(model);  kp.n_head = llama_model_n_head(model);  kp.n_head_kv = llama_model_n_head_kv(model); /* + */
    if (keyformer_context_new(&kp, &kf)) return fprintf(stderr, "%s\n", keyformer_last_error(NULL)), -1;      /* + */
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = kp.budget_tokens + ub;  cp.n_batch = cp.n_ubatch = ub;  cp.n_threads = cp.n_threads_batch = n_threads;
    cp.cb_eval = keyformer_llama_eval_callback;  cp.cb_eval_user_data = kf;   /* + */
    struct llama_context *lctx = llama_init_from_model(model, cp);
    if (lctx && keyformer_llama_attach(kf, lctx, NULL) == KEYFORMER_OK) {    /* + NULL: llama.cpp as linked */
        keyformer_set_prompt_length(kf, 0, n_prompt);                        /* + the prompt comes in chunks */
        llama_token tok = 0;
        for (int32_t done = 0, n = 0; done < n_prompt + n_gen; done += n) {
            n = done >= n_prompt ? 1 : n_prompt - done < ub ? n_prompt - done : ub;
            if (llama_decode(lctx, llama_batch_get_one(done < n_prompt ? prompt + done : &tok, n))) break;
            if (keyformer_llama_apply(kf, 0, &n_evicted)) break;              /* + after every decode */
            tok = readme_argmax(lctx);
            if (done + n >= n_prompt + n_gen) keyformer_seq_length(kf, 0, &kept);
        }
    }
    if (kept < 0) fprintf(stderr, "readme_llama: %s\n", keyformer_last_error(kf));
    llama_free(lctx);
    keyformer_context_free(kf);                                               /* + after llama_free */
    return kept;
}
