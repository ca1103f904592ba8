/* errors.c: the calling thread's last error of calls without a context (keyformer_context_new,
 * invalid handles), in thread-specific storage that the thread's exit frees. */
#include <pthread.h>
#include <stdlib.h>

#include "errors.h"

const char *kf_no_error(void) { return ""; }

static pthread_key_t kf_error_key;
static pthread_once_t kf_error_once = PTHREAD_ONCE_INIT;

static void kf_error_init(void) { pthread_key_create(&kf_error_key, free); }

void kf_set_thread_error(char *msg) {
    pthread_once(&kf_error_once, kf_error_init);
    free(pthread_getspecific(kf_error_key));
    pthread_setspecific(kf_error_key, msg);
}

const char *kf_thread_error(void) {
    const char *s;
    pthread_once(&kf_error_once, kf_error_init);
    s = pthread_getspecific(kf_error_key);
    return s ? s : kf_no_error();
}
