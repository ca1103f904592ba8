//go:build (linux || darwin) && (amd64 || arm64)

package llama

// askFilter is the ask filter (askfilter.go), called by llama.cpp with the C calling convention as
// bool askFilter(struct ggml_tensor *t, bool ask, askFilterTable *f); it cannot be called from Go.
func askFilter()

// askFilterABI0 is askFilter's entry address (set in the assembly), the callback given to
// llama.cpp.
var askFilterABI0 uintptr
