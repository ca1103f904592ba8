package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// guard is the bit pattern written around buffers; kernels must not touch it.
const guard = 0x7fc0dead

// guarded returns a slice of n elements starting at offset off inside a
// buffer whose other elements hold the guard pattern, and a check function.
func guarded(t testing.TB, n, off int) ([]float32, func()) {
	buf := make([]float32, off+n+9)
	for i := range buf {
		buf[i] = math.Float32frombits(guard)
	}
	s := buf[off : off+n : off+n]
	return s, func() {
		t.Helper()
		for i, v := range buf {
			if i >= off && i < off+n {
				continue
			}
			if math.Float32bits(v) != guard {
				t.Fatalf("guard element %d (slice [%d:%d]) overwritten: %v", i, off, off+n, v)
			}
		}
	}
}

// refScores is the float64 reference of GumbelScores: the normalised scores
// s_j/sum using the same noise (Noise).
func refScores(src []float32, invTau float64, key Key, flags Flags) ([]float64, bool) {
	q := make([]float64, len(src))
	qmax := math.Inf(-1)
	for j, x := range src {
		v := float64(x)
		var l float64
		if flags&Logits != 0 {
			if math.IsNaN(v) || math.IsInf(v, 1) {
				return nil, false
			}
			l = v
		} else {
			if math.IsNaN(v) || v < 0 || v > 1+1.0/64 {
				return nil, false
			}
			l = math.Log(v)
		}
		if math.IsInf(l, -1) {
			q[j] = l
			continue
		}
		g := 0.0
		if flags&NoNoise == 0 {
			g = Noise(key, j)
		}
		q[j] = (l + g) * invTau
		qmax = max(qmax, q[j])
	}
	out := make([]float64, len(src))
	if math.IsInf(qmax, -1) {
		return out, true
	}
	var sum float64
	for j := range q {
		out[j] = math.Exp(q[j] - qmax)
		sum += out[j]
	}
	for j := range out {
		out[j] /= sum
	}
	return out, true
}

const (
	relTol = 1e-5
	absTol = 1e-30 // for elements ~1e-30 of the row, where float32 underflows
)

func checkScores(t testing.TB, name string, dst, src []float32, sum float32, ok bool, invTau float32, key Key, flags Flags) {
	t.Helper()
	want, wantOK := refScores(src, float64(invTau), key, flags)
	require.Equal(t, wantOK, ok, "%s: ok", name)
	if !ok {
		return
	}
	if sum == 0 {
		for j, w := range want {
			require.Zero(t, w, "%s: sum 0 but reference cell %d live", name, j)
			require.Zero(t, dst[j], "%s: sum 0 but dst[%d] != 0", name, j)
		}
		return
	}
	require.False(t, math.IsNaN(float64(sum)) || math.IsInf(float64(sum), 0), "%s: sum %v", name, sum)
	for j, w := range want {
		got := float64(dst[j]) / float64(sum)
		if w == 0 {
			require.Zero(t, dst[j], "%s: masked cell %d (src %v) got %v", name, j, src[j], dst[j])
			continue
		}
		if d := math.Abs(got - w); !(d <= relTol*w+absTol) {
			t.Fatalf("%s: cell %d of %d (src %g): got %.9g want %.9g (rel err %.3g)", name, j, len(src), src[j], got, w, d/w)
		}
	}
}

// rowKinds generate test rows of n cells.
var rowKinds = []struct {
	name string
	gen  func(rng *rand.Rand, n int, logits bool) []float32
}{
	{"softmax", func(rng *rand.Rand, n int, logits bool) []float32 {
		l := make([]float64, n)
		for i := range l {
			l[i] = rng.NormFloat64() * 4
		}
		return fromLogits(rng, l, logits, 0.1)
	}},
	{"peaked", func(rng *rand.Rand, n int, logits bool) []float32 {
		l := make([]float64, n)
		for i := range l {
			l[i] = rng.NormFloat64() * 30
		}
		return fromLogits(rng, l, logits, 0.3)
	}},
	{"uniform", func(rng *rand.Rand, n int, logits bool) []float32 {
		r := make([]float32, n)
		for i := range r {
			if logits {
				r[i] = float32(rng.Float64()*200 - 100)
			} else {
				r[i] = rng.Float32() * (1 + 1.0/64)
			}
		}
		return r
	}},
	{"tiny", func(rng *rand.Rand, n int, logits bool) []float32 {
		// denormals, tiny normals, zeros, and a few big values
		r := make([]float32, n)
		for i := range r {
			switch rng.IntN(5) {
			case 0:
				r[i] = math.Float32frombits(rng.Uint32N(0x800000)) // denormal or 0
			case 1:
				r[i] = float32(math.Ldexp(1+rng.Float64(), -rng.IntN(126)-1))
			case 2:
				r[i] = 0
			case 3:
				r[i] = math.Float32frombits(1 + rng.Uint32N(8)) // smallest denormals
			default:
				r[i] = []float32{1, 1 + 1.0/64, 0.5, 1e-3}[rng.IntN(4)]
			}
			if logits {
				if r[i] == 0 {
					r[i] = float32(math.Inf(-1))
				} else {
					r[i] = float32(math.Log(float64(r[i])))
				}
			}
		}
		return r
	}},
	{"alldenormal", func(rng *rand.Rand, n int, logits bool) []float32 {
		r := make([]float32, n)
		for i := range r {
			r[i] = math.Float32frombits(rng.Uint32N(0x800000))
			if logits {
				r[i] = float32(rng.Float64()*1e-30 - 1e4)
			}
		}
		return r
	}},
	{"masked", func(rng *rand.Rand, n int, logits bool) []float32 {
		r := make([]float32, n)
		if logits {
			for i := range r {
				r[i] = float32(math.Inf(-1))
			}
		}
		return r
	}},
	{"onelive", func(rng *rand.Rand, n int, logits bool) []float32 {
		r := make([]float32, n)
		for i := range r {
			if logits {
				r[i] = float32(math.Inf(-1))
			}
		}
		if n > 0 {
			r[rng.IntN(n)] = 0.25
		}
		return r
	}},
	{"biglogits", func(rng *rand.Rand, n int, logits bool) []float32 {
		r := make([]float32, n)
		for i := range r {
			if logits {
				r[i] = float32(1e4 + rng.NormFloat64()*5)
			} else {
				r[i] = float32(rng.Float64() / float64(n))
			}
		}
		return r
	}},
}

