/* The preload library's configuration, read from the environment (KEYFORMER_* variables). */
#ifndef KEYFORMER_PRELOAD_CONFIG_H
#define KEYFORMER_PRELOAD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

/* One KEYFORMER_* setting; -1 in an integer field means "the library's default". */
struct kfp_config {
    int32_t budget;                /* KEYFORMER_BUDGET: cells kept per sequence; 0 = off */
    int32_t policy;                /* KEYFORMER_POLICY: a KEYFORMER_POLICY_* value */
    int32_t window;                /* KEYFORMER_WINDOW: recent window in tokens */
    int32_t sinks;                 /* KEYFORMER_SINKS: StreamingLLM's first tokens */
    int32_t keep_sinks;            /* KEYFORMER_KEEP_SINKS: 1 (default): the scoring policies never
                                      evict the first KEYFORMER_SINKS tokens (a chat's template
                                      prefix); 0: they may */
    int32_t evict_slack;           /* KEYFORMER_EVICT_SLACK: cells past the budget before evicting */
    int32_t observe_layer_stride;  /* KEYFORMER_OBSERVE_LAYER_STRIDE */
    int32_t observe_decode_stride; /* KEYFORMER_OBSERVE_DECODE_STRIDE */
    int32_t n_batch;               /* KEYFORMER_N_BATCH: the most tokens of one llama_decode; default 256 */
    const char *stats;             /* KEYFORMER_STATS: a file that gets one JSON line per eviction pass, or NULL */
    const char *log;               /* KEYFORMER_LOG: a file for the log lines (default stderr), or NULL */
    const char *lib;               /* KEYFORMER_LIB: libkeyformer.so's path, or NULL (next to this library) */
};

/* Where the configuration comes from: getenv, or a test's table. Returns NULL for an unset name. */
typedef const char *(*kfp_lookup)(const char *name, void *user_data);

/* Reads the KEYFORMER_* variables through lookup into *out. Returns 0 on success (out->budget 0:
 * KEYFORMER_BUDGET unset or empty, the preload stays off), or -1 with a one-line message in
 * err (at most err_size bytes, NUL-terminated) naming the variable and what it must be; *out then
 * reads as off. Strings in *out point into what lookup returned. */
int kfp_config_read(kfp_lookup lookup, void *user_data, struct kfp_config *out, char *err, size_t err_size);

/* The policy named name (keydiff, keyformer, h2o, tova, peak, streaming, window, full; case-blind),
 * or -1. */
int32_t kfp_policy_of(const char *name);

/* The name of a KEYFORMER_POLICY_* value, or "default" for -1 and "?" for an unknown one. */
const char *kfp_policy_name(int32_t policy);

#endif
