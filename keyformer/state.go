package keyformer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// The saved state of a sequence, little-endian: a header (stateMagic, the version, the config
// fields the state depends on, counters, the noise stream), then n cells, n positions, per
// scores array n scores; in version 2 (written with Ranking.MeanAttention, and only then) n seen
// counts; in version 3 (keydiff, and only then) the keys' dimension and the sums of unit keys
// per layer and KV head (none before the first keys).
const (
	stateMagic     = "KFSQ"
	stateVersion   = 1
	stateVersionV2 = 2
	stateVersionV3 = 3
	headerSize     = 4 + 2 + 1 + 1 + 3*4 + 3*4 + 3*8 + 4
)

// stateArrays returns the version a sequence under cfg writes and the per-token arrays of 4
// bytes its body holds after the header, for a sequence of the given scores arrays.
func stateArrays(cfg *Config, scores int) (version uint16, arrays int) {
	switch {
	case cfg.Ranking.MeanAttention:
		return stateVersionV2, 2 + scores + 1
	case cfg.Policy.ReadsKeys():
		return stateVersionV3, 2 + scores
	}
	return stateVersion, 2 + scores
}

// ErrInvalidState is wrapped by the errors of UnmarshalBinary for data it cannot restore.
var ErrInvalidState = errors.New("invalid sequence state")

