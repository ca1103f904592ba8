//go:build !purego

package simd

import "golang.org/x/sys/cpu"

// hasAsm reports whether the AVX2+FMA kernels of gumbel_amd64.s can run on
// this CPU; it is set once at init.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
