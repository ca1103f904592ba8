package simd

// SmallestK appends to dst[:0] the indices of the k smallest elements of x,
// in ascending index order, and returns it. Ties are broken by index: of two
// equal elements the one with the lower index counts as smaller. k must be in
// [0, len(x)] and x must hold no NaN.
//
// SmallestK is pure Go on every architecture: it runs for plans that evict
// several cells at once (each chunk of a prompt; a decode with eviction slack,
// once per slack tokens), while a single eviction takes Argmin. It selects the k-th smallest (value, index) pair with an introselect-style
// quickselect over a copy of the values (O(n) expected) and then collects
// the indices in one pass.
func SmallestK(dst []int32, x []float32, k int) []int32 {
	dst = dst[:0]
	if k < 0 || k > len(x) {
		panic("simd: SmallestK: k out of range")
	}
	if k == 0 {
		return dst
	}
	if k == len(x) {
		for j := range x {
			dst = append(dst, int32(j))
		}
		return dst
	}
	// Find the k-th smallest value t (0-based rank k-1).
	tmp := make([]float32, len(x))
	copy(tmp, x)
	t := selectKth(tmp, k-1)
	// Every element < t is in; then elements == t in index order until k.
	less := 0
	for _, v := range x {
		if v < t {
			less++
		}
	}
	eq := k - less
	for j, v := range x {
		if v < t {
			dst = append(dst, int32(j))
		} else if v == t && eq > 0 {
			dst = append(dst, int32(j))
			eq--
		}
	}
	return dst
}

// selectKth rearranges a so that a[k] is the value of rank k and returns it.
func selectKth(a []float32, k int) float32 {
	lo, hi := 0, len(a)-1
	seed := uint32(len(a))*0x9e3779b9 + 1
	for hi > lo {
		if hi-lo < 16 {
			// insertion sort
			for i := lo + 1; i <= hi; i++ {
				v := a[i]
				j := i - 1
				for j >= lo && a[j] > v {
					a[j+1] = a[j]
					j--
				}
				a[j+1] = v
			}
			return a[k]
		}
		// median of three random-ish pivots
		seed = lowbias32(seed)
		span := uint32(hi - lo + 1)
		p0 := a[lo+int(seed%span)]
		p1 := a[lo+int((seed>>11)%span)]
		p2 := a[lo+int((seed>>22)%span)]
		pivot := max(min(p0, p1), min(max(p0, p1), p2))
		// three-way partition: [lo,lt) < pivot, [lt,gt] == pivot, (gt,hi] > pivot
		lt, i, gt := lo, lo, hi
		for i <= gt {
			switch v := a[i]; {
			case v < pivot:
				a[lt], a[i] = v, a[lt]
				lt++
				i++
			case v > pivot:
				a[gt], a[i] = v, a[gt]
				gt--
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt - 1
		case k > gt:
			lo = gt + 1
		default:
			return pivot
		}
	}
	return a[k]
}
