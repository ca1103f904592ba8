//go:build (!amd64 && !arm64) || purego

package simd

func asmImpl() impl { panic("simd: no assembly kernels in this build") }
