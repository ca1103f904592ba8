// Command capi is libkeyformer.so: the C ABI of package keyformer, built with
//
//	go build -buildmode=c-shared -o libkeyformer.so ./capi
//
// (CMakeLists.txt does that, with a soname and an export list). include/keyformer.h is the
// contract; shim.c defines its functions and forwards them to the kfgo_* exports of this package,
// so the cgo-generated header is never shipped and the linker version script (exports.map) makes
// keyformer_* the library's only dynamic symbols.
//
// The exports check arguments, translate handles and status codes and call package keyformer;
// they hold no logic of their own. Handles are integer ids (never reused) that the shim casts to
// keyformer_context pointers; no Go pointer crosses the boundary and no caller pointer is kept past
// a call. Every export recovers panics into KEYFORMER_ERR_INTERNAL.
//
// llama_shim.c and llama.go are the llama.cpp integration (keyformer_llama_*): an eval callback
// written in C that calls into Go (bindings/adapter) only for the few graph nodes it needs. It
// compares nodes with the names, op numbers and struct ggml_tensor offsets that Go hands it at
// attach (from bindings/llama), so it is built without llama.cpp's headers.
package main

/*
#cgo CFLAGS: -I${SRCDIR} -I${SRCDIR}/../include
#cgo LDFLAGS: -ldl
#include <stdint.h>
#include <stdlib.h>
#include "keyformer.h"
*/
import "C"

func main() {}
