//go:build linux || darwin

package llama

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// BenchmarkEvalTrampoline measures one call of the shared eval callback through purego's
// C-ABI entry (callbackasm -> reflect dispatch -> EvalFunc), called here from Go with
// purego.SyscallN, with a function that answers false: the per-ask cost without llama.cpp.
func BenchmarkEvalTrampoline(b *testing.B) {
	buf := new([tensorSize]byte) // heap: the callback may grow (move) this goroutine's stack
	copy(buf[tensorOffName:], "kq-7")
	n := 0
	h := mustRegisterEval(b, func(t Tensor, ask bool) bool {
		n++
		_, ok := t.NameLayer("kq_soft_max")
		return ok
	})
	defer h.Release()
	cb := EvalCallback()
	p := uintptr(unsafe.Pointer(&buf[0]))
	b.ResetTimer()
	for range b.N {
		purego.SyscallN(cb, p, 1, h.UserData())
	}
	runtime.KeepAlive(buf)
	if n != b.N {
		b.Fatalf("%d calls for %d iterations", n, b.N)
	}
}

// TestAskCost decodes single tokens with no eval callback, with one that answers false to every
// ask (the pure purego overhead), with one calling ggml_get_name on every ask, and with one that
// wants every kq_soft_max (one more graph split per layer), with and without a persistent
// threadpool and behind the ask filter (asks about other nodes answered without entering Go), and
// reports the per-token medians and the cost per ask. The variants' decodes are interleaved step
// by step so that machine noise hits them alike. Set KEYFORMER_ASK_COST=1 to
// run it (timing, not a correctness test).
func TestAskCost(t *testing.T) {
	if os.Getenv("KEYFORMER_ASK_COST") == "" {
		t.Skip("set KEYFORMER_ASK_COST=1 to measure")
	}
	l := needLib(t)
	m := needModel(t)
	prompt := chatPrompt(t, m, "Write a long story about the capital of France and its history.")
	asks := 0
	countFalse := func(tn Tensor, ask bool) bool {
		asks++
		return false
	}
	wantSoftmax := func(tn Tensor, ask bool) bool {
		if ask {
			_, ok := tn.NameLayer("kq_soft_max")
			return ok
		}
		return true
	}
	viaName := func(tn Tensor, ask bool) bool { // the slow way: a C call per ask
		_ = l.TensorName(tn)
		return false
	}
	for _, threads := range []int32{1, testThreads()} {
		type variant struct {
			name  string
			eval  EvalFunc
			nodes []string
			pool  bool
			d     []time.Duration
		}
		vs := []*variant{{name: "none"}, {name: "answer-false", eval: countFalse}, {name: "ggml_get_name", eval: viaName},
			{name: "want-kq_soft_max", eval: wantSoftmax}, {name: "filtered-kq_soft_max", eval: wantSoftmax, nodes: []string{"kq_soft_max"}}}
		perDecode := 1
		tp, err := l.NewThreadpool(int(threads), -1)
		if err == nil {
			vs = append(vs, &variant{name: "none+pool", pool: true}, &variant{name: "want-kq_soft_max+pool", eval: wantSoftmax, pool: true})
		}
		// One context alive at a time (idle contexts' worker threads spin for a while after each
		// graph and slow the others down badly on a small machine), variants interleaved in
		// blocks of 20 tokens, 10 rounds.
		for range 10 {
			for _, v := range vs {
				c, err := m.NewContext(ContextOptions{NCtx: 512, NThreads: threads, Eval: v.eval, EvalNodes: v.nodes})
				if err != nil {
					t.Fatal(err)
				}
				if v.pool {
					if err := c.AttachThreadpool(tp, 0); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Decode(0, prompt, 0); err != nil {
					t.Fatal(err)
				}
				asks = 0
				for i := range 20 {
					tok := Argmax(c.Logits())
					start := time.Now()
					if err := c.Decode(0, []int32{tok}, int32(len(prompt)+i)); err != nil {
						t.Fatal(err)
					}
					v.d = append(v.d, time.Since(start))
				}
				if v.eval != nil && asks > 0 {
					perDecode = asks / 20
				}
				c.DetachThreadpool()
				c.Free()
			}
		}
		med, p25 := map[string]time.Duration{}, map[string]time.Duration{}
		line := ""
		for _, v := range vs {
			slices.Sort(v.d)
			med[v.name], p25[v.name] = v.d[len(v.d)/2], v.d[len(v.d)/4]
			line += " " + v.name + " " + med[v.name].Round(10*time.Microsecond).String()
		}
		if tp != 0 {
			l.FreeThreadpool(tp)
		}
		base := med["none"]
		pct := func(a, b string, q map[string]time.Duration) float64 {
			return 100 * float64(q[a]-q[b]) / float64(max(q[b], 1))
		}
		t.Logf("threads %d, per-token medians:%s", threads, line)
		t.Logf("threads %d: %d asks per decode; answering all false costs %v per ask by medians, %v by 25th percentiles (%+.1f%% per token); "+
			"ggml_get_name in the ask adds %v per ask; wanting every kq_soft_max: %+.1f%% per token (%+.1f%% with a threadpool, %+.1f%% with the ask filter)",
			threads, perDecode, (med["answer-false"]-base)/time.Duration(perDecode),
			(p25["answer-false"]-p25["none"])/time.Duration(perDecode), pct("answer-false", "none", med),
			(med["ggml_get_name"]-med["answer-false"])/time.Duration(perDecode),
			pct("want-kq_soft_max", "none", med), pct("want-kq_soft_max+pool", "none+pool", med), pct("filtered-kq_soft_max", "none", med))
	}
}
