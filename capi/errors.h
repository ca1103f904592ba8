/* errors.h: errors.c's thread-specific last error (for handles.go). */
#ifndef KF_ERRORS_H
#define KF_ERRORS_H

/* kf_no_error returns the "" that stands for no error: static, so that no thread ever writes it. */
const char *kf_no_error(void);

/* kf_set_thread_error makes msg (malloc'd; the library takes it) the calling thread's message,
 * freeing the one before. */
void kf_set_thread_error(char *msg);

/* kf_thread_error returns the calling thread's message, or "". */
const char *kf_thread_error(void);

#endif
