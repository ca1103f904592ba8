/* The preload library's configuration: see config.h. */
#define _POSIX_C_SOURCE 200809L /* strcasecmp */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keyformer.h"

static const struct {
    const char *name;
    int32_t policy;
} policies[] = {
    {"keydiff", KEYFORMER_POLICY_KEYDIFF}, {"keyformer", KEYFORMER_POLICY_KEYFORMER},
    {"h2o", KEYFORMER_POLICY_H2O},         {"tova", KEYFORMER_POLICY_TOVA},
    {"peak", KEYFORMER_POLICY_PEAK},       {"streaming", KEYFORMER_POLICY_STREAMING},
    {"window", KEYFORMER_POLICY_WINDOW},   {"full", KEYFORMER_POLICY_FULL},
};

int32_t kfp_policy_of(const char *name) {
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        if (strcasecmp(name, policies[i].name) == 0) return policies[i].policy;
    }
    return -1;
}

const char *kfp_policy_name(int32_t policy) {
    if (policy == -1) return "default";
    for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
        if (policies[i].policy == policy) return policies[i].name;
    }
    return "?";
}

/* Reads the integer variable name into *out when it is set and not empty: a whole decimal number
 * in [min, max]. Returns 0, or -1 with the message in err. */
static int read_int(kfp_lookup lookup, void *ud, const char *name, int32_t min, int32_t max, int32_t *out,
                    char *err, size_t err_size) {
    const char *v = lookup(name, ud);
    if (v == NULL || v[0] == '\0') return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || errno != 0 || n < min || n > max) {
        snprintf(err, err_size, "%s=\"%.40s\": not a whole number from %d to %d", name, v, (int)min, (int)max);
        return -1;
    }
    *out = (int32_t)n;
    return 0;
}

static const char *string_or_null(kfp_lookup lookup, void *ud, const char *name) {
    const char *v = lookup(name, ud);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int kfp_config_read(kfp_lookup lookup, void *ud, struct kfp_config *out, char *err, size_t err_size) {
    struct kfp_config c = {.budget = 0, .policy = -1, .window = -1, .sinks = -1, .keep_sinks = 1, .evict_slack = -1,
                           .observe_layer_stride = -1, .observe_decode_stride = -1, .n_batch = 256};
    if (err_size > 0) err[0] = '\0';
    *out = c;
    if (read_int(lookup, ud, "KEYFORMER_BUDGET", 1, 1 << 24, &c.budget, err, err_size) != 0) return -1;
    if (c.budget == 0) return 0;
    const char *policy = string_or_null(lookup, ud, "KEYFORMER_POLICY");
    if (policy != NULL && (c.policy = kfp_policy_of(policy)) < 0) {
        snprintf(err, err_size,
                 "KEYFORMER_POLICY=\"%.40s\": not a policy (keydiff, keyformer, h2o, tova, peak, streaming, window, full)",
                 policy);
        return -1;
    }
    if (read_int(lookup, ud, "KEYFORMER_WINDOW", 1, 1 << 24, &c.window, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_SINKS", 0, 1 << 24, &c.sinks, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_KEEP_SINKS", 0, 1, &c.keep_sinks, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_EVICT_SLACK", 0, 1 << 24, &c.evict_slack, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_OBSERVE_LAYER_STRIDE", 1, 1 << 16, &c.observe_layer_stride, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_OBSERVE_DECODE_STRIDE", 1, 1 << 16, &c.observe_decode_stride, err, err_size) != 0 ||
        read_int(lookup, ud, "KEYFORMER_N_BATCH", 1, 1 << 20, &c.n_batch, err, err_size) != 0) {
        return -1;
    }
    if (c.window >= c.budget) {
        snprintf(err, err_size, "KEYFORMER_WINDOW=%d: must be below KEYFORMER_BUDGET=%d", (int)c.window, (int)c.budget);
        return -1;
    }
    c.stats = string_or_null(lookup, ud, "KEYFORMER_STATS");
    c.log = string_or_null(lookup, ud, "KEYFORMER_LOG");
    c.lib = string_or_null(lookup, ud, "KEYFORMER_LIB");
    *out = c;
    return 0;
}
