package simd

// impl is one implementation of the kernels, for tests that run one body
// over every implementation available here.
type impl struct {
	name         string
	gumbelScores func(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool)
	addScaled    func(acc, x []float32, a float32)
	argmin       func(x []float32) int
	kernels      *rowKernels // the passes of gumbelScores
}

// implementations lists the kernels available on this CPU and build: the
// assembly ("asm": AVX2+FMA on amd64, NEON on arm64) when it can run here,
// and the Go twins ("generic") always.
func implementations() []impl {
	var list []impl
	if hasAsm {
		list = append(list, asmImpl())
	}
	return append(list, impl{"generic", gumbelScoresGeneric, addScaledGeneric, argminGeneric, &genericKernels})
}
