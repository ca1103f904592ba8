package keyformer

import (
	"fmt"
	"slices"
	"sync"
)

// Tracker holds the Sequences of one engine context under one Config. It is safe for concurrent
// use: different sequences can be driven from different goroutines at once.
type Tracker struct {
	cfg  Config
	mu   sync.Mutex
	seqs map[int32]*Sequence
}

// maxSequences bounds sequence ids (llama.cpp's are small non-negative integers).
const maxSequences = 1 << 16

// NewTracker validates cfg and returns an empty Tracker.
func NewTracker(cfg Config) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg.Observe.Layers = slices.Clone(cfg.Observe.Layers)
	return &Tracker{cfg: cfg, seqs: map[int32]*Sequence{}}, nil
}

// Config returns a copy of the tracker's configuration.
func (t *Tracker) Config() Config {
	c := t.cfg
	c.Observe.Layers = slices.Clone(c.Observe.Layers)
	return c
}

// Sequence returns sequence id, creating it empty on first use. Ids are in [0, 65536).
func (t *Tracker) Sequence(id int32) (*Sequence, error) {
	if id < 0 || id >= maxSequences {
		return nil, fmt.Errorf("sequence id %d outside [0, %d)", id, maxSequences)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.seqs[id]
	if s == nil {
		s = newSequence(&t.cfg, id)
		t.seqs[id] = s
	}
	return s, nil
}

// Remove drops sequence id and its state; it reports whether the sequence existed.
func (t *Tracker) Remove(id int32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.seqs[id]
	delete(t.seqs, id)
	return ok
}

// Len returns the number of sequences.
func (t *Tracker) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seqs)
}

// IDs returns the ids of the tracker's sequences in increasing order.
func (t *Tracker) IDs() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]int32, 0, len(t.seqs))
	for id := range t.seqs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
