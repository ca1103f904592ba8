//go:build amd64 && !purego

package simd

import (
	"fmt"
	"testing"
)

func BenchmarkParts(b *testing.B) {
	for _, n := range []int{256, 512, 1024, 2048, 4096} {
		src := benchRow(n)
		dst := make([]float32, n)
		acc := make([]float32, n)
		rep := func(b *testing.B) {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/elem")
		}
		b.Run(fmt.Sprint("noise", n), func(b *testing.B) {
			for b.Loop() {
				noiseKernel(&dst[0], n, 0, 5, 6)
			}
			rep(b)
		})
		b.Run(fmt.Sprint("prob", n), func(b *testing.B) {
			for b.Loop() {
				noiseKernel(&dst[0], n, 0, 5, 6)
				gumbelProbKernel(&dst[0], &src[0], n, true)
			}
			rep(b)
		})
		b.Run(fmt.Sprint("probplain", n), func(b *testing.B) {
			for b.Loop() {
				gumbelProbKernel(&dst[0], &src[0], n, false)
			}
			rep(b)
		})
		b.Run(fmt.Sprint("exp", n), func(b *testing.B) {
			for b.Loop() {
				for i := 0; i < n; i += 1024 {
					expKernel(&dst[i], min(n-i, 1024), 0.5, -1)
				}
			}
			rep(b)
		})
		b.Run(fmt.Sprint("add", n), func(b *testing.B) {
			for b.Loop() {
				addScaledKernel(&acc[0], &dst[0], n, 0.5)
			}
			rep(b)
		})
		b.Run(fmt.Sprint("all", n), func(b *testing.B) {
			for b.Loop() {
				s, _ := gumbelScoresAsm(dst, src, 0.6, Key{5, 6}, 0)
				addScaledAsm(acc, dst, 1/s)
			}
			rep(b)
		})
	}
}
