//go:build (amd64 || arm64) && !purego

package simd

// The assembly kernels, AVX2+FMA in gumbel_amd64.s and NEON in gumbel_arm64.s: the passes of
// rowKernels (gumbel.go, which describes them) on whole vectors, adapted in asm.go;
// addScaledKernel handles any n >= 1, argminKernel needs n >= 8.

//go:noescape
func noiseKernel(dst *float32, n int, j0, a, b uint32)

//go:noescape
func gumbelProbKernel(dst, src *float32, n int, noise bool, bias int32) (qmax float32, maxBits uint32)

//go:noescape
func gumbelLogitsKernel(dst, src *float32, n int, noise bool, lmax float32) (qmax float32)

//go:noescape
func logitsMaxKernel(src *float32, n int) (lmax float32, bad bool)

//go:noescape
func expKernel(dst *float32, n int, invTau, c float32) (sum float32)

//go:noescape
func addScaledKernel(acc, x *float32, n int, a float32)

//go:noescape
func argminKernel(x *float32, n int) int
