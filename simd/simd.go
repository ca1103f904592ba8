// Package simd holds the vectorised inner loops of Keyformer's KV-cache
// eviction: the Gumbel-softmax scoring of one attention row (GumbelScores),
// the score accumulation (AddScaled), and the eviction choices (Argmin,
// SmallestK).
//
// Every kernel has a pure-Go twin (gumbelScoresGeneric, addScaledGeneric,
// argminGeneric; generic.go, gumbel_generic.go) that documents the reference
// loop, performs the same float32 operations as the assembly, and runs where
// no assembly exists. The assembly:
//
//   - amd64: AVX2+FMA (gumbel_amd64.s), chosen once at init when the CPU has
//     both (golang.org/x/sys/cpu), else the Go twins;
//   - arm64: NEON (gumbel_arm64.s), always (Advanced SIMD is baseline).
//
// The build tag purego forces the Go twins everywhere. GumbelScores runs as a
// few passes over the row (gumbel.go drives them, in chunks of 1024 cells);
// SmallestK is pure Go on every architecture: it runs only for plans that
// evict several cells at once (a prefill chunk, or a decode with eviction
// slack); a single eviction takes Argmin.
package simd

import "math"

// Flags select how GumbelScores reads its input row.
type Flags uint32

const (
	// Logits says src holds pre-softmax logits; -Inf marks a masked cell.
	// By default src holds probabilities and 0 marks a masked cell.
	Logits Flags = 1 << iota
	// NoNoise sets g_j = 0: plain softmax(l/tau) (used for H2O).
	NoNoise
)

// Key selects the noise stream of one row. A must be odd; callers draw A|1
// and B from their RNG.
type Key struct{ A, B uint32 }

// GumbelScores writes into dst[j] (len(dst) >= len(src)) the unnormalised
// score
//
//	s_j = exp(q_j - qmax),  q_j = (l_j + g_j) * invTau
//
// where l_j = ln(src[j]) (probabilities) or src[j] (Logits), masked cells get
// s_j = 0 exactly, g_j is the Gumbel noise Noise(key, j) (or 0 with NoNoise),
// qmax is the max over live q_j, and returns sum_j s_j and ok.
//
// ok is false if the row holds an invalid element: for probabilities NaN, a
// negative value, or a value > 1+1/64 (including +Inf); for logits NaN or
// +Inf. When ok is false dst and sum are unspecified. A row with every cell
// masked gives sum 0 and ok true. Denormal probabilities are live cells.
// invTau must be positive and finite, and dst must not overlap src.
//
// The kernels work in float32 and in log2 units:
//
//	s_j = 2^((log2 p_j - log2(-log2 u_j))*invTau - m)
//
// (u_j the uniform of Noise), which gives the same s_j/sum since ln =
// ln2*log2 and the constant log2(ln 2) cancels in the normalisation. The
// largest score is 1 up to rounding; only s_j/sum is meaningful. It matches
// the float64 formula to about 1e-6 relative for cells above 1e-4 of the
// row, 3e-6 above 1e-10, and 1e-5 below (the float32 exponents of tiny
// cells are large); cells below ~1e-38 of the row may flush to 0.
func GumbelScores(dst, src []float32, invTau float32, key Key, flags Flags) (sum float32, ok bool) {
	if len(dst) < len(src) {
		panic("simd: GumbelScores: len(dst) < len(src)")
	}
	if len(src) == 0 {
		return 0, true
	}
	return gumbelScores(dst[:len(src)], src, invTau, key, flags)
}

// Noise returns g_j, the Gumbel(0,1) sample GumbelScores uses for column j
// of the row keyed by key:
//
//	h = lowbias32(uint32(j)*key.A + key.B)
//	u = (float32(h>>8) + 0.5) * 2^-24   // in (0,1)
//	g = -ln(-ln(u))
//
// where lowbias32 is x ^= x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b;
// x ^= x>>16. Noise computes it in float64 and is the reference the tests
// use; the kernels compute it in float32.
func Noise(key Key, j int) float64 {
	h := lowbias32(uint32(j)*key.A + key.B)
	u := (float64(h>>8) + 0.5) * (1.0 / (1 << 24))
	return -math.Log(-math.Log(u))
}

func lowbias32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// AddScaled does acc[j] += a * x[j] for j < len(acc). len(x) >= len(acc).
// The kernels may fuse the multiply-add (one rounding instead of two).
func AddScaled(acc, x []float32, a float32) {
	if len(x) < len(acc) {
		panic("simd: AddScaled: len(x) < len(acc)")
	}
	if len(acc) == 0 {
		return
	}
	addScaled(acc, x[:len(acc)], a)
}

// Argmin returns the index of the smallest element of x (the lowest index
// among equals; -0 equals +0), or -1 if x is empty. x holds no NaN (it may
// hold +Inf).
func Argmin(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	return argmin(x)
}
