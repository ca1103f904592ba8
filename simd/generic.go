package simd

// addScaledGeneric is the reference loop of AddScaled:
//
//	for j := range acc { acc[j] += a * x[j] }
func addScaledGeneric(acc, x []float32, a float32) {
	x = x[:len(acc)]
	for j := range acc {
		acc[j] += a * x[j]
	}
}

// argminGeneric is the reference loop of Argmin:
//
//	best := 0
//	for j := range x { if x[j] < x[best] { best = j } }
//
// and -1 for an empty x.
func argminGeneric(x []float32) int {
	if len(x) == 0 {
		return -1
	}
	best := 0
	m := x[0]
	for j, v := range x {
		if v < m {
			m, best = v, j
		}
	}
	return best
}
