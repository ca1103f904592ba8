//go:build cgo

package main

import (
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/adapter"
)

// A panic inside the eval callback's Go half never reaches C: the ask is answered no, a computed
// tensor yes, and the next apply reports it (KEYFORMER_ERR_INTERNAL), detaching the context.
func TestEvalPanicIsReportedAtApply(t *testing.T) {
	h := newTestContext(t)
	c := lookup(h)
	if _, st := llamaApply(h, 0); st != statusInvalidArgument || !strings.Contains(errorText(h), "keyformer_llama_attach first") {
		t.Fatalf("apply before attach: status %d, %q", st, errorText(h))
	}
	ad, err := adapter.New(nil, c.tracker, adapter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c.llama.Store(&llamaBinding{adapter: ad})
	if llamaEval(h, nil, true) { // a NULL tensor: the adapter faults reading it
		t.Fatal("a panicking ask answered yes")
	}
	if !llamaEval(h, nil, false) {
		t.Fatal("a computed tensor answered no")
	}
	n, st := llamaApply(h, 0)
	if st != statusInternal || n != 0 {
		t.Fatalf("apply after a panic: status %d, n %d", st, n)
	}
	if msg := errorText(h); !strings.Contains(msg, "panic") || !strings.Contains(msg, "attach it again") {
		t.Fatalf("message %q", msg)
	}
	if _, st := llamaApply(h, 0); st != statusInvalidArgument {
		t.Fatalf("apply after the report: status %d (want not attached)", st)
	}
	// Unknown handles: no, yes, no crash.
	if llamaEval(h+1000, nil, true) || !llamaEval(h+1000, nil, false) {
		t.Fatal("unknown handle")
	}
}

// Apply before any graph went through the callback names the missing cb_eval.
func TestApplyWithoutCallback(t *testing.T) {
	h := newTestContext(t)
	ad, err := adapter.New(nil, lookup(h).tracker, adapter.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lookup(h).llama.Store(&llamaBinding{adapter: ad})
	if _, st := llamaApply(h, 0); st != statusInvalidArgument || !strings.Contains(errorText(h), "cb_eval") {
		t.Fatalf("status %d, %q", st, errorText(h))
	}
}
