/* readme_llama.h: the README snippet (readme_llama.c) and the helper it uses from llama_host.c. */
#ifndef KF_README_LLAMA_H
#define KF_README_LLAMA_H

#include <stdint.h>

#include "llama.h"

/* Runs the snippet: a budget of 256 tokens over prompt, then n_gen greedy tokens; returns the
 * tokens kept at the end, or -1. */
int32_t readme_llama(struct llama_model *model, llama_token *prompt, int32_t n_prompt, int32_t n_gen, int n_threads);

/* The most likely next token after the last decode. */
llama_token readme_argmax(struct llama_context *lctx);

#endif
