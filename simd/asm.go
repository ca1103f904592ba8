//go:build (amd64 || arm64) && !purego

package simd

import "math"

// Dispatch: the assembly kernels when hasAsm (decided once at init), else
// the Go twins.

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

// chunk is the number of cells the wrapper hands to a kernel at a time: the
// passes over one chunk stay in L1, and the row sum of expKernel is
// accumulated in float64 over chunks, so its error stays ~1e-7 for any n.
const chunk = 1024

// gumbelScoresAsm runs GumbelScores on the kernels, which take whole vectors
// of 8 cells (n a multiple of 8); the last len(src)%8 cells go through an
// 8-cell scratch row padded with masked cells (0 or -Inf). The kernels:
//
//	noiseKernel:        pass 1a: dst[j] = log2 u for columns j0+j.
//	gumbelProbKernel:   pass 1b for probabilities: dst[j] = q_j (-Inf if
//	                    masked), q_j = log2(p_j/E_j) with E_j = -dst[j] on
//	                    entry (E_j = 1 without noise); returns max q_j and the
//	                    unsigned max of the bits of src[j]+0 (validation:
//	                    > probLimitBits is invalid).
//	logitsMaxKernel:    pass 0 for logits: max l_j, and whether any l_j is NaN
//	                    or +Inf.
//	gumbelLogitsKernel: pass 1b for logits, given lmax.
//	expKernel:          pass 2: dst[j] = 2^(dst[j]*invTau + c), returns the sum.
func gumbelScoresAsm(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	n := len(src)
	if n == 0 {
		return 0, true
	}
	dst = dst[:n]
	nv := n &^ 7
	noise := flags&NoNoise == 0
	negInf := float32(math.Inf(-1))
	var tin, tout [8]float32
	qmax := negInf
	if flags&Logits == 0 {
		var maxBits uint32
		for i := 0; i < nv; i += chunk {
			m := min(chunk, nv-i)
			if noise {
				noiseKernel(&dst[i], m, uint32(i), key.A, key.B)
			}
			q, mb := gumbelProbKernel(&dst[i], &src[i], m, noise)
			qmax, maxBits = max(qmax, q), max(maxBits, mb)
		}
		if nv < n {
			copy(tin[:], src[nv:])
			if noise {
				noiseKernel(&tout[0], 8, uint32(nv), key.A, key.B)
			}
			q, mb := gumbelProbKernel(&tout[0], &tin[0], 8, noise)
			copy(dst[nv:], tout[:])
			qmax, maxBits = max(qmax, q), max(maxBits, mb)
		}
		if maxBits > probLimitBits {
			return 0, false
		}
	} else {
		lmax := negInf
		if nv > 0 {
			var bad bool
			if lmax, bad = logitsMaxKernel(&src[0], nv); bad {
				return 0, false
			}
		}
		for _, l := range src[nv:] {
			if !(l < float32(math.Inf(1))) {
				return 0, false
			}
			lmax = max(lmax, l)
		}
		if lmax == negInf {
			clear(dst)
			return 0, true
		}
		for i := 0; i < nv; i += chunk {
			m := min(chunk, nv-i)
			if noise {
				noiseKernel(&dst[i], m, uint32(i), key.A, key.B)
			}
			qmax = max(qmax, gumbelLogitsKernel(&dst[i], &src[i], m, noise, lmax))
		}
		if nv < n {
			for i := range tin {
				tin[i] = negInf
			}
			copy(tin[:], src[nv:])
			if noise {
				noiseKernel(&tout[0], 8, uint32(nv), key.A, key.B)
			}
			qmax = max(qmax, gumbelLogitsKernel(&tout[0], &tin[0], 8, noise, lmax))
			copy(dst[nv:], tout[:])
		}
	}
	if qmax == negInf {
		clear(dst)
		return 0, true
	}
	c := -(qmax * invTau)
	var sum float64
	for i := 0; i < nv; i += chunk {
		sum += float64(expKernel(&dst[i], min(chunk, nv-i), invTau, c))
	}
	if nv < n {
		for i := range tout {
			tout[i] = negInf
		}
		copy(tout[:], dst[nv:])
		sum += float64(expKernel(&tout[0], 8, invTau, c))
		copy(dst[nv:], tout[:])
	}
	return float32(sum), true
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
