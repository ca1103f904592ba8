package keyformer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The saved state of a sequence, little-endian: a header (stateMagic, stateVersion, the config
// fields the state depends on, counters, the noise stream), then n cells, n positions and, per
// scores array, n scores.
const (
	stateMagic   = "KFSQ"
	stateVersion = 1
	headerSize   = 4 + 2 + 1 + 1 + 3*4 + 3*4 + 3*8 + 4
)

// ErrInvalidState is wrapped by the errors of UnmarshalBinary for data it cannot restore.
var ErrInvalidState = errors.New("invalid sequence state")

// MarshalBinary returns the sequence's state (cells, positions, scores, counters and noise
// stream) as bytes that UnmarshalBinary restores.
func (s *Sequence) MarshalBinary() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.cells)
	b := make([]byte, 0, headerSize+4*n*(2+len(s.scores)))
	b = append(b, stateMagic...)
	b = binary.LittleEndian.AppendUint16(b, stateVersion)
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
	for _, sc := range s.scores {
		for _, v := range sc {
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
	if v := binary.LittleEndian.Uint16(data[4:]); v != stateVersion {
		return nil, fmt.Errorf("state version %d, this library reads %d", v, stateVersion)
	}
	cfg := s.cfg
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
	if want := headerSize + 4*n*(2+len(t.scores)); len(data) != want {
		return nil, fmt.Errorf("state of %d bytes, %d tokens need %d", len(data), n, want)
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
