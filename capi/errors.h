/* errors.h: errors.c, the library's one store of last-error messages (for handles.go). */
#ifndef KF_ERRORS_H
#define KF_ERRORS_H

#include <stdint.h>

/* kf_set_error makes msg (malloc'd; the store takes it) the calling thread's last error on handle
 * h (0: the calls without a context), freeing the message it replaces. */
void kf_set_error(uintptr_t h, char *msg);

/* kf_last_error returns the calling thread's last error on handle h, or a static "" (never written). */
const char *kf_last_error(uintptr_t h);

/* kf_drop_errors frees every thread's messages on handle h (when its context is freed). */
void kf_drop_errors(uintptr_t h);

#endif
