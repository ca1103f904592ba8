/* consumer: a program built against an installed keyformer (find_package or pkg-config). It
 * checks that the header and the library agree, then runs one prefill and plan. */
#include <stdio.h>
#include <string.h>

#include <keyformer.h>

int main(void) {
    keyformer_params p;
    keyformer_context *ctx = NULL;
    keyformer_eviction ev[4];
    int32_t cells[4] = {0, 1, 2, 3}, pos[4] = {0, 1, 2, 3}, n = 0;
    float attn[16] = {1, 0, 0, 0, .5f, .5f, 0, 0, .6f, .1f, .3f, 0, .4f, .1f, .2f, .3f};
    keyformer_attention a;

    if (keyformer_api_version() < KEYFORMER_API_VERSION) {
        fprintf(stderr, "library API %d, header %d\n", (int)keyformer_api_version(), KEYFORMER_API_VERSION);
        return 1;
    }
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    keyformer_default_params(&p);
    p.policy = KEYFORMER_POLICY_H2O;
    p.n_layer = p.n_head = p.n_head_kv = 1;
    p.budget_tokens = 2;
    p.window_tokens = 1;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = 4;
    a.n_heads = 1;
    a.n_cols = 4;
    a.row_stride = 4;
    a.data = attn;
    /* H2O scores: c0 2.5, c1 0.7, c2 0.5, c3 0.3; c3 is the window: evict c1 and c2 */
    if (keyformer_context_new(&p, &ctx) != KEYFORMER_OK || keyformer_add_cells(ctx, 0, cells, pos, 4) != KEYFORMER_OK ||
        keyformer_observe(ctx, 0, 0, &a) != KEYFORMER_OK || keyformer_plan(ctx, 0, ev, 4, &n) != KEYFORMER_OK) {
        fprintf(stderr, "keyformer: %s\n", keyformer_last_error(ctx));
        return 1;
    }
    if (n != 2 || ev[0].cell != 1 || ev[1].cell != 2) {
        fprintf(stderr, "unexpected plan: %d evictions\n", n);
        return 1;
    }
    keyformer_context_free(ctx);
    printf("consumer: keyformer %s ok\n", keyformer_version());
    return 0;
}
