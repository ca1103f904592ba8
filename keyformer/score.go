package keyformer

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/keyformer/keyformer/simd"
)

// scoring describes the rows of one observation to score.
type scoring struct {
	a      *Attention
	row0   int // first row to score (TOVA scores the last row only)
	flags  simd.Flags
	invTau float32
	scale  float32 // multiplies every normalised row; 0 means 1
	base   uint64  // noise draw of this observation
	accs   int     // accumulators: 1 (Shared) or KV heads (PerHead, peak)
	groups int     // query heads per KV head
	peak   bool    // accumulate the maximum over rows and heads instead of the sum
}

// workspace holds a sequence's reusable scoring buffers.
type workspace struct {
	workers      [][]float32 // per worker: accs*Cols accumulators then Cols scratch
	index        []int32
	mean, pooled []float32 // Plan's ranks (Sequence.ranks)
	peak         []float32 // Plan's maxima over the layers (Sequence.peakOverLayers)
}

// parallelElements is the work (attention elements) below which scoring stays on one goroutine.
const parallelElements = 1 << 16

// score runs the row kernel over every (row, head) of the job, in parallel when large, and returns
// the column sums (accs x Cols), or the column maxima for a peak job. Row i of the job (row r,
// head h) draws its noise from rowKey(base, r*Heads+h), so results do not depend on how the work
// is split.
func (w *workspace) score(j *scoring) ([]float32, error) {
	a := j.a
	pairs := (a.Rows - j.row0) * a.Heads
	n := min(runtime.GOMAXPROCS(0), pairs, pairs*a.Cols/parallelElements+1)
	size := (j.accs + 1) * a.Cols
	for len(w.workers) < n {
		w.workers = append(w.workers, nil)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		if cap(w.workers[k]) < size {
			w.workers[k] = make([]float32, size)
		}
		buf := w.workers[k][:size]
		clear(buf)
		lo, hi := k*pairs/n, (k+1)*pairs/n
		if k == n-1 {
			errs[k] = j.rows(buf, lo, hi)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = j.rows(buf, lo, hi)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	acc := w.workers[0][:j.accs*a.Cols]
	for k := 1; k < n; k++ {
		if j.peak {
			maxInto(acc, w.workers[k][:len(acc)], 1)
		} else {
			simd.AddScaled(acc, w.workers[k], 1)
		}
	}
	return acc, nil
}

// rows scores pairs [lo, hi) (counted from row0) into buf: accumulators then scratch.
func (j *scoring) rows(buf []float32, lo, hi int) error {
	a := j.a
	scratch := buf[j.accs*a.Cols:]
	for p := lo; p < hi; p++ {
		r, h := j.row0+p/a.Heads, p%a.Heads
		off := r*a.RowStride + h*a.HeadStride
		sum, ok := simd.GumbelScores(scratch, a.Data[off:off+a.Cols], j.invTau, rowKey(j.base, r*a.Heads+h), j.flags)
		if !ok {
			return fmt.Errorf("row %d head %d: %w", r, h, ErrInvalidAttention)
		}
		if sum == 0 {
			continue
		}
		scale := 1 / sum
		if j.scale != 0 {
			scale *= j.scale
		}
		k := 0
		if j.accs > 1 {
			k = h / j.groups
		}
		if j.peak {
			maxInto(buf[k*a.Cols:(k+1)*a.Cols], scratch, scale)
		} else {
			simd.AddScaled(buf[k*a.Cols:(k+1)*a.Cols], scratch, scale)
		}
	}
	return nil
}

// maxInto sets dst[i] to the larger of dst[i] and scale*src[i].
func maxInto(dst, src []float32, scale float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] = max(dst[i], scale*v)
	}
}
