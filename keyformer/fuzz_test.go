package keyformer

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// fuzzReader hands out fuzz bytes as small numbers, zero once exhausted.
type fuzzReader []byte

func (r *fuzzReader) byte() int {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return int(b)
}

func (r *fuzzReader) float() float32 {
	if len(*r) < 4 {
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(*r))
	*r = (*r)[4:]
	return v
}

// fuzzConfig builds a config (often invalid) from the reader.
func fuzzConfig(r *fuzzReader) Config {
	cfg := DefaultConfig(Shape{Layers: r.byte()%4 + 1, QueryHeads: r.byte()%6 + 1, KVHeads: r.byte()%3 + 1})
	cfg.Policy = Policy(r.byte()%7 - 0)
	cfg.Granularity = Granularity(r.byte() % 3)
	if r.byte()%2 == 0 {
		cfg.Budget = Tokens(r.byte() - 8)
	} else {
		cfg.Budget = Fraction(float64(r.byte()-20) / 200)
	}
	if r.byte()%2 == 0 {
		cfg.Window = Tokens(r.byte() % 40)
	} else {
		cfg.Window = Fraction(float64(r.byte()) / 200)
	}
	cfg.Sinks = r.byte()%8 - 1
	cfg.TauInit, cfg.TauEnd = float64(r.float()), float64(r.byte())/50
	cfg.NewTokens = r.byte() - 2
	cfg.Observe = Schedule{LayerStride: r.byte() % 3, DecodeStride: r.byte() % 4, Slack: r.byte() % 6}
	flags := r.byte()
	cfg.Ranking = Ranking{MeanAttention: flags&1 != 0, KeepSinks: flags&2 != 0, Span: flags>>2%4 - 1}
	return cfg
}

// FuzzSequence drives arbitrary configs, attention and position edits through a sequence: no
// panic, invalid input is an error, after every plan + forget a sequence holds at most its budget
// and its window, and after every edit its state is consistent.
func FuzzSequence(f *testing.F) {
	f.Add([]byte{1, 3, 1, 1, 0, 0, 12, 1, 3, 0, 0, 0, 128, 63, 100, 8, 5, 7, 1, 9, 200, 4, 3, 2, 1})
	f.Add([]byte{1, 1, 0, 2, 1, 1, 120, 1, 50, 4, 0, 0, 128, 63, 100, 8, 30, 255, 3, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := fuzzReader(data)
		cfg := fuzzConfig(&r)
		tr, err := NewTracker(cfg)
		if err != nil {
			return
		}
		s, _ := tr.Sequence(int32(r.byte()))
		nextPos, nextCell := int32(0), int32(0)
		for op := 0; len(r) > 0 && op < 64; op++ {
			switch r.byte() % 5 {
			case 0:
				n := r.byte()%9 + 1
				cells, pos := make([]int32, n), make([]int32, n)
				for i := range n {
					cells[i], pos[i] = nextCell, nextPos
					nextCell++
					nextPos += int32(r.byte()%2 + 1)
				}
				if err := s.AddCells(cells, pos); err != nil {
					t.Fatalf("valid add: %v", err)
				}
			case 1:
				rows, cols := r.byte()%3+1, int(nextCell)+r.byte()%3
				a := Attention{Rows: rows, Heads: cfg.Shape.QueryHeads, Cols: cols, RowStride: cols, HeadStride: cols * rows, Logits: r.byte()%4 == 0}
				a.Data = make([]float32, rows*a.Heads*cols)
				for i := range a.Data {
					a.Data[i] = r.float()
				}
				_ = s.ObserveAttention(r.byte()%(cfg.Shape.Layers+1), a)
				dim := r.byte()%4 + 1
				k := Keys{Rows: rows, Heads: cfg.Shape.KVHeads, Dim: dim, RowStride: cfg.Shape.KVHeads * dim, HeadStride: dim}
				k.Data = make([]float32, rows*k.RowStride)
				for i := range k.Data {
					k.Data[i] = r.float() - 0.5
				}
				_ = s.ObserveKeys(r.byte()%(cfg.Shape.Layers+1), k)
			case 2:
				evs, err := s.Plan(nil)
				if err != nil {
					continue
				}
				if err := s.Forget(evs); err != nil {
					t.Fatalf("forget of a plan: %v", err)
				}
				checkLimits(t, s)
			case 3:
				p0 := int32(r.byte())
				if err := tr.ForgetPositions(s.ID(), p0, p0+int32(r.byte()%16)); err != nil {
					t.Fatalf("forget positions: %v", err)
				}
				checkConsistent(t, s)
			case 4:
				p0 := int32(r.byte())
				if tr.ShiftPositions(s.ID(), p0, p0+int32(r.byte()%32), int32(r.byte()-128)) == nil {
					if toks := s.Tokens(); len(toks) > 0 {
						nextPos = max(nextPos, toks[len(toks)-1].Pos+1)
					}
				}
				checkConsistent(t, s)
			}
		}
	})
}

