//go:build (!amd64 && !arm64) || purego

package simd

// The Go twins only: other architectures, or the purego build tag.

func gumbelScores(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	return gumbelScoresGeneric(dst, src, invTau, key, flags)
}

func addScaled(acc, x []float32, a float32) { addScaledGeneric(acc, x, a) }

func argmin(x []float32) int { return argminGeneric(x) }

// hasAsm: there are no assembly kernels in this build.
const hasAsm = false
