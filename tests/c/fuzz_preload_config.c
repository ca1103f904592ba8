/* libFuzzer target: the preload library's KEYFORMER_* parsing (bindings/preload/config.c) on
 * arbitrary values. The input is the message buffer's size (first byte), then the values of the
 * variables, NUL-separated, in the order of NAMES (a missing one is unset). What it checks, besides
 * ASan and UBSan: the message fits its buffer and is NUL-terminated; a refusal reads as off and has
 * a message naming a variable; an accepted configuration holds values in their documented ranges
 * (the budget off or positive, a known policy, a window below the budget), and its strings are the
 * values given. Built by `make fuzz-c` (clang -fsanitize=fuzzer,address,undefined). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "keyformer.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_preload_config: %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *const NAMES[] = {"KEYFORMER_BUDGET", "KEYFORMER_POLICY", "KEYFORMER_WINDOW",
                                    "KEYFORMER_SINKS", "KEYFORMER_KEEP_SINKS", "KEYFORMER_EVICT_SLACK", "KEYFORMER_OBSERVE_LAYER_STRIDE",
                                    "KEYFORMER_OBSERVE_DECODE_STRIDE", "KEYFORMER_N_BATCH", "KEYFORMER_STATS",
                                    "KEYFORMER_LOG", "KEYFORMER_LIB"};
#define N_NAMES (sizeof NAMES / sizeof NAMES[0])

static const char *lookup(const char *name, void *user_data) {
    char **values = user_data;
    for (size_t i = 0; i < N_NAMES; i++) {
        if (strcmp(name, NAMES[i]) == 0) return values[i];
    }
    CHECK(!"a variable that is not one of NAMES");
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    size_t err_size = data[0] % 160;
    char *text = malloc(size); /* the values, NUL-terminated copies */
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *values[N_NAMES] = {0};
    char *p = text, *end = text + size - 1;
    for (size_t i = 0; i < N_NAMES && p < end; i++) {
        values[i] = p;
        p += strlen(p) + 1;
    }
    char *err = malloc(err_size + 1);
    err[err_size] = 'X'; /* a guard past the buffer the parser is given */
    struct kfp_config c;
    int rc = kfp_config_read(lookup, values, &c, err, err_size);
    CHECK(err[err_size] == 'X');
    CHECK(rc == 0 || rc == -1);
    if (err_size > 0) CHECK(memchr(err, '\0', err_size) != NULL);
    if (rc != 0) {
        CHECK(c.budget == 0);
        if (err_size > 40) CHECK(strncmp(err, "KEYFORMER_", 10) == 0);
    } else if (c.budget != 0) {
        CHECK(c.budget > 0 && c.budget <= 1 << 24);
        CHECK(c.policy == -1 || strcmp(kfp_policy_name(c.policy), "?") != 0);
        CHECK(c.policy == -1 || kfp_policy_of(kfp_policy_name(c.policy)) == c.policy);
        CHECK(c.window == -1 || (c.window >= 1 && c.window < c.budget));
        CHECK(c.sinks >= -1 && c.evict_slack >= -1 && (c.keep_sinks == 0 || c.keep_sinks == 1));
        CHECK(c.observe_layer_stride == -1 || c.observe_layer_stride >= 1);
        CHECK(c.observe_decode_stride == -1 || c.observe_decode_stride >= 1);
        CHECK(c.n_batch >= 1 && c.n_batch <= 1 << 20);
        CHECK(c.stats == NULL || c.stats == values[9]);
        CHECK(c.log == NULL || c.log == values[10]);
        CHECK(c.lib == NULL || c.lib == values[11]);
    } else {
        CHECK(values[0] == NULL || values[0][0] == '\0');
    }
    free(err);
    free(text);
    return 0;
}
