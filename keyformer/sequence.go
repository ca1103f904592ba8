package keyformer

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/keyformer/keyformer/simd"
)

// Attention is one layer's attention for one ubatch: Rows query tokens x Heads query heads x Cols
// KV columns. Element (r, h, j) is Data[r*RowStride + h*HeadStride + j]; each row holds
// probabilities (0 for masked or free cells) or, with Logits, pre-softmax logits (-Inf for masked
// cells). llama.cpp's kq_soft_max tensor (ne = [n_kv, n_tokens, n_head]) has RowStride = n_kv and
// HeadStride = n_kv * n_tokens.
type Attention struct {
	Data                  []float32
	Rows, Heads, Cols     int
	RowStride, HeadStride int
	Logits                bool
	// Cells maps column j to the engine's cell id; nil means column j is cell j. Columns whose cell
	// is negative or not in the sequence are ignored.
	Cells []int32
}

// Eviction names a cell to free: the whole cell (Layer and Head are -1), or, in PerHead
// granularity, the cell's entry for one layer and KV head.
type Eviction struct {
	Cell, Layer, Head int32
}

// Token describes one cached token of a sequence.
type Token struct {
	Cell, Pos int32
	// Score is the accumulated score (PerHead: the sum over the heads that still hold the token).
	Score float32
	// Heads is the number of layer x KV-head sets that hold the token (1 in Shared granularity).
	Heads int
}

// Sequence is the eviction state of one sequence: the cells it occupies with their positions and
// scores, its step counter and its noise stream. Its methods are safe for concurrent use; calls on
// one sequence are serialised.
type Sequence struct {
	mu sync.Mutex
	sequenceState
}

// sequenceState is everything a Sequence holds but its lock.
type sequenceState struct {
	cfg *Config
	id  int32
	rng rng
	// prompt is the prompt length: declared, or the tokens added before the first Plan.
	prompt         int
	budget, window int // resolved at the first Plan; 0 before
	added          int // tokens ever added
	tovaAt         int // added at the last TOVA reset
	slotOf         []int32
	cells, pos     []int32
	// scores holds one array (Shared), Layers arrays (Shared under the peak policy, ranked by
	// their maximum) or Layers*KVHeads arrays (PerHead), indexed like cells; +Inf marks a token
	// evicted from that head.
	scores [][]float32
	// seen counts, per token, the query rows observed since it was added (Ranking.MeanAttention
	// only; nil otherwise), indexed like cells.
	seen []float32
	// anchor holds, per layer and KV head, the sum of the unit keys read (keydiff only; nil
	// before the first keys), each of dim values.
	anchor []float32
	dim    int
	live   []int // per scores array: tokens not evicted from it
	// scoreFrom is the first position ObserveAttention scores (ScoreFrom)
	scoreFrom int32
	work      workspace
}

func newSequence(cfg *Config, id int32) *Sequence {
	s := &Sequence{sequenceState: sequenceState{cfg: cfg, id: id}}
	s.reset()
	return s
}

func (s *Sequence) reset() {
	n := 1
	switch {
	case s.cfg.Granularity == PerHead:
		n = s.cfg.Shape.Layers * s.cfg.Shape.KVHeads
	case s.cfg.Policy == PolicyPeak:
		n = s.cfg.Shape.Layers
	}
	s.sequenceState = sequenceState{cfg: s.cfg, id: s.id, rng: newRNG(s.cfg.Seed, s.id),
		scores: make([][]float32, n), live: make([]int, n), work: s.work}
	if s.cfg.Ranking.MeanAttention {
		s.seen = []float32{}
	}
}

// ID returns the sequence id.
func (s *Sequence) ID() int32 { return s.id }

// Reset forgets every cell and score and restarts the noise stream, as for a new sequence.
func (s *Sequence) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
}

// Len returns the number of cached tokens.
func (s *Sequence) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cells)
}

// Limits returns the budget and window in tokens, and false while they are not resolved yet (a
// fractional budget resolves at the first Plan).
func (s *Sequence) Limits() (budget, window int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.budget, s.window, s.budget > 0
}

