package simd

import "math"

// rowKernels are the passes of GumbelScores over whole vectors: the driver
// gumbelScoresWith only hands them slices whose length is a positive
// multiple of 8 (at most chunk cells at a time, except logitsMax). Their
// assembly versions are in gumbel_$GOARCH.s, their Go twins in
// gumbel_generic.go.
type rowKernels struct {
	// noise (pass 1a): dst[j] = log2 u for column j0+j (see noiseLog2U).
	noise func(dst []float32, j0 int, key Key)
	// prob (pass 1b, probabilities): dst[j] = log2(r_j) - (bias-log2Bias)/2^23
	// with r_j = p_j*2^64/E_j, E_j = -dst[j] on entry (r_j = p_j*2^64
	// without noise), or -Inf where !(p_j > 0). Returns the max of dst and
	// the unsigned max of the bits of p_j+0 (-0 becomes +0): the row is
	// valid iff that is <= probLimitBits.
	prob func(dst, src []float32, noise bool, bias int32) (qmax float32, maxBits uint32)
	// logitsMax (pass 0, logits): max l_j, and whether an l_j is NaN or +Inf.
	logitsMax func(src []float32) (lmax float32, bad bool)
	// logits (pass 1b, logits): dst[j] = (l_j-lmax)*log2(e) - log2(E_j)
	// (no log2 term without noise), -Inf where l_j = -Inf; returns the max.
	logits func(dst, src []float32, noise bool, lmax float32) (qmax float32)
	// exp (pass 2): dst[j] = 2^(dst[j]*invTau + c); returns the sum.
	exp func(dst []float32, invTau, c float32) (sum float32)
}

// chunk is the number of cells handed to a kernel at a time: the passes over
// one chunk stay in L1, and the row sum is accumulated in float64 over the
// chunks' float32 sums, so its error stays ~1e-7 for any n.
const chunk = 1024

const (
	// probBias makes the prob kernel return log2(p/E): it undoes the 2^64
	// scaling that keeps p*2^64/E normal for denormal p.
	probBias = log2Bias + probScale<<23
	// tinyQ: below it, q is stored with a shift (see gumbelScoresWith).
	tinyQ = -32
)

// gumbelScoresWith implements GumbelScores on the kernels k. The last
// len(src)%8 cells go through an 8-cell scratch row padded with masked cells
// (0 or -Inf).
//
// The q_j are stored in float32, whose absolute error grows with |q_j|;
// s_j depends on q_j - qmax. For probabilities |q_j| is at most ~25 near the
// max of any row whose largest p is not tiny, but a row holding only tiny
// (e.g. denormal) probabilities has qmax down to -154: such rows (qmax <
// tinyQ, rare) are redone with q_j + floor(-qmax) stored instead, a
// constant shift that the normalisation removes.
func gumbelScoresWith(k *rowKernels, dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
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
		qmax, maxBits = probPass(k, dst, src, key, noise, probBias, &tin, &tout)
		if maxBits > probLimitBits {
			return 0, false
		}
		if qmax > negInf && qmax < tinyQ {
			shift := int32(-qmax)
			qmax, _ = probPass(k, dst, src, key, noise, probBias-shift<<23, &tin, &tout)
		}
	} else {
		lmax := negInf
		if nv > 0 {
			var bad bool
			if lmax, bad = k.logitsMax(src[:nv]); bad {
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
			d, s := dst[i:min(i+chunk, nv)], src[i:min(i+chunk, nv)]
			if noise {
				k.noise(d, i, key)
			}
			qmax = max(qmax, k.logits(d, s, noise, lmax))
		}
		if nv < n {
			for i := range tin {
				tin[i] = negInf
			}
			copy(tin[:], src[nv:])
			if noise {
				k.noise(tout[:], nv, key)
			}
			qmax = max(qmax, k.logits(tout[:], tin[:], noise, lmax))
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
		sum += float64(k.exp(dst[i:min(i+chunk, nv)], invTau, c))
	}
	if nv < n {
		for i := range tout {
			tout[i] = negInf
		}
		copy(tout[:], dst[nv:])
		sum += float64(k.exp(tout[:], invTau, c))
		copy(dst[nv:], tout[:])
	}
	return float32(sum), true
}

// probPass runs passes 1a and 1b for probabilities over the row.
func probPass(k *rowKernels, dst, src []float32, key Key, noise bool, bias int32, tin, tout *[8]float32) (qmax float32, maxBits uint32) {
	n := len(src)
	nv := n &^ 7
	qmax = float32(math.Inf(-1))
	for i := 0; i < nv; i += chunk {
		d, s := dst[i:min(i+chunk, nv)], src[i:min(i+chunk, nv)]
		if noise {
			k.noise(d, i, key)
		}
		q, mb := k.prob(d, s, noise, bias)
		qmax, maxBits = max(qmax, q), max(maxBits, mb)
	}
	if nv < n {
		*tin = [8]float32{}
		copy(tin[:], src[nv:])
		if noise {
			k.noise(tout[:], nv, key)
		}
		q, mb := k.prob(tout[:], tin[:], noise, bias)
		copy(dst[nv:], tout[:])
		qmax, maxBits = max(qmax, q), max(maxBits, mb)
	}
	return qmax, maxBits
}