func fromLogits(rng *rand.Rand, l []float64, logits bool, zeroFrac float64) []float32 {
	mx := math.Inf(-1)
	for _, v := range l {
		mx = max(mx, v)
	}
	r := make([]float32, len(l))
	var sum float64
	p := make([]float64, len(l))
	for i, v := range l {
		if rng.Float64() < zeroFrac {
			continue
		}
		p[i] = math.Exp(v - mx)
		sum += p[i]
	}
	for i := range r {
		switch {
		case logits && p[i] == 0:
			r[i] = float32(math.Inf(-1))
		case logits:
			r[i] = float32(l[i])
		case p[i] != 0:
			r[i] = float32(p[i] / sum)
		}
	}
	return r
}

var testInvTaus = []float32{1, 0.5, 1 / 1.5, 0.25, 0.8}
var testFlags = []Flags{0, NoNoise, Logits, Logits | NoNoise}

func testLengths() []int {
	var ls []int
	for n := 0; n <= 67; n++ {
		ls = append(ls, n)
	}
	return append(ls, 255, 1000, 1023, 1024, 1025, 2049, 4099, 33000)
}

func TestGumbelScores(t *testing.T) {
	for _, im := range implementations() {
		t.Run(im.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			for _, n := range testLengths() {
				for ki, kind := range rowKinds {
					for fi, flags := range testFlags {
						off := (n + ki + fi) % 8
						invTau := testInvTaus[(n+ki*3+fi)%len(testInvTaus)]
						key := Key{A: rng.Uint32() | 1, B: rng.Uint32()}
						src := kind.gen(rng, n, flags&Logits != 0)
						in, checkIn := guarded(t, n, (off+3)%8)
						copy(in, src)
						dst, checkDst := guarded(t, n, off)
						name := fmt.Sprintf("n=%d/%s/flags=%d/invTau=%g/off=%d", n, kind.name, flags, invTau, off)
						sum, ok := im.gumbelScores(dst, in, invTau, key, flags)
						checkDst()
						checkIn()
						require.Equal(t, src, in, "%s: src modified", name)
						checkScores(t, name, dst, src, sum, ok, invTau, key, flags)
					}
				}
			}
		})
	}
}

func TestGumbelScoresLongDst(t *testing.T) {
	// dst longer than src: only dst[:len(src)] is written.
	for _, im := range implementations() {
		for n := 0; n < 40; n++ {
			src := make([]float32, n)
			for i := range src {
				src[i] = float32(i+1) / float32(n*n+1)
			}
			buf, check := guarded(t, n+20, 1)
			for i := range buf[n:] {
				buf[n+i] = math.Float32frombits(guard)
			}
			sum, ok := im.gumbelScores(buf, src, 1, Key{3, 4}, 0)
			check()
			for i := range buf[n:] {
				require.Equal(t, uint32(guard), math.Float32bits(buf[n+i]), "%s: n=%d dst[%d] written", im.name, n, n+i)
			}
			checkScores(t, im.name, buf, src, sum, ok, 1, Key{3, 4}, 0)
		}
	}
}