// Tokens returns the cached tokens in position order.
func (s *Sequence) Tokens() []Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Token, len(s.cells))
	for i := range out {
		t := Token{Cell: s.cells[i], Pos: s.pos[i]}
		for _, sc := range s.scores {
			if !math.IsInf(float64(sc[i]), 1) {
				t.Score += sc[i]
				t.Heads++
			}
		}
		if s.cfg.Granularity == Shared {
			t.Heads = 1 // the peak policy's arrays are layers, not heads
		}
		out[i] = t
	}
	return out
}

// SetPromptLength declares the prompt length n that a fractional budget refers to and after which
// tokens count as generated (for the temperature schedule). Without it the prompt is what was
// added before the first Plan. It cannot change once a Plan has resolved the budget.
func (s *Sequence) SetPromptLength(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || n > maxCells {
		return fmt.Errorf("prompt length %d outside [1, %d]", n, maxCells)
	}
	if s.budget > 0 && n != s.prompt {
		return fmt.Errorf("prompt length already fixed at %d by the first plan", s.prompt)
	}
	s.prompt = n
	return nil
}

// AddCells records new tokens: cells[i] now holds position positions[i]. Positions must increase
// and come after every position the sequence holds; cells must not be held already. Add a
// ubatch's cells before observing its attention.
func (s *Sequence) AddCells(cells, positions []int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addCells(cells, positions)
}

func (s *Sequence) addCells(cells, positions []int32) error {
	if len(cells) != len(positions) {
		return fmt.Errorf("add cells: %d cells but %d positions", len(cells), len(positions))
	}
	if len(s.cells)+len(cells) > maxCells {
		return fmt.Errorf("add cells: sequence would hold more than %d tokens", maxCells)
	}
	last := int32(-1)
	if n := len(s.pos); n > 0 {
		last = s.pos[n-1]
	}
	var given map[int32]struct{}
	if len(cells) > 1 {
		given = make(map[int32]struct{}, len(cells))
	}
	for i, c := range cells {
		if c < 0 || c >= maxCells {
			return fmt.Errorf("add cells: cell %d outside [0, %d)", c, maxCells)
		}
		if p := positions[i]; p <= last {
			return fmt.Errorf("add cells: position %d (cell %d) does not come after position %d", p, c, last)
		}
		last = positions[i]
		if s.slot(c) >= 0 {
			return fmt.Errorf("add cells: cell %d already holds position %d", c, s.pos[s.slot(c)])
		}
		if _, dup := given[c]; dup {
			return fmt.Errorf("add cells: cell %d given twice", c)
		}
		if len(cells) > 1 {
			given[c] = struct{}{}
		}
	}
	for i, c := range cells {
		s.growSlots(c)
		s.slotOf[c] = int32(len(s.cells))
		s.cells = append(s.cells, c)
		s.pos = append(s.pos, positions[i])
	}
	for h := range s.scores {
		s.scores[h] = append(s.scores[h], make([]float32, len(cells))...)
		s.live[h] += len(cells)
	}
	if s.cfg.Ranking.MeanAttention {
		s.seen = append(s.seen, make([]float32, len(cells))...)
	}
	s.added += len(cells)
	return nil
}

// growSlots makes slotOf long enough to hold cell c.
func (s *Sequence) growSlots(c int32) {
	if int(c) < len(s.slotOf) {
		return
	}
	grown := make([]int32, max(int(c)+1, 2*len(s.slotOf)))
	copy(grown, s.slotOf)
	for j := len(s.slotOf); j < len(grown); j++ {
		grown[j] = -1
	}
	s.slotOf = grown
}

// slot returns the index of cell c in the sequence's arrays, or -1.
func (s *Sequence) slot(c int32) int {
	if c < 0 || int(c) >= len(s.slotOf) {
		return -1
	}
	return int(s.slotOf[c])
}

// step returns t, the number of the newest generated token (0 during the prompt).
func (s *Sequence) step() int {
	if s.prompt == 0 || s.added <= s.prompt {
		return 0
	}
	return s.added - s.prompt
}