// checkLimits asserts that every head holds at most the budget (unless the policy is full; past
// the prompt, less than the budget + the slack) and that the recent window is whole.
func checkLimits(t *testing.T, s *Sequence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.cells)
	limit := s.budget
	if s.step() > 0 {
		limit += max(s.cfg.Observe.Slack-1, 0)
	}
	for h, sc := range s.scores {
		if s.cfg.Policy != PolicyFull && s.live[h] > limit {
			t.Fatalf("head %d holds %d > budget %d + slack %d", h, s.live[h], s.budget, s.cfg.Observe.Slack)
		}
		for i := max(n-s.window, 0); i < n; i++ {
			if math.IsInf(float64(sc[i]), 1) {
				t.Fatalf("window token %d evicted from head %d", s.cells[i], h)
			}
		}
	}
	if !s.cfg.Policy.scores() && s.cfg.Policy != PolicyFull && n > limit {
		t.Fatalf("%d tokens > budget %d + slack %d", n, s.budget, s.cfg.Observe.Slack)
	}
}

// FuzzUnmarshal feeds arbitrary bytes to a sequence restore: no panic, and whatever it accepts it
// writes back identically. The first byte picks the tracker: per-head Keyformer (state version
// 1), mean attention (version 2) or KeyDiff (version 3); the rest is the state.
func FuzzUnmarshal(f *testing.F) {
	perHead, mean, keyDiff := testConfig(10, 3), testConfig(10, 3), testConfig(10, 3)
	perHead.Granularity = PerHead
	mean.Ranking.MeanAttention = true
	keyDiff.Policy = PolicyKeyDiff
	configs := []Config{perHead, mean, keyDiff}
	for i, cfg := range configs {
		s := newTestSequence(f, cfg, 0)
		if cfg.Policy.ReadsKeys() {
			for c := int32(0); c < 12; c += 4 {
				cells := []int32{c, c + 1, c + 2, c + 3}
				require.NoError(f, s.AddCells(cells, cells))
				k := Keys{Data: make([]float32, 4*2*3), Rows: 4, Heads: 2, Dim: 3, RowStride: 6, HeadStride: 3}
				for j := range k.Data {
					k.Data[j] = float32(j%5) - float32(c%3)
				}
				require.NoError(f, s.ObserveKeys(1, k))
			}
		} else {
			newTestEngine(f, s, 1).run(20, 8, 4)
		}
		good, _ := s.MarshalBinary()
		f.Add(append([]byte{byte(i)}, good...))
		f.Add(append([]byte{byte(i)}, good[:headerSize]...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := configs[int(data[0])%len(configs)]
		data = data[1:]
		s := newTestSequence(t, cfg, 0)
		if err := s.UnmarshalBinary(data); err != nil {
			return
		}
		again, _ := s.MarshalBinary()
		if string(again) != string(data) {
			t.Fatalf("restore accepted %d bytes but writes back %d different ones", len(data), len(again))
		}
		if _, err := s.Plan(nil); err != nil && s.budget > 0 {
			t.Fatalf("plan after restore: %v", err)
		}
		planned, _ := s.MarshalBinary() // the plan may have resolved the budget: still a valid state
		if err := newTestSequence(t, cfg, 0).UnmarshalBinary(planned); err != nil {
			t.Fatalf("a restored sequence's state after its plan does not restore: %v", err)
		}
	})
}
