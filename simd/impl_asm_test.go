//go:build (amd64 || arm64) && !purego

package simd

func asmImpl() impl {
	return impl{"asm", gumbelScoresAsm, addScaledAsm, argminAsm, &asmKernels}
}