// WantsAttention reports whether the engine should show the attention (the keys, for a policy
// that reads keys) of the ubatch that just added rows tokens to the sequence (call it after
// AddCells): never for a policy that reads neither, always for a prompt chunk (more than one
// token) or while the prompt is not over, and for one generated token when its number is a
// multiple of the schedule's DecodeStride.
func (s *Sequence) WantsAttention(rows int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.cfg.Policy.scores() {
		return false
	}
	k := s.cfg.Observe.DecodeStride
	return rows > 1 || k <= 1 || s.step()%k == 0
}

// ScoreFrom makes ObserveAttention score only the tokens at position p or later: the others keep
// their scores. math.MaxInt32 scores none, 0 (a new sequence's setting) all. A host that scores a
// text by a later pass over it (a reconstruction, Sequence's peak policy) hides its reading this
// way and keeps each pass to the tokens it repeats. The setting is not part of the saved state.
func (s *Sequence) ScoreFrom(p int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scoreFrom = max(p, 0)
}

// ClearScores sets every held token's score (and seen count) to zero, as if no attention had been
// observed; a token evicted from a head stays evicted. A host that scores a text it has read by a
// later pass (its continuation, for an oracle) clears the reading's scores first.
func (s *Sequence) ClearScores() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.scores {
		for i, v := range sc {
			if !math.IsInf(float64(v), 1) {
				sc[i] = 0
			}
		}
	}
	clear(s.seen)
}

// scored returns the slot of column j's cell if the sequence holds it and scores it, or -1.
func (s *Sequence) scored(a *Attention, j int) int {
	i := s.slot(a.cell(j))
	if i >= 0 && s.pos[i] < s.scoreFrom {
		return -1
	}
	return i
}

// ObserveAttention scores the cells of the sequence with layer's attention for one ubatch and adds
// the scores to their accumulators (see ScoreFrom for the tokens it leaves alone). The rows must
// be this sequence's query tokens, in order; of more rows than the schedule's PromptRows, the
// last PromptRows are read. Invalid attention (NaN, +Inf, negative or >1 probabilities) among the
// rows read is an error and changes nothing.
func (s *Sequence) ObserveAttention(layer int, a Attention) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkAttention(layer, &a); err != nil {
		return fmt.Errorf("layer %d: %w", layer, err)
	}
	if k := s.cfg.Observe.PromptRows; k > 0 && a.Rows > k {
		a.Data, a.Rows = a.Data[(a.Rows-k)*a.RowStride:], k
	}
	p := s.cfg.Policy
	if p.ReadsKeys() {
		return fmt.Errorf("layer %d: policy %s reads keys (ObserveKeys), not attention", layer, p)
	}
	if !p.scores() {
		return nil
	}
	job := scoring{a: &a, invTau: float32(1 / s.cfg.tau(s.step())), groups: a.Heads / s.cfg.Shape.KVHeads}
	if a.Logits {
		job.flags |= simd.Logits
	}
	switch {
	case p == PolicyH2O || p == PolicyPeak:
		job.flags |= simd.NoNoise
		job.invTau = 1
		job.peak = p == PolicyPeak
	case p == PolicyTOVA:
		job.flags |= simd.NoNoise
		job.invTau = 1
		job.row0 = a.Rows - 1
		job.scale = 1 / float32(a.Heads)
	case !s.cfg.Noise:
		job.flags |= simd.NoNoise
	}
	if s.cfg.Granularity == PerHead || p == PolicyPeak {
		job.accs = s.cfg.Shape.KVHeads
	} else {
		job.accs = 1
	}
	saved := s.rng
	job.base = s.rng.next()
	acc, err := s.work.score(&job)
	if err != nil {
		s.rng = saved
		return fmt.Errorf("layer %d: %w", layer, err)
	}
	if p == PolicyTOVA && s.tovaAt != s.added {
		s.tovaAt = s.added
		for _, sc := range s.scores {
			for i := range sc {
				if !math.IsInf(float64(sc[i]), 1) {
					sc[i] = 0
				}
			}
		}
	}
	if p == PolicyPeak && s.cfg.Granularity == Shared {
		s.keepPeaks(s.scores[layer], acc, &a)
		return nil
	}
	for k := range job.accs {
		sc := s.scores[0]
		if s.cfg.Granularity == PerHead {
			sc = s.scores[layer*s.cfg.Shape.KVHeads+k]
		}
		col := acc[k*a.Cols : (k+1)*a.Cols]
		for j, v := range col {
			if i := s.scored(&a, j); i >= 0 {
				if p == PolicyPeak {
					sc[i] = max(sc[i], v)
				} else {
					sc[i] += v
				}
			}
		}
	}
	if s.seen != nil {
		s.countRows(&a, a.Rows-job.row0)
	}
	return nil
}

