package simd

import "math"

// gumbelScoresGeneric is the Go twin of the GumbelScores kernels: the same
// driver (gumbelScoresWith) over Go kernels that perform the same float32
// operations as the assembly (table+polynomial log2, polynomial exp2). The
// reference loop, in float64, is
//
//	for j := range src {
//		l := math.Log(src[j])          // or src[j] with Logits
//		g := Noise(key, j)             // or 0 with NoNoise
//		q[j] = (l + g) * invTau        // -Inf for masked cells
//	}
//	qmax := max(q...)
//	for j := range src { dst[j] = math.Exp(q[j] - qmax); sum += dst[j] }
//
// The kernels compute it in log2 units (E_j = -log2 u_j, g_j = -ln(E_j ln 2)):
//
//	probabilities: q_j = log2(p_j * 2^64 / E_j) - 64 (+ a row shift, see gumbelScoresWith)
//	logits:        q_j = (l_j - lmax)*log2(e) - log2(E_j)
//	dst[j] = exp2((q_j - qmax) * invTau)
func gumbelScoresGeneric(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool) {
	return gumbelScoresWith(&genericKernels, dst, src, invTau, key, flags)
}

var genericKernels = rowKernels{
	noise:     noiseGeneric,
	prob:      probGeneric,
	logitsMax: logitsMaxGeneric,
	logits:    logitsGeneric,
	exp:       expGeneric,
}

// noiseGeneric: dst[j] = log2(u) of column j0+j.
func noiseGeneric(dst []float32, j0 int, key Key) {
	for j := range dst {
		dst[j] = noiseLog2U(uint32(j0+j)*key.A + key.B)
	}
}

// probGeneric: pass 1b for probabilities (see rowKernels.prob).
func probGeneric(dst, src []float32, noise bool, bias int32) (qmax float32, maxBits uint32) {
	dst = dst[:len(src)]
	qmax = float32(math.Inf(-1))
	for j, p := range src {
		p += 0 // -0 -> +0
		maxBits = max(maxBits, math.Float32bits(p))
		var r float32
		if noise {
			r = p / (dst[j] * -0x1p-64) // p*2^64/E
		} else {
			r = p * 0x1p64
		}
		q := log2Biased(r, bias)
		if !(p > 0) {
			q = float32(math.Inf(-1))
		}
		dst[j] = q
		qmax = max(qmax, q)
	}
	return qmax, maxBits
}

// logitsMaxGeneric: pass 0 for logits.
func logitsMaxGeneric(src []float32) (lmax float32, bad bool) {
	lmax = float32(math.Inf(-1))
	for _, l := range src {
		if !(l < float32(math.Inf(1))) {
			return 0, true // NaN or +Inf
		}
		lmax = max(lmax, l)
	}
	return lmax, false
}

// logitsGeneric: pass 1b for logits.
func logitsGeneric(dst, src []float32, noise bool, lmax float32) (qmax float32) {
	dst = dst[:len(src)]
	negInf := float32(math.Inf(-1))
	qmax = negInf
	for j, l := range src {
		var lg float32
		if noise {
			lg = log2Biased(-dst[j], log2Bias) // log2 E
		}
		q := fma32(l-lmax, math.Log2E, -lg)
		if l == negInf {
			q = negInf
		}
		dst[j] = q
		qmax = max(qmax, q)
	}
	return qmax
}

// expGeneric: pass 2, dst[j] = 2^(dst[j]*invTau + c); returns the sum.
func expGeneric(dst []float32, invTau, c float32) float32 {
	var sum float64
	for j, q := range dst {
		s := exp2Poly(fma32(q, invTau, c))
		dst[j] = s
		sum += float64(s)
	}
	return float32(sum)
}

// Constants shared by the Go twin and the assembly kernels.
const (
	probLimitBits = 0x3f820000 // math.Float32bits(1 + 1.0/64): larger bit patterns are invalid
	probScale     = 64         // p is scaled by 2^64 so that p/E is never denormal
	log2Bias      = 0x3f3504f3 // math.Float32bits(sqrt(0.5))
	expMagic      = 0x1.8p23 + 127
)

