package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]keyformer.Size{
		"0.5": keyformer.Fraction(0.5), "50%": keyformer.Fraction(0.5), "2048": keyformer.Tokens(2048), "1": keyformer.Tokens(1),
	} {
		got, err := parseSize(in, "budget")
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"half", "x%", ""} {
		_, err := parseSize(in, "budget")
		assert.ErrorContains(t, err, "--budget", in)
	}
}

func TestWrap(t *testing.T) {
	assert.Equal(t, []string{"aaa bb", "cccc", "", "d"}, wrap("aaa bb cccc\n\nd", 6))
	var b bytes.Buffer
	sideBySide(&b, 5, "L", "R", "one two", "three")
	assert.Equal(t, "L     | R\n----- | -----\none   | three\ntwo   | \n", b.String())
}

func TestDemoShowsEveryPolicy(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, demo([]string{"--prompt", "40", "--gen", "8"}, &b))
	for _, p := range []string{"full", "keyformer", "h2o", "tova", "streaming", "window"} {
		assert.Contains(t, b.String(), "\n"+p+" ")
	}
	assert.Error(t, demo([]string{"--prompt", "2"}, &b))
}

// needModel skips unless make deps fetched the llama.cpp runtime and the model.
func needModel(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs llama.cpp on the real model: skipped under -short (make check)")
	}
	for _, p := range []string{checkout.LibDir(), checkout.ModelPath()} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("llama.cpp runtime or model not fetched (run make deps): %v", err)
		}
	}
}

// TestGenerateJSON runs the real model with a small budget and checks the last line.
func TestGenerateJSON(t *testing.T) {
	needModel(t)
	var b bytes.Buffer
	require.NoError(t, generateCmd([]string{"--budget", "256", "--ubatch", "128", "--max-new", "8", "--threads", "2", "--json"}, &b))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &r))
	for _, k := range []string{"policy", "budget_tokens", "n_ubatch", "prompt_tokens", "generated_tokens", "kv_cells_peak",
		"kv_bytes_peak", "evicted", "prefill_tok_per_s", "decode_tok_per_s", "text"} {
		assert.Contains(t, r, k)
	}
	assert.Equal(t, "keydiff", r["policy"], "the default policy")
	assert.EqualValues(t, 256, r["budget_tokens"])
	assert.LessOrEqual(t, r["kv_cells_peak"].(float64), float64(256+128))
	assert.Greater(t, r["evicted"].(float64), 0.0)
	assert.NotEmpty(t, r["text"])
	assert.Error(t, generateCmd([]string{"--policy", "lru"}, &b))
}