// keepPeaks raises each token's peak in sc (one layer's) to the sum over the KV heads of this
// observation's maxima (acc, KVHeads x Cols).
func (s *Sequence) keepPeaks(sc, acc []float32, a *Attention) {
	for j := range a.Cols {
		i := s.scored(a, j)
		if i < 0 {
			continue
		}
		var v float32
		for k := range s.cfg.Shape.KVHeads {
			v += acc[k*a.Cols+j]
		}
		sc[i] = max(sc[i], v)
	}
}

// cell returns the cell id of column j.
func (a *Attention) cell(j int) int32 {
	if a.Cells != nil {
		return a.Cells[j]
	}
	return int32(j)
}

// countRows adds to each observed token's seen count the rows of a that could see it: all of
// them for a token added before the ubatch, and under the causal mask its own row and the later
// ones for a token of the ubatch (the sequence's newest a.Rows tokens). rows is the number of
// rows scored (the last ones).
func (s *Sequence) countRows(a *Attention, rows int) {
	first := len(s.cells) - a.Rows // slot of the ubatch's first token
	for j := range a.Cols {
		i := s.slot(a.cell(j))
		if i < 0 {
			continue
		}
		s.seen[i] += float32(min(rows, a.Rows-max(i-first, 0)))
	}
}

// checkAttention validates the shape of a against the configuration.
func (s *Sequence) checkAttention(layer int, a *Attention) error {
	sh := s.cfg.Shape
	switch {
	case layer < 0 || layer >= sh.Layers:
		return fmt.Errorf("layer outside [0, %d)", sh.Layers)
	case a.Heads != sh.QueryHeads:
		return fmt.Errorf("attention has %d heads, the model %d query heads", a.Heads, sh.QueryHeads)
	}
	return a.checkExtent()
}

// checkExtent validates a's rows, columns, strides and cell map against its data.
func (a *Attention) checkExtent() error {
	switch {
	case a.Heads <= 0:
		return fmt.Errorf("attention has %d heads", a.Heads)
	case a.Rows <= 0 || a.Rows > maxCells:
		return fmt.Errorf("attention rows %d outside [1, %d]", a.Rows, maxCells)
	case a.Cols <= 0 || a.Cols > maxCells:
		return fmt.Errorf("attention columns %d outside [1, %d]", a.Cols, maxCells)
	case a.RowStride < 0 || a.HeadStride < 0 || a.RowStride > maxCells*maxCells || a.HeadStride > maxCells*maxCells:
		return fmt.Errorf("attention strides (%d, %d) out of range", a.RowStride, a.HeadStride)
	case a.Cells != nil && len(a.Cells) != a.Cols:
		return fmt.Errorf("attention has %d columns but %d cell ids", a.Cols, len(a.Cells))
	}
	last := int64(a.Rows-1)*int64(a.RowStride) + int64(a.Heads-1)*int64(a.HeadStride) + int64(a.Cols)
	if last > int64(len(a.Data)) {
		return fmt.Errorf("attention data holds %d values, the shape and strides need %d", len(a.Data), last)
	}
	return nil
}

// ErrInvalidAttention is wrapped by the errors of ObserveAttention for a NaN, +Inf or out-of-range
// attention value.
var ErrInvalidAttention = errors.New("invalid attention value (NaN, +Inf, or a probability outside [0, 1])")

