/* bench_observe: the time of one keyformer_observe call through the C ABI for one layer of a
 * SmolLM2-shaped model at 4k cells: n_kv = 4096 columns, 9 query heads (3 KV heads), 1 query row,
 * Keyformer policy, probabilities. The same workload as BenchmarkObserveGo in
 * tests/go/bench_test.go (make bench-abi, tests/c/bench_abi.py, compares them).
 *
 * Usage: bench_observe [calls per round (default 2000)] [rounds (default 7)]
 * Prints one line per round ("round <r>: <ns> ns per call") and, last, one JSON line:
 * {"c_ns":<median ns per call>,"rounds_ns":[<ns per call of each round>]}. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keyformer.h"

#define N_KV 4096
#define HEADS 9
#define HEADS_KV 3

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void must(keyformer_status st, keyformer_context *ctx, const char *what) {
    if (st != KEYFORMER_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, keyformer_status_string(st), keyformer_last_error(ctx));
        exit(1);
    }
}

int main(int argc, char **argv) {
    int calls = argc > 1 ? atoi(argv[1]) : 2000, rounds = argc > 2 ? atoi(argv[2]) : 7, r, i, h, j;
    static float data[HEADS * N_KV];
    static int32_t cells[N_KV], pos[N_KV];
    double *ns, *sorted;
    keyformer_params p;
    keyformer_context *ctx = NULL;
    keyformer_attention a;

    if (calls < 1 || rounds < 1) {
        fprintf(stderr, "usage: bench_observe [calls per round] [rounds]\n");
        return 2;
    }
    /* the rows: weights 1 + (7919 j + 104729 h) mod 1000, normalised (as BenchmarkObserveGo) */
    for (h = 0; h < HEADS; h++) {
        double sum = 0;
        for (j = 0; j < N_KV; j++) {
            data[h * N_KV + j] = (float)(1 + (7919 * j + 104729 * h) % 1000);
            sum += data[h * N_KV + j];
        }
        for (j = 0; j < N_KV; j++) {
            data[h * N_KV + j] = (float)(data[h * N_KV + j] / sum);
        }
    }
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    must(keyformer_default_params(&p), NULL, "default_params");
    p.policy = KEYFORMER_POLICY_KEYFORMER;
    p.n_layer = 1;
    p.n_head = HEADS;
    p.n_head_kv = HEADS_KV;
    p.budget_tokens = N_KV / 2;
    must(keyformer_context_new(&p, &ctx), NULL, "context_new");
    for (j = 0; j < N_KV; j++) {
        cells[j] = j;
        pos[j] = j;
    }
    must(keyformer_add_cells(ctx, 0, cells, pos, N_KV), ctx, "add_cells");
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = 1;
    a.n_heads = HEADS;
    a.n_cols = N_KV;
    a.row_stride = N_KV;
    a.head_stride = N_KV; /* llama.cpp's kq_soft_max: n_kv * n_tokens */
    a.data = data;

    for (i = 0; i < calls / 4 + 10; i++) { /* warm up */
        must(keyformer_observe(ctx, 0, 0, &a), ctx, "observe");
    }
    ns = (double *)malloc(sizeof *ns * (size_t)rounds);
    sorted = (double *)malloc(sizeof *sorted * (size_t)rounds);
    if (ns == NULL || sorted == NULL) {
        fprintf(stderr, "bench_observe: out of memory for %d rounds\n", rounds);
        return 1;
    }
    for (r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (i = 0; i < calls; i++) {
            must(keyformer_observe(ctx, 0, 0, &a), ctx, "observe");
        }
        ns[r] = (now_ns() - t0) / calls;
        printf("round %d: %.1f ns per call\n", r + 1, ns[r]);
    }
    memcpy(sorted, ns, sizeof *ns * (size_t)rounds);
    qsort(sorted, (size_t)rounds, sizeof *sorted, cmp_double);
    printf("{\"c_ns\":%.1f,\"rounds_ns\":[",
           rounds % 2 ? sorted[rounds / 2] : (sorted[rounds / 2 - 1] + sorted[rounds / 2]) / 2);
    for (r = 0; r < rounds; r++) {
        printf("%s%.1f", r ? "," : "", ns[r]);
    }
    printf("]}\n");
    free(ns);
    free(sorted);
    keyformer_context_free(ctx);
    return 0;
}
