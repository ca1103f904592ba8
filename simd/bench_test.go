package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// benchRow returns a realistic softmax row of n probabilities with ~10% zeros.
func benchRow(n int) []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	logits := make([]float64, n)
	for i := range logits {
		logits[i] = rng.NormFloat64() * 3
	}
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = max(mx, l)
	}
	var sum float64
	p := make([]float64, n)
	for i, l := range logits {
		if rng.IntN(10) == 0 {
			continue
		}
		p[i] = math.Exp(l - mx)
		sum += p[i]
	}
	row := make([]float32, n)
	for i := range p {
		row[i] = float32(p[i] / sum)
	}
	return row
}

// naiveGumbel is the straight float64 port of the PyTorch Keyformer scoring:
// log of the probabilities, Gumbel noise -log(-log(u)), a max-subtracted
// softmax with temperature, added to the accumulator.
func naiveGumbel(acc, src []float32, tau float64, key Key, q []float64) {
	mx := math.Inf(-1)
	for j, p := range src {
		h := lowbias32(uint32(j)*key.A + key.B)
		u := (float64(h>>8) + 0.5) * (1.0 / (1 << 24))
		g := -math.Log(-math.Log(u))
		v := (math.Log(float64(p)) + g) / tau
		q[j] = v
		mx = max(mx, v)
	}
	var sum float64
	for j, v := range q {
		e := math.Exp(v - mx)
		q[j] = e
		sum += e
	}
	for j, e := range q {
		acc[j] += float32(e / sum)
	}
}

var benchSizes = []int{512, 4096, 32768}

// benchWarmup runs ~10ms of work first, so that the first sub-benchmark is
// not measured on a cold core (clock ramp-up).
func benchWarmup() {
	src := benchRow(4096)
	dst := make([]float32, len(src))
	for start := time.Now(); time.Since(start) < 10*time.Millisecond; {
		GumbelScores(dst, src, 0.5, Key{1, 2}, 0)
	}
}

// benchImpl returns the implementation called name, or nil (the
// sub-benchmark is then skipped) when it cannot run on this CPU or build.
func benchImpl(name string) *impl {
	for _, im := range implementations() {
		if im.name == name {
			return &im
		}
	}
	return nil
}

// BenchmarkGumbelScores: one op is GumbelScores + AddScaled of one row of n
// probabilities (a softmax row with ~10% zeros), invTau = 1/1.5, as
// Keyformer does per attention row: asm (the kernels of this CPU), generic
// (the Go twins) and naive (the float64 port of the PyTorch code).
func BenchmarkGumbelScores(b *testing.B) {
	const invTau = float32(1 / 1.5)
	key := Key{A: 0x9e3779b9 | 1, B: 12345}
	benchWarmup()
	for _, name := range []string{"asm", "generic"} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				im := benchImpl(name)
				if im == nil {
					b.Skip("no assembly kernels on this CPU or build")
				}
				src := benchRow(n)
				dst := make([]float32, n)
				acc := make([]float32, n)
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					sum, _ := im.gumbelScores(dst, src, invTau, key, 0)
					im.addScaled(acc, dst, 1/sum)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
			})
		}
	}
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("naive/n=%d", n), func(b *testing.B) {
			src := benchRow(n)
			acc := make([]float32, n)
			q := make([]float64, n)
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				naiveGumbel(acc, src, 1.5, key, q)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
		})
	}
}

func BenchmarkArgmin(b *testing.B) {
	const n = 4096
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, n)
	for i := range x {
		x[i] = rng.Float32()
	}
	for _, name := range []string{"asm", "generic"} {
		b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
			im := benchImpl(name)
			if im == nil {
				b.Skip("no assembly kernels on this CPU or build")
			}
			r := 0
			for b.Loop() {
				r += im.argmin(x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
		})
	}
}
