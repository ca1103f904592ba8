package simd

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLog2Tables rebuilds the log2 tables from their definition.
func TestLog2Tables(t *testing.T) {
	for i := range 8 {
		lo := float64(math.Float32frombits(log2Bias + uint32(i)<<20))
		hi := float64(math.Float32frombits(log2Bias + uint32(i+1)<<20 - 1))
		c := (lo + hi) / 2
		if i == 4 {
			c = 1
		}
		invc := float32(1 / c)
		logc := float32(-math.Log2(float64(invc)))
		require.Equal(t, math.Float32bits(invc), log2Invc[i], "invc[%d]", i)
		require.Equal(t, logc, math.Float32frombits(log2Logc[i]), "logc[%d]", i)
	}
}

// TestLog2Accuracy: the error of log2Biased is below 4e-7*|log2 x| + 4e-8
// for every positive normal float32 (sampled): relative near 1, where
// interval 4 (c = 1) gives log2 x = f*P(f) with f exact.
func TestLog2Accuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	check := func(x float32) {
		got := float64(log2Biased(x, log2Bias))
		want := math.Log2(float64(x))
		if want == 0 {
			require.Zero(t, got, "log2(1)")
			return
		}
		require.LessOrEqual(t, math.Abs(got-want), 4e-7*math.Abs(want)+4e-8, "log2(%g) = %g, want %g", x, got, want)
	}
	for range 1 << 20 {
		check(math.Float32frombits(0x00800000 + rng.Uint32N(0x7f000000)))
	}
	for d := uint32(0); d < 1<<16; d++ { // around 1: relative accuracy
		for _, x := range []float32{math.Float32frombits(0x3f800000 + d), math.Float32frombits(0x3f800000 - d)} {
			got, want := float64(log2Biased(x, log2Bias)), math.Log2(float64(x))
			require.LessOrEqual(t, math.Abs(got-want), 4e-7*math.Abs(want), "log2(%g)", x)
		}
	}
	// biased: log2(x) - k
	require.InDelta(t, -64.0, log2Biased(1, log2Bias+64<<23), 1e-6)
	require.InDelta(t, 3.0-64, log2Biased(8, log2Bias+64<<23), 1e-6)
}

// TestLog2UAccuracy: the float32 log2(u) of the noise has a relative error
// below 5e-7 over the whole range of v, in particular for u close to 1
// (E = -log2 u, whose relative error is that of the noise's weight).
func TestLog2UAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	check := func(v int32) {
		got := float64(log2UOfV(v))
		want := math.Log2(float64(v) / (1 << 25))
		require.LessOrEqual(t, math.Abs(got-want), 5e-7*math.Abs(want), "v=%d: log2 u = %g, want %g", v, got, want)
	}
	for v := int32(1); v < 1<<17; v += 2 {
		check(v)
		check(1<<25 - v)
	}
	for range 1 << 20 {
		check(int32(rng.Uint32N(1<<24))*2 + 1)
	}
}

// TestExp2Accuracy: exp2Poly has a relative error below 3e-7 on [-126, 0]
// and is exactly 0 at and below -127.
func TestExp2Accuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	for range 1 << 20 {
		x := -float32(rng.Float64() * 126)
		got, want := float64(exp2Poly(x)), math.Exp2(float64(x))
		require.LessOrEqual(t, math.Abs(got-want), 3e-7*want, "2^%g", x)
	}
	for _, x := range []float32{-127, -127.4, -1000, float32(math.Inf(-1))} {
		require.Zero(t, exp2Poly(x), "2^%g", x)
	}
	require.InEpsilon(t, 1, exp2Poly(0), 2e-7)
}

// TestKernels compares each assembly kernel with its Go twin on the same
// inputs: they perform the same float32 operations, so the results agree to
// within a few ulp (the Go twin rounds its fused multiply-adds through
// float64).
func TestKernels(t *testing.T) {
	asm := benchImpl("asm")
	if asm == nil {
		t.Skip("no assembly kernels on this CPU or build")
	}
	asmKernels := asm.kernels
	rng := rand.New(rand.NewPCG(27, 28))
	const n = 2048
	key := Key{A: rng.Uint32() | 1, B: rng.Uint32()}
	closeEnough := func(name string, a, b []float32) {
		t.Helper()
		for i := range a {
			if a[i] != b[i] && ulpDiff(a[i], b[i]) > 4 {
				t.Fatalf("%s: element %d: asm %v, generic %v", name, i, a[i], b[i])
			}
		}
	}
	for _, j0 := range []int{0, 8, 1 << 20, math.MaxInt32 - 7} {
		ga, gg := make([]float32, n), make([]float32, n)
		asmKernels.noise(ga, j0, key)
		genericKernels.noise(gg, j0, key)
		closeEnough("noise", ga, gg)
	}
	src := benchRow(n)
	for i := range 40 {
		src[rng.IntN(n)] = []float32{0, math.Float32frombits(1), math.Float32frombits(0x7fffff), 1, 1e-30}[i%5]
	}
	logits := make([]float32, n)
	for i := range logits {
		logits[i] = float32(rng.NormFloat64() * 10)
	}
	logits[5] = float32(math.Inf(-1))
	for _, noise := range []bool{true, false} {
		for _, bias := range []int32{probBias, probBias - 100<<23} {
			da, dg := make([]float32, n), make([]float32, n)
			asmKernels.noise(da, 0, key)
			genericKernels.noise(dg, 0, key)
			qa, ma := asmKernels.prob(da, src, noise, bias)
			qg, mg := genericKernels.prob(dg, src, noise, bias)
			closeEnough("prob", da, dg)
			closeEnough("prob qmax", []float32{qa}, []float32{qg})
			require.Equal(t, mg, ma, "prob maxBits")
		}
		da, dg := make([]float32, n), make([]float32, n)
		asmKernels.noise(da, 0, key)
		genericKernels.noise(dg, 0, key)
		la, ba := asmKernels.logitsMax(logits)
		lg, bg := genericKernels.logitsMax(logits)
		require.Equal(t, lg, la)
		require.Equal(t, bg, ba)
		qa := asmKernels.logits(da, logits, noise, la)
		qg := genericKernels.logits(dg, logits, noise, lg)
		closeEnough("logits", da, dg)
		closeEnough("logits qmax", []float32{qa}, []float32{qg})
		sa := asmKernels.exp(da, 0.7, -qa*0.7)
		sg := genericKernels.exp(dg, 0.7, -qg*0.7)
		closeEnough("exp", da, dg)
		require.InEpsilon(t, sg, sa, 1e-6)
	}
}
