package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// qwenDocument is a short document for the Qwen2.5-Coder test (a few hundred tokens, so that
// prefill on two cores stays within seconds).
const qwenDocument = `The function retryWithBackoff in package netutil calls an operation until it succeeds or the
context ends. After each failure it waits, and the wait doubles every time: 100 ms, then 200 ms,
then 400 ms, up to a ceiling of 5 seconds. A random jitter of up to 20 percent is added to every
wait so that many clients do not retry in lockstep. Errors wrapped with netutil.Permanent stop the
loop at once and are returned to the caller unchanged. The function returns the last error it saw
when the context is cancelled, joined with the context's own error. It never retries more than
eight times; the eighth failure is returned as it is. The package logs each retry at debug level
with the attempt number and the wait, and counts retries in the metric netutil_retries_total,
labelled with the operation's name. Callers that need a different schedule pass a Backoff value;
the default one is netutil.DefaultBackoff, which holds the numbers above.`

// needQwen skips unless the llama.cpp runtime and the Qwen2.5-Coder-1.5B model are in place
// (bash build/scripts/deps.sh --model qwen2.5-coder-1.5b, or make model-qwen); the test never fetches it.
func needQwen(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs llama.cpp on the real model: skipped under -short (make check)")
	}
	model := filepath.Join(checkout.Root(), "build", "deps", "models", "qwen2.5-coder-1.5b.gguf")
	for _, p := range []string{checkout.LibDir(), model} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("llama.cpp runtime or Qwen2.5-Coder-1.5B not fetched (run make model-qwen): %v", err)
		}
	}
}

// TestQwenGenerateJSON runs generate on the real Qwen2.5-Coder-1.5B, chosen by name, with the
// default policy (KeyDiff) at half the prompt, and checks the report: evictions happened, the cache stayed below what the
// full cache needs, and the model said something.
func TestQwenGenerateJSON(t *testing.T) {
	needQwen(t)
	doc := filepath.Join(t.TempDir(), "doc.txt")
	require.NoError(t, os.WriteFile(doc, []byte(qwenDocument), 0o644))
	const maxNew, ubatch = 16, 64
	var b bytes.Buffer
	require.NoError(t, generateCmd([]string{"--model", "qwen2.5-coder-1.5b", "--prompt-file", doc,
		"--question", "How long is the wait after the third failure?", "--budget", "0.5", "--ubatch", strconv.Itoa(ubatch),
		"--max-new", strconv.Itoa(maxNew), "--threads", "2", "--json"}, &b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var r report
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &r), b.String())
	t.Logf("%d prompt + %d generated tokens, budget %d, KV peak %d cells, %d evicted, prefill %.0f tok/s, decode %.1f tok/s: %q",
		r.PromptTokens, r.GeneratedTokens, r.BudgetTokens, r.KVCellsPeak, r.Evicted, r.PrefillTokPerS, r.DecodeTokPerS, r.Text)

	assert.Equal(t, "keydiff", r.Policy)
	assert.Equal(t, ubatch, r.NUbatch)
	assert.Greater(t, r.PromptTokens, 150, "the document should be a few hundred tokens")
	assert.InDelta(t, r.PromptTokens/2, r.BudgetTokens, 1, "budget 0.5 of the prompt")
	assert.Positive(t, r.GeneratedTokens)
	assert.LessOrEqual(t, r.GeneratedTokens, maxNew)
	assert.Positive(t, r.Evicted, "KeyDiff at half the prompt must evict")
	assert.Less(t, r.KVCellsPeak, r.PromptTokens+maxNew, "the cache must stay below what the full cache needs")
	assert.LessOrEqual(t, r.KVCellsPeak, r.BudgetTokens+ubatch)
	assert.Positive(t, r.KVBytesPeak)
	assert.NotEmpty(t, strings.TrimSpace(r.Text))
}
