package simd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAddScaled(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	lengths := append(testLengths(), 4096, 4097)
	for _, im := range implementations() {
		for _, n := range lengths {
			for _, a := range []float32{0, 1, -0.5, 1.0 / 3, 1e-30, 3e5} {
				off := (n + int(a)) % 8
				acc, checkAcc := guarded(t, n, off)
				x, checkX := guarded(t, n, (off+5)%8)
				for i := range acc {
					acc[i] = float32(rng.NormFloat64())
					x[i] = float32(rng.NormFloat64() * 10)
				}
				if n > 3 {
					x[n-1] = math.Float32frombits(1) // denormal
					acc[1] = float32(math.Inf(1))
				}
				orig := slices.Clone(acc)
				want := slices.Clone(acc)
				addScaledGeneric(want, x, a)
				xCopy := slices.Clone(x)
				im.addScaled(acc, x, a)
				checkAcc()
				checkX()
				require.Equal(t, xCopy, x)
				for i := range acc {
					// the kernels may fuse the multiply-add: accept the
					// unfused result or (within 1 ulp) the fused one.
					fused := float32(float64(a)*float64(xCopy[i]) + float64(orig[i]))
					if acc[i] != want[i] && ulpDiff(acc[i], fused) > 1 {
						t.Fatalf("%s: n=%d a=%v: acc[%d] = %v, want %v", im.name, n, a, i, acc[i], want[i])
					}
				}
			}
		}
		// AddScaled through the exported API, len(x) > len(acc)
		acc := []float32{1, 2, 3}
		AddScaled(acc, []float32{1, 1, 1, 100}, 2)
		require.Equal(t, []float32{3, 4, 5}, acc)
	}
}

func ulpDiff(a, b float32) int64 {
	ia, ib := int64(int32(math.Float32bits(a))), int64(int32(math.Float32bits(b)))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	d := ia - ib
	if d < 0 {
		d = -d
	}
	return d
}

func TestArgmin(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	inf := float32(math.Inf(1))
	for _, im := range implementations() {
		require.Equal(t, -1, im.argmin(nil), im.name)
		require.Equal(t, -1, Argmin(nil))
		for _, n := range append(testLengths(), 4096, 4100) {
			if n == 0 {
				continue
			}
			for trial := range 12 {
				off := (n + trial) % 8
				x, check := guarded(t, n, off)
				switch trial {
				case 0: // all equal
					for i := range x {
						x[i] = 0.5
					}
				case 1: // all +Inf
					for i := range x {
						x[i] = inf
					}
				case 2: // few distinct values: many ties
					for i := range x {
						x[i] = float32(rng.IntN(3))
					}
				case 3: // descending: the minimum is last
					for i := range x {
						x[i] = float32(n - i)
					}
				case 4: // +Inf with one finite
					for i := range x {
						x[i] = inf
					}
					x[rng.IntN(n)] = 1e30
				case 5: // -0 and +0 are equal: lowest index wins
					for i := range x {
						x[i] = 1
					}
					x[n-1] = 0
					x[rng.IntN(n)] = float32(math.Copysign(0, -1))
				case 6: // -Inf, denormals
					for i := range x {
						x[i] = math.Float32frombits(rng.Uint32N(100))
					}
					if n > 2 {
						x[n/2] = float32(math.Inf(-1))
					}
				default:
					for i := range x {
						x[i] = float32(rng.NormFloat64())
					}
					// min duplicated at two random places
					if n > 1 {
						i, j := rng.IntN(n), rng.IntN(n)
						x[i], x[j] = -100, -100
					}
				}
				want := argminRef(x)
				got := im.argmin(x)
				check()
				require.Equal(t, want, got, "%s: n=%d trial=%d off=%d", im.name, n, trial, off)
			}
		}
	}
}

// argminRef: lowest index of the smallest element (-0 == +0).
func argminRef(x []float32) int {
	best := 0
	for i := range x {
		if x[i] < x[best] {
			best = i
		}
	}
	return best
}

func TestSmallestK(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	inf := float32(math.Inf(1))
	for _, n := range append(testLengths(), 5000) {
		for trial := range 6 {
			x := make([]float32, n)
			for i := range x {
				switch trial {
				case 0:
					x[i] = float32(rng.NormFloat64())
				case 1:
					x[i] = float32(rng.IntN(4)) // many ties
				case 2:
					x[i] = 7 // all equal
				case 3:
					x[i] = []float32{inf, 0, float32(math.Copysign(0, -1)), 1}[rng.IntN(4)]
				case 4:
					x[i] = float32(n - i)
				default:
					x[i] = float32(i % 5)
				}
			}
			ks := []int{0, n, n / 2, n / 3, 1, n - 1}
			for _, k := range ks {
				if k < 0 || k > n {
					continue
				}
				dst := make([]int32, 3, 10) // SmallestK reuses dst[:0]
				got := SmallestK(dst, x, k)
				want := smallestKRef(x, k)
				require.Equal(t, want, got, "n=%d trial=%d k=%d", n, trial, k)
			}
		}
	}
	require.Panics(t, func() { SmallestK(nil, []float32{1}, 2) })
}

func smallestKRef(x []float32, k int) []int32 {
	idx := make([]int32, len(x))
	for i := range idx {
		idx[i] = int32(i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return x[idx[a]] < x[idx[b]] })
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	if out == nil {
		out = []int32{}
	}
	return out
}

func ExampleSmallestK() {
	x := []float32{0.5, 0.1, 0.3, 0.1, 0.9}
	fmt.Println(SmallestK(nil, x, 3))
	// Output: [1 2 3]
}
