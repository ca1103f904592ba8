//go:build (amd64 || arm64) && !purego

package simd

// Dispatch: the assembly kernels when hasAsm (simd_amd64.go: decided once at
// init from the CPU features; simd_arm64.go: always), else the Go twins.

func gumbelScores(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	if hasAsm {
		return gumbelScoresAsm(dst, src, invTau, key, flags)
	}
	return gumbelScoresGeneric(dst, src, invTau, key, flags)
}

func addScaled(acc, x []float32, a float32) {
	if hasAsm {
		addScaledAsm(acc, x, a)
		return
	}
	addScaledGeneric(acc, x, a)
}

func argmin(x []float32) int {
	if hasAsm {
		return argminAsm(x)
	}
	return argminGeneric(x)
}

// gumbelScoresAsm runs GumbelScores on the assembly kernels.
func gumbelScoresAsm(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	return gumbelScoresWith(&asmKernels, dst, src, invTau, key, flags)
}

// asmKernels adapts the assembly kernels (simd_$GOARCH.go) to rowKernels.
var asmKernels = rowKernels{
	noise: func(dst []float32, j0 int, key Key) {
		noiseKernel(&dst[0], len(dst), uint32(j0), key.A, key.B)
	},
	prob: func(dst, src []float32, noise bool, bias int32) (float32, uint32) {
		return gumbelProbKernel(&dst[0], &src[0], len(src), noise, bias)
	},
	logitsMax: func(src []float32) (float32, bool) {
		return logitsMaxKernel(&src[0], len(src))
	},
	logits: func(dst, src []float32, noise bool, lmax float32) float32 {
		return gumbelLogitsKernel(&dst[0], &src[0], len(src), noise, lmax)
	},
	exp: func(dst []float32, invTau, c float32) float32 {
		return expKernel(&dst[0], len(dst), invTau, c)
	},
}

// addScaledAsm: addScaledKernel handles any n, the tail included.
func addScaledAsm(acc, x []float32, a float32) {
	if len(acc) == 0 {
		return
	}
	x = x[:len(acc)]
	addScaledKernel(&acc[0], &x[0], len(acc), a)
}

// argminAsm: argminKernel needs at least one whole vector.
func argminAsm(x []float32) int {
	if len(x) < 8 {
		if len(x) == 0 {
			return -1
		}
		return argminGeneric(x)
	}
	return argminKernel(&x[0], len(x))
}
