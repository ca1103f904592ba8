package simd

import "math"

// Constants shared by the Go twin and the assembly kernels.

// gumbelScoresGeneric is the Go twin of the GumbelScores kernels; it performs
// the same float32 operations (polynomial log2/exp2, see log2f and exp2f).
// The reference loop, in float64, is
//
//	for j := range src {
//		l := math.Log(src[j])          // or src[j] with Logits
//		g := Noise(key, j)             // or 0 with NoNoise
//		q[j] = (l + g) * invTau        // -Inf for masked cells
//	}
//	qmax := max(q...)
//	for j := range src { dst[j] = math.Exp(q[j] - qmax); sum += dst[j] }
//
// The kernels compute, in log2 units (E_j = -log2 u_j):
//
//	probabilities: q_j = log2(p_j * 2^64 / E_j) - 64
//	logits:        q_j = (l_j - lmax)*log2(e) - log2(E_j)
//	dst[j] = exp2((q_j - qmax) * invTau)
func gumbelScoresGeneric(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	dst = dst[:len(src)]
	negInf := float32(math.Inf(-1))
	qmax := negInf
	noise := flags&NoNoise == 0
	if flags&Logits == 0 {
		var maxBits uint32
		for j, p := range src {
			p += 0 // -0 -> +0
			maxBits = max(maxBits, math.Float32bits(p))
			es := float32(0x1p-64)
			if noise {
				es = noiseLog2U(uint32(j)*key.A+key.B) * -0x1p-64
			}
			q := log2Biased(p/es, log2Bias+probScale<<23)
			if !(0 < p) {
				q = negInf
			}
			dst[j] = q
			qmax = max(qmax, q)
		}
		if maxBits > probLimitBits {
			return 0, false
		}
	} else {
		lmax := negInf
		for _, l := range src {
			if !(l < float32(math.Inf(1))) {
				return 0, false // NaN or +Inf
			}
			lmax = max(lmax, l)
		}
		if lmax == negInf {
			clear(dst)
			return 0, true
		}
		for j, l := range src {
			var lg float32
			if noise {
				lg = log2Biased(-noiseLog2U(uint32(j)*key.A+key.B), log2Bias)
			}
			q := fma32(l-lmax, math.Log2E, -lg)
			if !(negInf < l) {
				q = negInf
			}
			dst[j] = q
			qmax = max(qmax, q)
		}
	}
	if qmax == negInf {
		clear(dst)
		return 0, true
	}
	c := -(qmax * invTau)
	var sum float64
	for j, q := range dst {
		s := exp2Poly(fma32(q, invTau, c))
		dst[j] = s
		sum += float64(s)
	}
	return float32(sum), true
}

// Constants shared by the Go twin and the assembly kernels.
const (
	probLimitBits = 0x3f820000 // math.Float32bits(1 + 1.0/64): larger bit patterns are invalid
	probScale     = 64         // p is scaled by 2^64 so that p/E is never denormal
	log2Bias      = 0x3f3504f3 // math.Float32bits(sqrt(0.5))
	expMagic      = 0x1.8p23 + 127
)

// log2Coef are the coefficients of P with log2(1+f) ~= f*P(f) for
// f in [sqrt(1/2)-1, sqrt(2)-1] (relative error 3.2e-7 in float32).
var log2Coef = [8]float32{
	1.4426949, -0.721352816, 0.480923235, -0.360239625,
	0.287098706, -0.24887687, 0.234042346, -0.145811647,
}

// exp2Coef are the coefficients of 2^f for f in [-0.5, 0.5]
// (relative error 2.2e-7 in float32).
var exp2Coef = [6]float32{
	1.00000012, 0.693146944, 0.240221202, 0.0555071309, 0.00967554096, 0.00132764725,
}

func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// log2P evaluates P(f) (Horner, as the kernels do).
func log2P(f float32) float32 {
	c := &log2Coef
	p := c[7]
	for i := 6; i >= 0; i-- {
		p = fma32(p, f, c[i])
	}
	return p
}

// log2Biased returns log2(x) - (bias-log2Bias)>>23 for a positive normal x:
// x = 2^e * m with m in [sqrt(1/2), sqrt(2)), log2 x = e + f*P(f), f = m-1.
func log2Biased(x float32, bias int32) float32 {
	t := int32(math.Float32bits(x)) - bias
	e := float32(t >> 23)
	f := math.Float32frombits(uint32(t&0x7fffff)+log2Bias) - 1
	return fma32(f, log2P(f), e)
}

// noiseLog2U returns log2(u) (<= 0) for the uniform u of hash input x (see
// Noise): u = v*2^-25 with v = (h>>7)|1 = 2*(h>>8)+1 < 2^25. float32(v) is
// rounded when v >= 2^24, so for u in [sqrt(1/2), 1) (exponent 0, where
// log2 u ~ f is small and needs relative accuracy) f = u-1 is recomputed
// exactly as float32(v-2^25)*2^-25.
func noiseLog2U(x uint32) float32 {
	h := lowbias32(x)
	v := int32(h>>7 | 1)
	t := int32(math.Float32bits(float32(v))) - (log2Bias + 25<<23)
	e := t >> 23
	f := math.Float32frombits(uint32(t&0x7fffff)+log2Bias) - 1
	if e == 0 {
		f = float32(v-1<<25) * 0x1p-25
	}
	return fma32(f, log2P(f), float32(e))
}

// exp2Poly returns 2^x for x <= ~0; x <= -127 (and -Inf) gives exactly 0.
func exp2Poly(x float32) float32 {
	x = max(x, -127)
	z := x + expMagic // round to integer n: z = 1.5*2^23 + 127 + n
	f := x - (z - expMagic)
	scale := math.Float32frombits(math.Float32bits(z) << 23) // 2^n, 0 for n = -127
	c := &exp2Coef
	p := c[5]
	for i := 4; i >= 0; i-- {
		p = fma32(p, f, c[i])
	}
	return p * scale
}