// Plan appends to dst the evictions that bring the sequence back to its budget, lowest scores
// first among the candidates (every token but the recent window, and the sinks for StreamingLLM),
// and returns it. Past the prompt, with the schedule's Slack, it plans nothing until the sequence
// holds Slack cells more than its budget. It changes nothing but resolves the budget on its first
// call; free the cells, then Forget them.
func (s *Sequence) Plan(dst []Eviction) ([]Eviction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.budget == 0 {
		if s.prompt == 0 { // what was added so far (a restored count may be larger than a prompt can be)
			s.prompt = min(s.added, maxCells)
		}
		budget, window, err := s.cfg.resolve(s.prompt)
		if err != nil {
			return dst, fmt.Errorf("plan for a prompt of %d tokens: %w", s.prompt, err)
		}
		s.budget, s.window = budget, window
	}
	n := len(s.cells)
	slack := 0
	if s.step() > 0 {
		slack = s.cfg.Observe.Slack
	}
	switch s.cfg.Policy {
	case PolicyFull:
		return dst, nil
	case PolicyWindow, PolicyStreaming:
		if n-s.budget < slack {
			return dst, nil
		}
		lo := 0
		if s.cfg.Policy == PolicyStreaming {
			lo = s.cfg.Sinks
		}
		for i := lo; i < lo+n-s.budget; i++ {
			dst = append(dst, Eviction{Cell: s.cells[i], Layer: -1, Head: -1})
		}
		return dst, nil
	}
	lo := 0
	if s.cfg.keepsSinks() {
		lo = min(s.cfg.Sinks, n-s.window)
	}
	arrays, live := s.scores, s.live
	if s.cfg.Policy == PolicyPeak && s.cfg.Granularity == Shared {
		arrays, live = [][]float32{s.peakOverLayers()}, []int{n}
	}
	for h, sc := range arrays {
		m := live[h] - s.budget
		if m <= 0 || m < slack {
			continue
		}
		ev := Eviction{Layer: -1, Head: -1}
		if s.cfg.Granularity == PerHead {
			ev.Layer, ev.Head = int32(h/s.cfg.Shape.KVHeads), int32(h%s.cfg.Shape.KVHeads)
		}
		candidates := s.ranks(sc)[lo : n-s.window]
		if m == 1 {
			ev.Cell = s.cells[lo+simd.Argmin(candidates)]
			dst = append(dst, ev)
			continue
		}
		s.work.index = simd.SmallestK(s.work.index, candidates, m)
		for _, i := range s.work.index {
			ev.Cell = s.cells[lo+int(i)]
			dst = append(dst, ev)
		}
	}
	return dst, nil
}

// peakOverLayers returns, per token, the largest of its peaks over the layers (Shared peak
// policy).
func (s *Sequence) peakOverLayers() []float32 {
	peak := append(s.work.peak[:0], s.scores[0]...)
	for _, sc := range s.scores[1:] {
		maxInto(peak, sc, 1)
	}
	s.work.peak = peak
	return peak
}

// ranks returns the values Plan ranks the tokens of one scores array by: the scores themselves,
// or with the Ranking's options, divided by the rows that saw each token (a token no row saw yet
// ranks highest) and pooled by the maximum over the span (an evicted head entry, +Inf, stays
// +Inf and is never pooled into a neighbour).
func (s *Sequence) ranks(sc []float32) []float32 {
	r := s.cfg.Ranking
	if !r.MeanAttention && r.Span == 0 {
		return sc
	}
	mean := append(s.work.mean[:0], sc...)
	s.work.mean = mean
	if r.MeanAttention {
		for i, v := range mean {
			switch {
			case math.IsInf(float64(v), 1):
			case s.seen[i] == 0:
				mean[i] = math.MaxFloat32
			default:
				mean[i] = v / s.seen[i]
			}
		}
	}
	if r.Span == 0 {
		return mean
	}
	pooled := append(s.work.pooled[:0], mean...)
	s.work.pooled = pooled
	for i, v := range mean {
		if math.IsInf(float64(v), 1) {
			continue
		}
		for j := max(i-r.Span, 0); j <= min(i+r.Span, len(mean)-1); j++ {
			if w := mean[j]; w > pooled[i] && !math.IsInf(float64(w), 1) {
				pooled[i] = w
			}
		}
	}
	return pooled
}

