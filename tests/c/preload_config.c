/* The preload library's KEYFORMER_* parsing (bindings/preload/config.c): defaults, every variable,
 * and bad values refused with a message that names the variable (the preload then stays off). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "keyformer.h"

/* A table of name=value strings, NULL-terminated, as the lookup's user data. */
static const char *lookup(const char *name, void *user_data) {
    const char **env = user_data;
    size_t n = strlen(name);
    for (; *env != NULL; env++) {
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=') return *env + n + 1;
    }
    return NULL;
}

static int failures;

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "preload_config: FAILED: %s\n", what);
        failures++;
    }
}

/* Reads env, expecting rc; for a failure, a message that contains word. */
static struct kfp_config read_env(const char **env, int rc, const char *word) {
    struct kfp_config c;
    char err[256];
    int got = kfp_config_read(lookup, (void *)env, &c, err, sizeof err);
    check(got == rc, env[0] != NULL ? env[0] : "(empty environment)");
    if (rc != 0) {
        check(strstr(err, word) != NULL, word);
        check(c.budget == 0, "a refused configuration reads as off");
    }
    return c;
}

int main(void) {
    const char *none[] = {NULL};
    struct kfp_config c = read_env(none, 0, NULL);
    check(c.budget == 0, "off without KEYFORMER_BUDGET");

    const char *empty[] = {"KEYFORMER_BUDGET=", "KEYFORMER_POLICY=nonsense", NULL};
    c = read_env(empty, 0, NULL);
    check(c.budget == 0, "off with an empty KEYFORMER_BUDGET, whatever else is set");

    const char *plain[] = {"KEYFORMER_BUDGET=2048", NULL};
    c = read_env(plain, 0, NULL);
    check(c.budget == 2048 && c.policy == -1 && c.window == -1 && c.n_batch == 256 && c.keep_sinks == 1 && c.stats == NULL &&
              c.log == NULL && c.lib == NULL,
          "defaults");

    const char *all[] = {"KEYFORMER_BUDGET=512", "KEYFORMER_POLICY=H2O", "KEYFORMER_WINDOW=64",
                         "KEYFORMER_SINKS=2", "KEYFORMER_KEEP_SINKS=0", "KEYFORMER_EVICT_SLACK=0", "KEYFORMER_OBSERVE_LAYER_STRIDE=1",
                         "KEYFORMER_OBSERVE_DECODE_STRIDE=4", "KEYFORMER_N_BATCH=64",
                         "KEYFORMER_STATS=/tmp/s.jsonl", "KEYFORMER_LOG=/tmp/l.log", "KEYFORMER_LIB=/x/libkeyformer.so",
                         NULL};
    c = read_env(all, 0, NULL);
    check(c.budget == 512 && c.policy == KEYFORMER_POLICY_H2O && c.window == 64 && c.sinks == 2 && c.keep_sinks == 0 &&
              c.evict_slack == 0 && c.observe_layer_stride == 1 && c.observe_decode_stride == 4 && c.n_batch == 64,
          "every integer variable");
    check(c.stats != NULL && strcmp(c.stats, "/tmp/s.jsonl") == 0 && c.log != NULL && c.lib != NULL, "paths");

    const char *bad_budget[] = {"KEYFORMER_BUDGET=2k", NULL};
    read_env(bad_budget, -1, "KEYFORMER_BUDGET");
    const char *negative[] = {"KEYFORMER_BUDGET=-5", NULL};
    read_env(negative, -1, "KEYFORMER_BUDGET");
    const char *huge[] = {"KEYFORMER_BUDGET=99999999999999999999999", NULL};
    read_env(huge, -1, "KEYFORMER_BUDGET");
    const char *fraction[] = {"KEYFORMER_BUDGET=0.5", NULL};
    read_env(fraction, -1, "KEYFORMER_BUDGET");
    const char *keep[] = {"KEYFORMER_BUDGET=100", "KEYFORMER_KEEP_SINKS=2", NULL};
    read_env(keep, -1, "KEYFORMER_KEEP_SINKS");
    const char *policy[] = {"KEYFORMER_BUDGET=100", "KEYFORMER_POLICY=lru", NULL};
    read_env(policy, -1, "KEYFORMER_POLICY");
    const char *window[] = {"KEYFORMER_BUDGET=100", "KEYFORMER_WINDOW=100", NULL};
    read_env(window, -1, "KEYFORMER_WINDOW");
    const char *batch[] = {"KEYFORMER_BUDGET=100", "KEYFORMER_N_BATCH=0", NULL};
    read_env(batch, -1, "KEYFORMER_N_BATCH");
    const char *space[] = {"KEYFORMER_BUDGET=100 ", NULL};
    read_env(space, -1, "KEYFORMER_BUDGET");

    for (int p = 0; p <= KEYFORMER_POLICY_PEAK; p++) {
        check(kfp_policy_of(kfp_policy_name(p)) == p, "every policy's name reads back");
    }
    check(strcmp(kfp_policy_name(-1), "default") == 0 && strcmp(kfp_policy_name(99), "?") == 0, "names of no policy");
    if (failures == 0) printf("preload_config: ok\n");
    return failures != 0;
}
