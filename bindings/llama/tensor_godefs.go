//go:build ignore

// The input of `go generate` in this package (the go:generate line in tensor.go): struct
// ggml_tensor and its array sizes from the pinned ggml.h (build/deps/llama/include), written to
// ztensor_lp64.go by `go tool cgo -godefs`.

package llama

/*
#include "ggml.h"
*/
import "C"

// ggmlTensor is struct ggml_tensor; tensor.go reads its fields at unsafe.Offsetof of these.
type ggmlTensor C.struct_ggml_tensor

// ggmlBackendBuffer is the opaque struct ggml_backend_buffer (only its address is held).
type ggmlBackendBuffer C.struct_ggml_backend_buffer

// Array sizes and the size of struct ggml_tensor.
const (
	ggmlMaxDims      = C.GGML_MAX_DIMS
	ggmlMaxSrc       = C.GGML_MAX_SRC
	ggmlMaxName      = C.GGML_MAX_NAME
	ggmlMaxOpParams  = C.GGML_MAX_OP_PARAMS
	ggmlSizeofTensor = C.sizeof_struct_ggml_tensor
)