// The log2 of the kernels: x = 2^e * m with m in [sqrt(1/2), sqrt(2)); the
// top 3 mantissa bits of m split that range into 8 intervals; interval i has
// a center c_i, with log2Invc[i] = float32(1/c_i) and log2Logc[i] =
// float32(-log2(log2Invc[i])), so that
//
//	log2 x = e + log2Logc[i] + log2(1+f),  f = m*log2Invc[i] - 1,  |f| < 0.057,
//
// and log2(1+f) ~= f*P(f) with P = log2Coef of degree 3 (relative error
// 3.6e-7 in float32). Interval 4 holds m = 1 and has c = 1, logc = 0, so
// f = m - 1 exactly there. (The kernels look the tables up with VPERMPS/TBL.)
var (
	log2Invc = [8]uint32{0x3fad5ba2, 0x3f9fd42f, 0x3f94422f, 0x3f8a4016, 0x3f800000, 0x3f685d85, 0x3f50b00c, 0x3f3d63a6}
	log2Logc = [8]uint32{0xbee00e6f, 0xbea4095e, 0xbe590f01, 0xbde39cef, 0x00000000, 0x3e0f1a64, 0x3e96efcf, 0x3ede9cb6}
	log2Coef = [4]uint32{0x3fb8aa38, 0xbf38aa30, 0x3ef6b296, 0xbeb9248d}
)

// exp2Coef are the coefficients of 2^f for f in [-0.5, 0.5]
// (relative error 2.2e-7 in float32).
var exp2Coef = [6]float32{
	1.00000012, 0.693146944, 0.240221202, 0.0555071309, 0.00967554096, 0.00132764725,
}

func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// log2Table1 is the first half of the log2 of x, from t = bits(x) - bias
// (bias = log2Bias + k<<23 gives log2(x) - k for a positive normal x): it
// returns f and the base e + logc[i], and t>>20 (the interval is its low 3
// bits; it is 4 iff e = 0 and the interval is 4).
func log2Table1(t int32) (f, base float32, i uint32) {
	i = uint32(t) >> 20
	e := float32(t >> 23)
	m := math.Float32frombits(uint32(t&0x7fffff) + log2Bias)
	f = fma32(m, math.Float32frombits(log2Invc[i&7]), -1)
	return f, e + math.Float32frombits(log2Logc[i&7]), i
}

// log2Table2 returns base + f*P(f) (Horner, as the kernels do).
func log2Table2(f, base float32) float32 {
	c := &log2Coef
	p := math.Float32frombits(c[3])
	for i := 2; i >= 0; i-- {
		p = fma32(p, f, math.Float32frombits(c[i]))
	}
	return fma32(f, p, base)
}

// log2Biased returns log2(x) - (bias-log2Bias)>>23 for a positive normal x.
func log2Biased(x float32, bias int32) float32 {
	f, base, _ := log2Table1(int32(math.Float32bits(x)) - bias)
	return log2Table2(f, base)
}

// noiseLog2U returns log2(u) (<= 0) for the uniform u of hash input x (see
// Noise).
func noiseLog2U(x uint32) float32 {
	return log2UOfV(int32(lowbias32(x)>>7 | 1))
}

// log2UOfV returns log2(u) for u = v*2^-25, v = (h>>7)|1 = 2*(h>>8)+1 < 2^25.
// float32(v) is rounded when v >= 2^24. Where u is in [sqrt(1/2), 1)
// (exponent 0), log2 u is small and needs relative accuracy, so there
// w = m-1 = u-1 is taken exactly as float32(v-2^25)*2^-25 and
// f = m*invc - 1 = w*invc + (invc-1), fused; elsewhere this is the same as
// log2Table1's f (invc-1 is exact for invc in [0.73, 1.36]).
func log2UOfV(v int32) float32 {
	t := int32(math.Float32bits(float32(v))) - (log2Bias + 25<<23)
	i := uint32(t) >> 20
	e := t >> 23
	w := math.Float32frombits(uint32(t&0x7fffff)+log2Bias) - 1
	if e == 0 {
		w = float32(v-1<<25) * 0x1p-25
	}
	invc := math.Float32frombits(log2Invc[i&7])
	f := fma32(w, invc, invc-1)
	return log2Table2(f, float32(e)+math.Float32frombits(log2Logc[i&7]))
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