func TestGumbelScoresInvalid(t *testing.T) {
	nan := float32(math.NaN())
	negNaN := math.Float32frombits(0xffc00000)
	inf := float32(math.Inf(1))
	probBad := []float32{nan, negNaN, inf, float32(math.Inf(-1)), -1, -1e-30, -math.Float32frombits(1), 1 + 1.0/64 + 1.0/(1<<23), 2, math.MaxFloat32}
	probGood := []float32{0, float32(math.Copysign(0, -1)), 1, 1 + 1.0/64, math.Float32frombits(1)}
	logitBad := []float32{nan, negNaN, inf}
	logitGood := []float32{float32(math.Inf(-1)), -math.MaxFloat32, 0, 1e4}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, im := range implementations() {
		for _, n := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100, 1030} {
			for _, flags := range testFlags {
				bad, good := probBad, probGood
				if flags&Logits != 0 {
					bad, good = logitBad, logitGood
				}
				for pos := range n {
					if n > 40 && pos%7 != 0 && pos < n-20 {
						continue
					}
					for _, b := range bad {
						src := rowKinds[0].gen(rng, n, flags&Logits != 0)
						src[pos] = b
						dst := make([]float32, n)
						_, ok := im.gumbelScores(dst, src, 0.5, Key{5, 6}, flags)
						require.False(t, ok, "%s: n=%d flags=%d bad %v at %d", im.name, n, flags, b, pos)
					}
					for _, g := range good {
						src := rowKinds[0].gen(rng, n, flags&Logits != 0)
						src[pos] = g
						dst := make([]float32, n)
						sum, ok := im.gumbelScores(dst, src, 0.5, Key{5, 6}, flags)
						name := fmt.Sprintf("%s: n=%d flags=%d good %v at %d", im.name, n, flags, g, pos)
						require.True(t, ok, "%s src=%v", name, src)
						checkScores(t, name, dst, src, sum, ok, 0.5, Key{5, 6}, flags)
					}
				}
			}
		}
	}
}

// TestNoiseStats checks that the float32 noise of the kernels (every
// implementation's noise pass) is Gumbel(0,1), and close to Noise:
// g = -ln(-ln u) = -ln(ln 2) - log2(-log2 u)*ln 2.
func TestNoiseStats(t *testing.T) {
	const N = 1 << 20
	key := Key{A: 0x2545f491, B: 0x9e3779b9}
	for _, im := range implementations() {
		log2u := make([]float32, N)
		for i := 0; i < N; i += chunk {
			im.kernels.noise(log2u[i:i+chunk], i, key)
		}
		var s, s2, maxDiff float64
		for j, l := range log2u {
			g := -math.Log(math.Ln2) - float64(log2Biased(-l, log2Bias))*math.Ln2
			s += g
			s2 += g * g
			maxDiff = max(maxDiff, math.Abs(g-Noise(key, j)))
		}
		mean := s / N
		variance := s2/N - mean*mean
		t.Logf("%s: mean %.5f (want 0.57722) variance %.5f (want %.5f) max |g32-g64| %.3g", im.name, mean, variance, math.Pi*math.Pi/6, maxDiff)
		require.InDelta(t, 0.5772156649, mean, 0.005, im.name)
		require.InDelta(t, math.Pi*math.Pi/6, variance, 0.01, im.name)
		require.Less(t, maxDiff, 2e-6, im.name)
	}
}

func TestNoiseReference(t *testing.T) {
	// Noise against a direct evaluation of the documented formula.
	key := Key{A: 12345 | 1, B: 678}
	for j := range 1000 {
		x := uint32(j)*key.A + key.B
		x ^= x >> 16
		x *= 0x7feb352d
		x ^= x >> 15
		x *= 0x846ca68b
		x ^= x >> 16
		u := (float64(x>>8) + 0.5) / (1 << 24)
		require.Equal(t, -math.Log(-math.Log(u)), Noise(key, j))
	}
}

func FuzzGumbelScores(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 63}, uint32(1), uint32(2), uint8(0), uint8(0))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint32(7), uint32(9), uint8(1), uint8(2))
	f.Add(make([]byte, 4*37), uint32(7), uint32(9), uint8(3), uint8(1))
	impls := implementations()
	f.Fuzz(func(t *testing.T, data []byte, a, b uint32, flags, tau uint8) {
		n := len(data) / 4
		src := make([]float32, n)
		for i := range src {
			src[i] = math.Float32frombits(uint32(data[4*i]) | uint32(data[4*i+1])<<8 | uint32(data[4*i+2])<<16 | uint32(data[4*i+3])<<24)
		}
		invTau := testInvTaus[int(tau)%len(testInvTaus)]
		fl := Flags(flags) & (Logits | NoNoise)
		key := Key{a | 1, b}
		want := make([]float32, n)
		wsum, wok := gumbelScoresGeneric(want, src, invTau, key, fl)
		_, refOK := refScores(src, float64(invTau), key, fl)
		require.Equal(t, refOK, wok, "generic ok")
		for _, im := range impls {
			dst, check := guarded(t, n, 3)
			sum, ok := im.gumbelScores(dst, src, invTau, key, fl)
			check()
			require.Equal(t, wok, ok, "%s ok", im.name)
			if !ok {
				continue
			}
			if wsum == 0 {
				require.Zero(t, sum, im.name)
				continue
			}
			require.InEpsilon(t, wsum, sum, 1e-5, "%s sum", im.name)
			for j := range dst {
				w := float64(want[j]) / float64(wsum)
				g := float64(dst[j]) / float64(sum)
				require.InDelta(t, w, g, relTol*w+absTol, "%s cell %d (src %g)", im.name, j, src[j])
			}
		}
	})
}
