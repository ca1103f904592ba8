//go:build linux || darwin

package llama

import (
	"slices"
	"strings"
	"testing"
)

func TestModelShape(t *testing.T) {
	m := needModel(t)
	if m.NLayer != 30 || m.NHead != 9 || m.NHeadKV != 3 {
		t.Fatalf("SmolLM2-135M shape: layers %d heads %d kv heads %d, want 30/9/3", m.NLayer, m.NHead, m.NHeadKV)
	}
	t.Logf("n_embd %d n_ctx_train %d n_vocab %d n_swa %d bos %d eos %d", m.NEmbd, m.NCtxTrain, m.NVocab, m.SlidingWindow(), m.BOS(), m.EOS())
}

func TestTokenizeRoundTrip(t *testing.T) {
	m := needModel(t)
	text := "The quick brown fox jumps over the lazy dog."
	toks, err := m.Tokenize(text, false, false)
	if err != nil || len(toks) == 0 {
		t.Fatalf("Tokenize: %v %v", toks, err)
	}
	if got := m.Detokenize(toks, false, false); got != text {
		t.Fatalf("Detokenize = %q", got)
	}
	var sb strings.Builder
	for _, tok := range toks {
		sb.WriteString(m.TokenPiece(tok, false))
	}
	if sb.String() != text {
		t.Fatalf("pieces = %q", sb.String())
	}
	// parse_special turns the template's markers into single special tokens.
	sp, _ := m.Tokenize("<|im_start|>", false, true)
	pl, _ := m.Tokenize("<|im_start|>", false, false)
	if len(sp) != 1 || len(pl) <= 1 {
		t.Fatalf("special parsing: %v (parsed) vs %v (plain)", sp, pl)
	}
	if empty, err := m.Tokenize("", false, false); err != nil || len(empty) != 0 {
		t.Fatalf("Tokenize(\"\") = %v, %v", empty, err)
	}
}

func TestChatTemplate(t *testing.T) {
	m := needModel(t)
	s, err := m.ApplyChatTemplate("", []ChatMessage{{Role: "user", Content: "What is the capital of France?"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, "<|im_start|>user\nWhat is the capital of France?<|im_end|>") || !strings.HasSuffix(s, "<|im_start|>assistant\n") {
		t.Fatalf("templated prompt: %q", s)
	}
}

func TestGenerateParis(t *testing.T) {
	m := needModel(t)
	prompt := chatPrompt(t, m, "What is the capital of France?")
	run := func() []int32 {
		c := newTestContext(t, m, ContextOptions{NCtx: 512, NBatch: 512, NUbatch: 512})
		out, err := c.GenerateGreedy(0, prompt, 0, 16, true)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a := run()
	b := run()
	text := m.Detokenize(a, true, false)
	t.Logf("prompt %d tokens; greedy output %q", len(prompt), text)
	if len(a) == 0 {
		t.Fatal("empty output")
	}
	if !slices.Equal(a, b) {
		t.Fatalf("greedy decoding not deterministic:\n%v\n%v", a, b)
	}
	if !strings.Contains(text, "Paris") {
		t.Errorf("output does not mention Paris: %q", text)
	}
}
