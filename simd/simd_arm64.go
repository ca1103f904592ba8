//go:build !purego

package simd

// hasAsm: the NEON kernels of gumbel_arm64.s; Advanced SIMD is part of the
// arm64 base architecture.
const hasAsm = true