// MarshalBinary returns the sequence's state (cells, positions, scores, counters and noise
// stream) as bytes that UnmarshalBinary restores.
func (s *Sequence) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.cells)
	version, arrays := stateArrays(s.cfg, len(s.scores))
	b := make([]byte, 0, headerSize+4*n*arrays)
	b = append(b, stateMagic...)
	b = binary.LittleEndian.AppendUint16(b, version)
	b = append(b, byte(s.cfg.Policy), byte(s.cfg.Granularity))
	for _, v := range []int{s.cfg.Shape.Layers, s.cfg.Shape.QueryHeads, s.cfg.Shape.KVHeads, s.prompt, s.budget, s.window} {
		b = binary.LittleEndian.AppendUint32(b, uint32(v))
	}
	for _, v := range []uint64{uint64(s.added), uint64(s.tovaAt), s.rng.state} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, arr := range [][]int32{s.cells, s.pos} {
		for _, v := range arr {
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	}
	for _, sc := range slices.Concat(s.scores, [][]float32{s.seen}) { // seen is nil but with MeanAttention
		for _, v := range sc {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	if version == stateVersionV3 {
		b = binary.LittleEndian.AppendUint32(b, uint32(s.dim))
		for _, v := range s.anchor {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b, nil
}

// UnmarshalBinary replaces the sequence's state with one MarshalBinary produced under the same
// policy, granularity and shape. Malformed data is an error and changes nothing.
func (s *Sequence) UnmarshalBinary(data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.decode(data)
	if err != nil {
		return fmt.Errorf("restore sequence %d: %w: %w", s.id, ErrInvalidState, err)
	}
	t.work = s.work
	s.sequenceState = t.sequenceState
	return nil
}

// decode parses data into a new sequence with s's config and id.
func (s *Sequence) decode(data []byte) (*Sequence, error) {
	if len(data) < headerSize {
		return nil, fmt.Errorf("state of %d bytes is shorter than its %d-byte header", len(data), headerSize)
	}
	if string(data[:4]) != stateMagic {
		return nil, errors.New("not a keyformer sequence state (bad magic)")
	}
	cfg := s.cfg
	version, arrays := stateArrays(cfg, len(s.scores))
	if v := binary.LittleEndian.Uint16(data[4:]); v != version {
		return nil, fmt.Errorf("state version %d, a tracker of policy %s (mean attention %t) reads version %d",
			v, cfg.Policy, cfg.Ranking.MeanAttention, version)
	}
	if Policy(data[6]) != cfg.Policy || Granularity(data[7]) != cfg.Granularity {
		return nil, fmt.Errorf("state is for policy %s granularity %s, the tracker has %s %s",
			Policy(data[6]), Granularity(data[7]), cfg.Policy, cfg.Granularity)
	}
	u32 := func(off int) int { return int(binary.LittleEndian.Uint32(data[off:])) }
	u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(data[off:]) }
	if sh := (Shape{u32(8), u32(12), u32(16)}); sh != cfg.Shape {
		return nil, fmt.Errorf("state is for shape %+v, the tracker has %+v", sh, cfg.Shape)
	}
	t := newSequence(cfg, s.id)
	t.prompt, t.budget, t.window = u32(20), u32(24), u32(28)
	added, tovaAt := u64(32), u64(40)
	t.rng.state = u64(48)
	n := u32(56)
	switch {
	case t.prompt > maxCells || t.budget > maxCells || t.window > maxCells:
		return nil, fmt.Errorf("prompt %d, budget %d or window %d exceeds %d", t.prompt, t.budget, t.window, maxCells)
	case t.budget > 0 && t.window >= t.budget || t.budget == 0 && t.window != 0:
		return nil, fmt.Errorf("window %d does not fit budget %d", t.window, t.budget)
	case n > maxCells || added > 1<<62 || added < uint64(n) || tovaAt > added:
		return nil, fmt.Errorf("counters out of range (%d tokens, %d added, tova step %d)", n, added, tovaAt)
	}
	t.added, t.tovaAt = int(added), int(tovaAt)
	want := headerSize + 4*n*arrays
	var anchor []byte
	if version == stateVersionV3 {
		if len(data) < want+4 {
			return nil, fmt.Errorf("state of %d bytes, %d tokens and the keys' dimension need %d", len(data), n, want+4)
		}
		t.dim = u32(want)
		if t.dim > maxHeadDim {
			return nil, fmt.Errorf("keys' dimension %d exceeds %d", t.dim, maxHeadDim)
		}
		anchor = data[want+4:]
		want += 4 + 4*cfg.Shape.Layers*cfg.Shape.KVHeads*t.dim
	}
	if len(data) != want {
		return nil, fmt.Errorf("state of %d bytes, %d tokens need %d", len(data), n, want)
	}
	if t.dim > 0 {
		t.anchor = make([]float32, len(anchor)/4)
		for i := range t.anchor {
			v := math.Float32frombits(binary.LittleEndian.Uint32(anchor[4*i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("key sum %g is invalid", v)
			}
			t.anchor[i] = v
		}
	}
	body := data[headerSize:]
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(body[4*i:]) }
	cells, pos := make([]int32, n), make([]int32, n)
	for i := range n {
		cells[i], pos[i] = int32(word(i)), int32(word(n+i))
	}
	if err := t.addCells(cells, pos); err != nil {
		return nil, err
	}
	t.added, t.tovaAt = int(added), int(tovaAt)
	for h, sc := range t.scores {
		for i := range sc {
			v := math.Float32frombits(word((2+h)*n + i))
			inf := math.IsInf(float64(v), 1)
			if v != v || math.IsInf(float64(v), -1) || inf && cfg.Granularity != PerHead {
				return nil, fmt.Errorf("score %g of cell %d is invalid", v, cells[i])
			}
			if inf {
				t.live[h]--
			}
			sc[i] = v
		}
	}
	for i := range t.seen {
		v := math.Float32frombits(word((arrays-1)*n + i))
		if !(v >= 0 && v <= math.MaxFloat32) {
			return nil, fmt.Errorf("seen count %g of cell %d is invalid", v, cells[i])
		}
		t.seen[i] = v
	}
	for i := range n {
		held := false
		for _, sc := range t.scores {
			held = held || !math.IsInf(float64(sc[i]), 1)
		}
		if !held {
			return nil, fmt.Errorf("cell %d is evicted from every head", cells[i])
		}
	}
	return t, nil
}
