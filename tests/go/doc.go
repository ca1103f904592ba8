// Package abitest holds the Go side of the cross-language tests of libkeyformer: abi_test.go loads
// build/lib/libkeyformer.so with purego and drives the C ABI through the same H2O scenario as the
// C and C++ consumers (tests/c/scenario.h), and bench_test.go is the Go baseline of `make
// bench-abi` (one observe call through the Go API).
//
// Caveat: a Go program that loads a Go c-shared library holds two Go runtimes in one process,
// which Go does not support (keyformer.h says so: Go programs import the Go packages instead).
// On linux/amd64 it works for this test's use: the library's runtime starts in its own threads
// and each call crosses from one runtime to the other through C; see abi_test.go for what it
// relies on. It is a test of the ABI, not a supported way to use the library from Go.
package abitest
