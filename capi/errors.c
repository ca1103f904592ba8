/* errors.c: the last error of each (handle, thread), the library's one store of messages: handle
 * 0 holds the calls without a context (keyformer_context_new, unknown handles). A thread reads
 * only its own messages, which only its own next failure on the same handle replaces, so a
 * message stays valid however many other threads fail meanwhile. A handle's messages go when its
 * context is freed, a thread's when the thread exits. The store is C memory held from a global,
 * so leak checkers see every message as reachable. */
#include <pthread.h>
#include <stdlib.h>

#include "errors.h"

struct kf_error {
    uintptr_t handle;
    pthread_t thread;
    char *msg;
    struct kf_error *next;
};

static pthread_mutex_t kf_errors_mu = PTHREAD_MUTEX_INITIALIZER;
static struct kf_error *kf_errors; /* guarded by kf_errors_mu */

/* kf_exit_key's value is set on a thread's first message, so that its exit drops them. */
static pthread_key_t kf_exit_key;
static pthread_once_t kf_exit_once = PTHREAD_ONCE_INIT;

/* kf_drop removes the messages that match (handle h when by_handle, else thread t). */
static void kf_drop(int by_handle, uintptr_t h, pthread_t t) {
    struct kf_error **p, *e;
    pthread_mutex_lock(&kf_errors_mu);
    for (p = &kf_errors; (e = *p) != NULL;) {
        if (by_handle ? e->handle == h : pthread_equal(e->thread, t)) {
            *p = e->next;
            free(e->msg);
            free(e);
        } else {
            p = &e->next;
        }
    }
    pthread_mutex_unlock(&kf_errors_mu);
}

static void kf_thread_exit(void *unused) {
    (void)unused;
    kf_drop(0, 0, pthread_self());
}

static void kf_exit_init(void) { pthread_key_create(&kf_exit_key, kf_thread_exit); }

/* kf_find returns the calling thread's entry on h, or NULL (kf_errors_mu held). */
static struct kf_error *kf_find(uintptr_t h) {
    struct kf_error *e;
    pthread_t self = pthread_self();
    for (e = kf_errors; e != NULL; e = e->next) {
        if (e->handle == h && pthread_equal(e->thread, self)) {
            return e;
        }
    }
    return NULL;
}

void kf_set_error(uintptr_t h, char *msg) {
    struct kf_error *e;
    char *old = NULL;
    pthread_once(&kf_exit_once, kf_exit_init);
    if (pthread_getspecific(kf_exit_key) == NULL) {
        pthread_setspecific(kf_exit_key, &kf_errors); /* any non-NULL value */
    }
    pthread_mutex_lock(&kf_errors_mu);
    if ((e = kf_find(h)) != NULL) {
        old = e->msg;
        e->msg = msg;
    } else if ((e = malloc(sizeof *e)) != NULL) {
        e->handle = h;
        e->thread = pthread_self();
        e->msg = msg;
        e->next = kf_errors;
        kf_errors = e;
    } else {
        old = msg; /* out of memory: the message is lost, the call's status still says what failed */
    }
    pthread_mutex_unlock(&kf_errors_mu);
    free(old);
}

const char *kf_last_error(uintptr_t h) {
    const struct kf_error *e;
    const char *msg = "";
    pthread_mutex_lock(&kf_errors_mu);
    if ((e = kf_find(h)) != NULL) {
        msg = e->msg;
    }
    pthread_mutex_unlock(&kf_errors_mu);
    return msg;
}

void kf_drop_errors(uintptr_t h) { kf_drop(1, h, pthread_self()); }
