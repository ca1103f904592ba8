#include <stdio.h>
#include "keyformer.h"
int main(void) { /* a model of 1 layer and 1 head; keep 2 tokens, the newest one always */
    keyformer_params p = {.size = sizeof p};  keyformer_context *ctx;  keyformer_eviction ev[4];  int32_t n = 0;
    keyformer_default_params(&p);  p.policy = KEYFORMER_POLICY_KEYFORMER;  /* a policy that reads attention */
    p.n_layer = p.n_head = p.n_head_kv = 1;  p.budget_tokens = 2;  p.window_tokens = 1;
    if (keyformer_context_new(&p, &ctx)) return fprintf(stderr, "%s\n", keyformer_last_error(NULL)), 1;
    int32_t cells[3] = {0, 1, 2}, pos[3] = {0, 1, 2};     /* 3 prompt tokens landed in cells 0..2 */
    float attn[9] = {1, 0, 0,  .5f, .5f, 0,  .2f, .1f, .7f}; /* 3 query rows x 3 cells, causal */
    keyformer_attention a = {.size = sizeof a, .n_rows = 3, .n_heads = 1, .n_cols = 3, .row_stride = 3, .data = attn};
    keyformer_add_cells(ctx, 0, cells, pos, 3);            /* sequence 0 */
    keyformer_observe(ctx, 0, 0, &a);                      /* layer 0: once per layer per ubatch */
    if (keyformer_plan(ctx, 0, ev, 4, &n)) return fprintf(stderr, "%s\n", keyformer_last_error(ctx)), 1;
    keyformer_forget(ctx, 0, ev, n);                       /* once the engine has freed ev[i].cell */
    printf("evicted %d cell(s): cell %d\n", n, ev[0].cell);
    return keyformer_context_free(ctx); }
