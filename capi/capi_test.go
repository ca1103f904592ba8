//go:build cgo

package main

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/keyformer"
)

func newTestContext(t *testing.T) uintptr {
	t.Helper()
	cfg := keyformer.DefaultConfig(keyformer.Shape{Layers: 1, QueryHeads: 1, KVHeads: 1})
	tr, err := keyformer.NewTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := newHandle(&context{tracker: tr})
	t.Cleanup(func() { release(h) })
	return h
}

func TestPanicsBecomeInternalErrors(t *testing.T) {
	h := newTestContext(t)
	for name, body := range map[string]func(*context) error{
		"panic value": func(*context) error { panic("boom") },
		"nil pointer": func(*context) error {
			var p *keyformer.Tracker
			_ = p.Config()
			return nil
		},
		"index out of range": func(*context) error {
			var s []int
			i := 3
			_ = s[i]
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			st := call("keyformer_test", h, body)
			if st != statusInternal {
				t.Fatalf("status %d, want KEYFORMER_ERR_INTERNAL", st)
			}
			msg := errorText(h)
			if !strings.HasPrefix(msg, "keyformer_test: internal error: panic: ") || !strings.Contains(msg, ".go:") {
				t.Fatalf("message %q does not name the panic and where it happened", msg)
			}
		})
	}
	// the context still works
	if st := call("keyformer_test", h, func(*context) error { return nil }); st != statusOK {
		t.Fatalf("status %d after recovered panics", st)
	}
}

func TestHandlesAreNeverReused(t *testing.T) {
	a := newTestContext(t)
	release(a)
	b := newTestContext(t)
	if b == a || lookup(a) != nil {
		t.Fatalf("freed handle %#x came back (new handle %#x)", a, b)
	}
	if st := call("keyformer_test", a, func(*context) error { return nil }); st != statusInvalidHandle {
		t.Fatalf("freed handle: status %d", st)
	}
	if msg := errorText(a); !strings.Contains(msg, "unknown or freed context") || msg != errorText(0) {
		t.Fatalf("freed handle: message %q, global %q", msg, errorText(0))
	}
}

func TestErrorsMapToStatuses(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("layer 0: %w", keyformer.ErrInvalidAttention), int(statusInvalidAttention)},
		{fmt.Errorf("restore: %w: short", keyformer.ErrInvalidState), int(statusInvalidState)},
		{errors.New("anything else"), int(statusInvalidArgument)},
		{fail(statusBufferTooSmall, "x"), int(statusBufferTooSmall)},
		{fmt.Errorf("wrapped: %w", fail(statusInvalidHandle, "y")), int(statusInvalidHandle)},
	} {
		if got := int(statusOf(c.err)); got != c.want {
			t.Errorf("statusOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

func TestExtentOverflow(t *testing.T) {
	for _, c := range []struct {
		rows, heads, cols, rs, hs uint64
		want                      uint64
		ok                        bool
	}{
		{1, 1, 4096, 0, 0, 4096, true},
		{512, 9, 2048, 2048, 2048 * 512, 511*2048 + 8*2048*512 + 2048, true},
		{2, 1, 1, math.MaxInt64, 0, 0, false},
		{1 << 31, 1, 1, 1 << 33, 0, 0, false},
		{1, 1 << 31, 1, 0, math.MaxUint64, 0, false},
		{2, 2, 1 << 40, 1 << 39, 1 << 39, 0, false},
		{1, 1, maxExtent, 0, 0, maxExtent, true},
	} {
		got, ok := extent(c.rows, c.heads, c.cols, c.rs, c.hs)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("extent(%d, %d, %d, %d, %d) = %d, %v; want %d, %v", c.rows, c.heads, c.cols, c.rs, c.hs, got, ok, c.want, c.ok)
		}
	}
}

func TestFractionsFromCMatchGo(t *testing.T) {
	for _, f := range []float64{0.5, 0.3, 0.7, 0.2, 0.9, 1} {
		if got := float64From32(cFloat(f)); got != f {
			t.Errorf("float64From32(%gf) = %v", f, got)
		}
	}
	if got := float64From32(cFloat(math.NaN())); !math.IsNaN(got) {
		t.Errorf("NaN became %v", got)
	}
}
