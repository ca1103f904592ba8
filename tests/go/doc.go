// Package abitest holds the Go side of the cross-language checks of libkeyformer: bench_test.go is
// the Go baseline of `make bench-abi` (one observe call through the Go API, beside the same call
// through the C ABI from C and from ctypes), readme_test.go keeps the README's C snippets the
// files ctest compiles and runs, pins_test.go the pinned versions written once, and layout_test.go
// the product apart from the lab.
//
// The C ABI itself is tested from C (tests/c) and Python (tests/python), not from Go: a Go program
// that loaded the Go c-shared library would hold two Go runtimes in one process, which Go does not
// support (include/keyformer.h: Go programs import the Go packages instead).
package abitest
