//go:build linux || darwin

package llama

import (
	"math"
	"testing"
)

func TestMemoryHolesAndState(t *testing.T) {
	m := needModel(t)
	opts := ContextOptions{NCtx: 512, NBatch: 512, NUbatch: 512}
	c := newTestContext(t, m, opts)
	prompt := chatPrompt(t, m, "What is the capital of France?")
	n := int32(len(prompt))
	if err := c.Decode(0, prompt, 0); err != nil {
		t.Fatal(err)
	}
	if !c.CanShift() {
		t.Error("llama_memory_can_shift = false for SmolLM2's unified KV cache")
	}

	// Evict two single positions: the llama.cpp KV cache supports it for this model.
	for _, p := range []int32{5, 8} {
		if !c.SeqRm(0, p, p+1) {
			t.Fatalf("llama_memory_seq_rm(mem, 0, %d, %d) = false", p, p+1)
		}
	}
	if lo, hi := c.SeqPosMin(0), c.SeqPosMax(0); lo != 0 || hi != n-1 {
		t.Fatalf("pos range after holes = [%d, %d], want [0, %d]", lo, hi, n-1)
	}

	// The next token goes at pos_max+1, holes or not.
	tok := Argmax(c.Logits())
	if err := c.Decode(0, []int32{tok}, n); err != nil {
		t.Fatalf("decode at pos_max+1 with holes: %v", err)
	}
	next := Argmax(c.Logits())

	// Save the sequence with its holes, then decode one more token: logits A.
	state, err := c.SeqState(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Decode(0, []int32{next}, n+1); err != nil {
		t.Fatal(err)
	}
	a := append([]float32(nil), c.Logits()...)

	// Restore into a fresh context and decode the same token at the same position: logits B.
	c2 := newTestContext(t, m, opts)
	if err := c2.SetSeqState(0, state); err != nil {
		t.Fatal(err)
	}
	if lo, hi := c2.SeqPosMin(0), c2.SeqPosMax(0); lo != 0 || hi != n {
		t.Fatalf("restored pos range [%d, %d], want [0, %d]", lo, hi, n)
	}
	if err := c2.Decode(0, []int32{next}, n+1); err != nil {
		t.Fatal(err)
	}
	b := c2.Logits()
	var maxDiff float64
	for i := range a {
		maxDiff = max(maxDiff, math.Abs(float64(a[i]-b[i])))
	}
	t.Logf("state with 2 holes: %d bytes; restored next-token logits max |diff| %.3g (argmax %d vs %d)",
		len(state), maxDiff, Argmax(a), Argmax(b))
	if Argmax(a) != Argmax(b) || maxDiff > 1e-3 {
		t.Fatalf("restored sequence differs: max |diff| %g, argmax %d vs %d", maxDiff, Argmax(a), Argmax(b))
	}

	// Removing a single position still works on the restored (packed) sequence.
	if !c2.SeqRm(0, 6, 7) {
		t.Fatal("seq_rm on the restored sequence failed")
	}

	// Skipping a position is refused (llama_decode -1, "inconsistent sequence positions"); the
	// expected error log is silenced.
	SetLogger(nil)
	err = c2.Decode(0, []int32{next}, c2.SeqPosMax(0)+2)
	SetLogger(StderrLogger(LogError))
	if err == nil {
		t.Error("decode at pos_max+2 succeeded; the pinned llama.cpp refuses it")
	}

	// Shifting positions (llama_memory_seq_add) moves pos_min/pos_max, and decoding continues.
	hi := c2.SeqPosMax(0)
	c2.SeqAdd(0, 0, -1, 100)
	if lo2, hi2 := c2.SeqPosMin(0), c2.SeqPosMax(0); lo2 != 100 || hi2 != hi+100 {
		t.Fatalf("after seq_add +100: [%d, %d]", lo2, hi2)
	}
	if err := c2.Decode(0, []int32{next}, hi+101); err != nil {
		t.Fatalf("decode after a shift: %v", err)
	}

	c2.ClearMemory(true)
	if c2.SeqPosMax(0) != -1 {
		t.Fatal("memory not cleared")
	}
}