// Forget removes freed cells from the sequence: a whole cell (Layer -1), or in PerHead granularity
// one head's entry; a cell no head holds any more is removed. Every eviction is checked first: on
// an error nothing changes.
func (s *Sequence) Forget(evs []Eviction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[Eviction]bool, len(evs))
	for _, e := range evs {
		i := s.slot(e.Cell)
		switch {
		case i < 0:
			return fmt.Errorf("forget: cell %d is not in sequence %d", e.Cell, s.id)
		case e.Layer == -1 && e.Head == -1:
		case s.cfg.Granularity != PerHead:
			return fmt.Errorf("forget: cell %d: layer %d head %d given, but the granularity is shared", e.Cell, e.Layer, e.Head)
		case e.Layer < 0 || int(e.Layer) >= s.cfg.Shape.Layers || e.Head < 0 || int(e.Head) >= s.cfg.Shape.KVHeads:
			return fmt.Errorf("forget: cell %d: layer %d head %d out of range", e.Cell, e.Layer, e.Head)
		case math.IsInf(float64(s.scores[s.head(e)][i]), 1):
			return fmt.Errorf("forget: cell %d is already evicted from layer %d head %d", e.Cell, e.Layer, e.Head)
		}
		if seen[e] {
			return fmt.Errorf("forget: cell %d given twice", e.Cell)
		}
		seen[e] = true
	}
	removed := make([]bool, len(s.cells))
	for _, e := range evs {
		i := s.slot(e.Cell)
		if e.Layer == -1 {
			removed[i] = true
			continue
		}
		h := s.head(e)
		s.scores[h][i] = float32(math.Inf(1))
		s.live[h]--
		gone := true
		for _, sc := range s.scores {
			gone = gone && math.IsInf(float64(sc[i]), 1)
		}
		removed[i] = removed[i] || gone
	}
	s.compact(removed)
	return nil
}

// head returns the index of e's scores array.
func (s *Sequence) head(e Eviction) int {
	return int(e.Layer)*s.cfg.Shape.KVHeads + int(e.Head)
}

// compact drops the slots marked removed, keeping the others in position order.
func (s *Sequence) compact(removed []bool) {
	k := 0
	for i, c := range s.cells {
		if removed[i] {
			s.slotOf[c] = -1
			for h, sc := range s.scores {
				if !math.IsInf(float64(sc[i]), 1) {
					s.live[h]--
				}
			}
			continue
		}
		s.cells[k], s.pos[k] = c, s.pos[i]
		for _, sc := range s.scores {
			sc[k] = sc[i]
		}
		if s.seen != nil {
			s.seen[k] = s.seen[i]
		}
		s.slotOf[c] = int32(k)
		k++
	}
	s.cells, s.pos = s.cells[:k], s.pos[:k]
	for h := range s.scores {
		s.scores[h] = s.scores[h][:k]
	}
	if s.seen != nil {
		s.seen = s.seen[:k]
	}
}

// Position returns the position of cell c and whether the sequence holds it.
func (s *Sequence) Position(c int32) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := s.slot(c); i >= 0 {
		return s.pos[i], true
	}
	return 0, false
}

// MoveCells renames cells: from[i] becomes to[i], keeping its position and scores (for an engine
// that moved the sequence, e.g. by restoring a saved state into other cells). Every cell of from
// must be held; afterwards no two tokens may share a cell. On an error nothing changes.
func (s *Sequence) MoveCells(from, to []int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(from) != len(to) {
		return fmt.Errorf("move cells: %d cells to move but %d targets", len(from), len(to))
	}
	slots := make([]int, len(from))
	moved := make(map[int32]bool, len(from))
	for i, c := range from {
		if slots[i] = s.slot(c); slots[i] < 0 {
			return fmt.Errorf("move cells: cell %d is not in sequence %d", c, s.id)
		}
		if moved[c] {
			return fmt.Errorf("move cells: cell %d given twice", c)
		}
		moved[c] = true
	}
	target := make(map[int32]bool, len(to))
	for _, c := range to {
		switch {
		case c < 0 || c >= maxCells:
			return fmt.Errorf("move cells: cell %d outside [0, %d)", c, maxCells)
		case target[c] || s.slot(c) >= 0 && !moved[c]:
			return fmt.Errorf("move cells: cell %d would hold two tokens", c)
		}
		target[c] = true
	}
	for _, c := range from {
		s.slotOf[c] = -1
	}
	for i, c := range to {
		s.growSlots(c)
		s.slotOf[c] = int32(slots[i])
		s.cells[slots[i]] = c
	}
	return nil
}
