package main

/*
#include "errors.h"
#include "keyformer.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/keyformer/keyformer/keyformer"
)

// Status codes, from keyformer.h.
const (
	statusOK               C.keyformer_status = C.KEYFORMER_OK
	statusInvalidArgument  C.keyformer_status = C.KEYFORMER_ERR_INVALID_ARGUMENT
	statusInvalidHandle    C.keyformer_status = C.KEYFORMER_ERR_INVALID_HANDLE
	statusInvalidAttention C.keyformer_status = C.KEYFORMER_ERR_INVALID_ATTENTION
	statusBufferTooSmall   C.keyformer_status = C.KEYFORMER_ERR_BUFFER_TOO_SMALL
	statusInvalidState     C.keyformer_status = C.KEYFORMER_ERR_INVALID_STATE
	statusUnsupported      C.keyformer_status = C.KEYFORMER_ERR_UNSUPPORTED
	statusInternal         C.keyformer_status = C.KEYFORMER_ERR_INTERNAL
)

// context is what a keyformer_context handle stands for.
type context struct {
	id      uintptr // its handle
	tracker *keyformer.Tracker

	llama atomic.Pointer[llamaBinding] // keyformer_llama_attach's binding; nil before
}

var (
	handlesMu sync.RWMutex
	handles   = map[uintptr]*context{}
	lastID    atomic.Uint64 // ids start at 1 and are never reused

)

// newHandle registers c and returns its id (also c.id).
func newHandle(c *context) uintptr {
	id := uintptr(lastID.Add(1))
	c.id = id
	handlesMu.Lock()
	handles[id] = c
	handlesMu.Unlock()
	return id
}

// lookup returns the context of handle h, or nil for 0, unknown and freed handles.
func lookup(h uintptr) *context {
	if h == 0 {
		return nil
	}
	handlesMu.RLock()
	c := handles[h]
	handlesMu.RUnlock()
	return c
}

// release unregisters handle h and frees its error messages; it reports whether h was known.
func release(h uintptr) bool {
	handlesMu.Lock()
	c := handles[h]
	delete(handles, h)
	handlesMu.Unlock()
	if c == nil {
		return false
	}
	C.kf_drop_errors(C.uintptr_t(h))
	return true
}

// setError replaces the calling thread's last error on c (of the process when c is nil) with msg,
// in errors.c's store.
func setError(c *context, msg string) {
	var h uintptr
	if c != nil {
		h = c.id
	}
	C.kf_set_error(C.uintptr_t(h), C.CString(msg)) // the store frees it
}

// lastError returns the calling thread's last error string on handle h (in the process for 0
// and unknown handles); "" when there is none.
func lastError(h uintptr) *C.char {
	if lookup(h) == nil {
		h = 0
	}
	return C.kf_last_error(C.uintptr_t(h)) // const char * in C; never written through
}

// errorText returns the last error of handle h as a Go string.
func errorText(h uintptr) string { return C.GoString(lastError(h)) }

// statusError is an error that carries its status code.
type statusError struct {
	status C.keyformer_status
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// fail returns an error with status st.
func fail(st C.keyformer_status, format string, args ...any) error {
	return &statusError{st, fmt.Sprintf(format, args...)}
}

// invalid returns an KEYFORMER_ERR_INVALID_ARGUMENT error.
func invalid(format string, args ...any) error {
	return fail(statusInvalidArgument, format, args...)
}

// statusOf maps an error of package keyformer (or of this package) to a status code.
func statusOf(err error) C.keyformer_status {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.status
	case errors.Is(err, keyformer.ErrInvalidAttention), errors.Is(err, keyformer.ErrInvalidKeys):
		return statusInvalidAttention
	case errors.Is(err, keyformer.ErrInvalidState):
		return statusInvalidState
	}
	return statusInvalidArgument
}

// report records err (prefixed with the function name) as the last error of c and returns its
// status.
func report(c *context, name string, err error) C.keyformer_status {
	setError(c, name+": "+err.Error())
	return statusOf(err)
}

// recovered turns a recovered panic value into a KEYFORMER_ERR_INTERNAL report naming where it
// happened.
func recovered(c *context, name string, r any) C.keyformer_status {
	setError(c, fmt.Sprintf("%s: internal error: %s; please report this bug", name, panicMessage(r, 2)))
	return statusInternal
}

// call runs body on the context of handle h with the export's guarantees: an unknown handle gives
// KEYFORMER_ERR_INVALID_HANDLE, an error its status and last-error message, a panic
// KEYFORMER_ERR_INTERNAL.
func call(name string, h uintptr, body func(c *context) error) (st C.keyformer_status) {
	var c *context
	defer func() {
		if r := recover(); r != nil {
			st = recovered(c, name, r)
		}
	}()
	if c = lookup(h); c == nil {
		if h == 0 {
			return report(nil, name, fail(statusInvalidHandle, "ctx is NULL"))
		}
		return report(nil, name, fail(statusInvalidHandle, "unknown or freed context %#x", h))
	}
	if err := body(c); err != nil {
		return report(c, name, err)
	}
	return statusOK
}

// sequence returns sequence seq of c (created empty on first use); out-of-range ids are an error.
func (c *context) sequence(seq C.int32_t) (*keyformer.Sequence, error) {
	return c.tracker.Sequence(int32(seq))
}
