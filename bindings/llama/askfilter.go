//go:build linux || darwin

package llama

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ask filter: llama.cpp asks the eval callback about every graph node (about 1100 per decode
// on a 30-layer model), and each ask that enters Go through purego's callback costs about a
// microsecond. A Go function that wants a few nodes registers their name prefixes
// (RegisterEval's nodes); llama.cpp then calls askFilter, a leaf function in assembly with the C
// calling convention (askfilter_amd64.s, askfilter_arm64.s), which answers false to an ask about
// any other node and passes everything else on to the shared purego callback by a tail jump,
// with the callback's own user_data. C hosts get the same from keyformer_llama_eval_callback.

// maxAskNodes is the most name prefixes one filter matches; askPrefixLen the longest prefix.
const (
	maxAskNodes  = 4
	askPrefixLen = 16
)

// askPrefix is one name prefix as the filter compares it: the name's first 16 bytes, read as two
// little-endian words, masked, equal to lo and hi.
type askPrefix struct {
	lo, loMask, hi, hiMask uint64
}

// askFilterTable is the filter's user_data, in memory of its own (mmap, outside the Go heap:
// llama.cpp keeps the pointer). The assembly reads it at these offsets: callback 0, userData 8,
// offName 16, n 24, prefixes from 32 (lo, loMask, hi, hiMask at 0, 8, 16, 24 of each).
type askFilterTable struct {
	callback uintptr // where asks about wanted nodes and computed tensors go (EvalCallback)
	userData uintptr // its user_data (the handle's slot index + 1)
	offName  uintptr // offset of char name[] in struct ggml_tensor
	n        uintptr // prefixes in use
	prefixes [maxAskNodes]askPrefix
}

// newAskFilter maps a table forwarding asks about nodes to callback with userData, or returns
// nil (and no error) where the architecture has no filter.
func newAskFilter(callback, userData uintptr, nodes []string) (*askFilterTable, error) {
	if len(nodes) > maxAskNodes {
		return nil, fmt.Errorf("llama: eval callback: %d node prefixes, at most %d", len(nodes), maxAskNodes)
	}
	var ps []askPrefix
	for _, name := range nodes {
		p, err := newAskPrefix(name)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	if askFilterABI0 == 0 {
		return nil, nil
	}
	mem, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("llama: eval callback: mapping the ask filter: %w", err)
	}
	f := (*askFilterTable)(unsafe.Pointer(&mem[0]))
	f.callback, f.userData, f.offName, f.n = callback, userData, tensorOffName, uintptr(len(ps))
	copy(f.prefixes[:], ps)
	return f, nil
}

// newAskPrefix encodes name (1 to 16 bytes) as a prefix.
func newAskPrefix(name string) (askPrefix, error) {
	if name == "" || len(name) > askPrefixLen {
		return askPrefix{}, fmt.Errorf("llama: eval callback: node prefix %q: want 1 to %d bytes", name, askPrefixLen)
	}
	var v, m [askPrefixLen]byte
	copy(v[:], name)
	for i := range name {
		m[i] = 0xff
	}
	le := binary.LittleEndian
	return askPrefix{lo: le.Uint64(v[:8]), loMask: le.Uint64(m[:8]), hi: le.Uint64(v[8:]), hiMask: le.Uint64(m[8:])}, nil
}

// free unmaps the table (after the context using it is freed).
func (f *askFilterTable) free() {
	if f != nil {
		_ = unix.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(f)), os.Getpagesize()))
	}
}

// askFilterGo is the Go twin of askFilter: whether a call with tensor t and ask goes on to the
// callback (every computed tensor, a NULL tensor, and asks about nodes whose name starts with
// one of the prefixes); askFilter answers false to the others. The loop of both:
//
//	lo, hi := name[0:8], name[8:16]
//	for each prefix p: if lo&p.loMask == p.lo && hi&p.hiMask == p.hi { forward }
func askFilterGo(f *askFilterTable, t unsafe.Pointer, ask bool) bool {
	if t == nil || !ask {
		return true
	}
	name := (*[askPrefixLen]byte)(unsafe.Add(t, f.offName))
	lo, hi := binary.LittleEndian.Uint64(name[:8]), binary.LittleEndian.Uint64(name[8:])
	for _, p := range f.prefixes[:f.n] {
		if lo&p.loMask == p.lo && hi&p.hiMask == p.hi {
			return true
		}
	}
	return false
}
