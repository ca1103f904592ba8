package simd

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
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
	benchWarmup()
	for _, name := range []string{"asm", "generic"} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), benchGumbel(name, n))
		}
	}
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("naive/n=%d", n), benchNaive(n))
	}
}

// benchKey is the Gumbel noise key of the row-kernel benchmarks.
var benchKey = Key{A: 0x9e3779b9 | 1, B: 12345}

// benchGumbel is the benchmark of implementation name (asm or generic) on one
// row of n probabilities; it reports ns/elem.
func benchGumbel(name string, n int) func(*testing.B) {
	return func(b *testing.B) {
		const invTau = float32(1 / 1.5)
		im := benchImpl(name)
		if im == nil {
			b.Skip("no assembly kernels on this CPU or build")
		}
		src := benchRow(n)
		dst := make([]float32, n)
		acc := make([]float32, n)
		b.SetBytes(int64(4 * n))
		for b.Loop() {
			sum, _ := im.gumbelScores(dst, src, invTau, benchKey, 0)
			im.addScaled(acc, dst, 1/sum)
		}
		reportNsPerElem(b, n)
	}
}

// benchNaive is the benchmark of naiveGumbel on one row of n probabilities;
// it reports ns/elem.
func benchNaive(n int) func(*testing.B) {
	return func(b *testing.B) {
		src := benchRow(n)
		acc := make([]float32, n)
		q := make([]float64, n)
		b.SetBytes(int64(4 * n))
		for b.Loop() {
			naiveGumbel(acc, src, 1.5, benchKey, q)
		}
		reportNsPerElem(b, n)
	}
}

// BenchmarkArgmin: one op is argmin over argminBenchN uniform float32 values,
// asm (the kernels of this CPU) and generic (the Go twin).
func BenchmarkArgmin(b *testing.B) {
	for _, name := range []string{"asm", "generic"} {
		b.Run(fmt.Sprintf("%s/n=%d", name, argminBenchN), benchArgmin(name))
	}
}

const argminBenchN = 4096

// benchArgmin is the argmin benchmark of implementation name (asm or
// generic); it reports ns/elem.
func benchArgmin(name string) func(*testing.B) {
	return func(b *testing.B) {
		im := benchImpl(name)
		if im == nil {
			b.Skip("no assembly kernels on this CPU or build")
		}
		rng := rand.New(rand.NewPCG(3, 4))
		x := make([]float32, argminBenchN)
		for i := range x {
			x[i] = rng.Float32()
		}
		r := 0
		for b.Loop() {
			r += im.argmin(x)
		}
		reportNsPerElem(b, argminBenchN)
	}
}

// reportNsPerElem adds the ns/elem metric: the time per op over n elements.
func reportNsPerElem(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
}

var kernelsJSON = flag.String("kernels.json", "",
	"TestKernelsJSON writes the medians of the n=4096 kernel benchmarks as one JSON line to this file (make bench-kernels)")

// kernelsResult is the JSON line of TestKernelsJSON: ns per element at n, medians over kernelsRuns
// runs of the benchmarks above, each to 4 significant digits (strconv's 'g' format).
type kernelsResult struct {
	N         int         `json:"n"`
	AsmNs     json.Number `json:"asm_ns_per_elem"`
	GenericNs json.Number `json:"generic_ns_per_elem"`
	NaiveNs   json.Number `json:"naive_ns_per_elem"`
	ArgminNs  json.Number `json:"argmin_ns_per_elem"`
}

const kernelsRuns = 5

// TestKernelsJSON runs, with -kernels.json FILE only, the n=4096 row-kernel benchmarks (asm,
// generic, naive) and the asm argmin benchmark kernelsRuns times each through testing.Benchmark
// (at -benchtime) and writes their median ns/elem as one JSON line to FILE (go test shows a
// passing test's output only with -v).
func TestKernelsJSON(t *testing.T) {
	if *kernelsJSON == "" {
		t.Skip("runs with -kernels.json FILE (make bench-kernels)")
	}
	const n = 4096
	benchWarmup()
	res := kernelsResult{N: n}
	for _, f := range []struct {
		name  string
		bench func(*testing.B)
		out   *json.Number
	}{
		{"GumbelScores/asm/n=4096", benchGumbel("asm", n), &res.AsmNs},
		{"GumbelScores/generic/n=4096", benchGumbel("generic", n), &res.GenericNs},
		{"GumbelScores/naive/n=4096", benchNaive(n), &res.NaiveNs},
		{"Argmin/asm/n=4096", benchArgmin("asm"), &res.ArgminNs},
	} {
		v := make([]float64, kernelsRuns)
		for i := range v {
			r := testing.Benchmark(f.bench)
			if r.N == 0 {
				t.Fatalf("%s did not run (no assembly kernels on this CPU or build?)", f.name)
			}
			v[i] = r.Extra["ns/elem"]
		}
		*f.out = json.Number(strconv.FormatFloat(median(v), 'g', 4, 64))
	}
	line, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("kernels JSON: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(*kernelsJSON), 0o755); err != nil {
		t.Fatalf("kernels JSON: %v", err)
	}
	if err := os.WriteFile(*kernelsJSON, append(line, '\n'), 0o644); err != nil {
		t.Fatalf("kernels JSON: %v", err)
	}
}

// median returns the middle value of v (the mean of the two middle ones for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
