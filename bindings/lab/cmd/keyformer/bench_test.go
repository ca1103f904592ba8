package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchFlags checks that bad flags are errors naming the flag, before anything is loaded.
func TestBenchFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--budgets", "0"}, "--budgets"},
		{[]string{"--budgets", "1.5"}, "--budgets"},
		{[]string{"--budgets", "0.5,half"}, "--budgets"},
		{[]string{"--budgets", "0.5,50%"}, "--budgets"},
		{[]string{"--context", "16", "--gen", "32"}, "--context"},
		{[]string{"--context", "1024,x"}, "--context"},
		{[]string{"--gen", "1"}, "--gen"},
		{[]string{"--repeats", "0"}, "--repeats"},
		{[]string{"--max-new", "8"}, "--gen"},
		{[]string{"--budget", "0.5"}, "--budgets"},
	} {
		err := bench(append(c.args, "--model", "/nonexistent.gguf"), io.Discard, io.Discard)
		if assert.Error(t, err, c.args) {
			assert.Contains(t, err.Error(), c.flag, c.args)
			assert.NotContains(t, err.Error(), "nonexistent", c.args) // refused before loading
		}
	}
}

// TestBenchJSON runs the real model at one small context and checks the report.
func TestBenchJSON(t *testing.T) {
	needModel(t)
	dir := t.TempDir()
	var b, progress bytes.Buffer
	require.NoError(t, bench([]string{"--context", "512", "--gen", "8", "--budgets", "1.0,0.25", "--streaming", "0.25",
		"--observe-layer-stride", "3", "--ubatch", "128", "--threads", "2", "--out", dir, "--json"}, &b, &progress))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &rep))
	saved, err := os.ReadFile(filepath.Join(dir, "bench.json"))
	require.NoError(t, err)
	assert.JSONEq(t, lines[len(lines)-1], string(saved))

	lib, err := llama.Load(checkout.LibDir())
	require.NoError(t, err)
	m, err := lib.LoadModel(checkout.ModelPath(), nil)
	require.NoError(t, err)
	defer m.Free()
	fi, err := os.Stat(checkout.ModelPath())
	require.NoError(t, err)
	assert.Positive(t, m.Size())
	assert.LessOrEqual(t, m.Size(), fi.Size()) // the tensors, less the GGUF header and vocabulary
	assert.Equal(t, m.Size(), rep.WeightBytes)
	assert.Equal(t, generate.KVBytesPerCell(m, generate.KVF16), rep.KVBytesPerCell)
	assert.Equal(t, 8, rep.Gen)

	// Budget 0.25, not 0.5: llama.cpp pads n_ctx to a multiple of 256, so that budget + n_ubatch
	// cells must stay within 256 to allocate less than the full 512.
	require.Len(t, rep.Rows, 5)
	none, full, all, kf, stream := rep.Rows[0], rep.Rows[1], rep.Rows[2], rep.Rows[3], rep.Rows[4]
	for i, want := range []string{"none", "full", "full all", "keyformer 0.25", "streaming 0.25"} {
		r := rep.Rows[i]
		assert.Equal(t, want, r.Config)
		assert.Equal(t, 512, r.Context)
		assert.Equal(t, 504, r.PromptTokens)
		assert.Positive(t, r.PrefillTokPerS, want)
		assert.Positive(t, r.DecodeTokPerS, want)
		assert.Equal(t, int64(r.KVCells)*int64(rep.KVBytesPerCell), r.KVBytes, want)
	}
	assert.Nil(t, none.Budget)
	assert.Nil(t, none.IdealSpeedup)
	assert.Nil(t, none.ObserveMsPerToken)
	assert.Equal(t, 1.0, none.Speedup)
	assert.Equal(t, 511, none.KVCellsEnd) // 504 prompt + 7 decoded tokens
	require.NotNil(t, full.Budget)
	assert.Equal(t, 1.0, *full.Budget)
	assert.Equal(t, 1.0, *full.IdealSpeedup)
	assert.Equal(t, 0, full.KVCellsPeak-none.KVCellsPeak) // the hook observes and keeps everything
	require.NotNil(t, kf.Budget)
	assert.Equal(t, 0.25, *kf.Budget)
	w, kv := float64(m.Size()), 512*float64(generate.KVBytesPerCell(m, generate.KVF16))
	assert.InDelta(t, (w+kv)/(w+0.25*kv), *kf.IdealSpeedup, 1e-3)
	assert.Less(t, kf.KVBytes, full.KVBytes)
	assert.Less(t, kf.KVCellsEnd, full.KVCellsEnd)
	assert.LessOrEqual(t, kf.KVCellsPeak, 126+128) // budget + n_ubatch
	assert.InDelta(t, full.DecodeMsPerToken/none.DecodeMsPerToken, rep.HookOverhead["512"], 1e-2)
	assert.InDelta(t, all.DecodeMsPerToken/none.DecodeMsPerToken, rep.HookOverheadAll["512"], 1e-2)
	assert.Positive(t, *all.ObserveMsPerToken)
	assert.Zero(t, *stream.ObserveMsPerToken, "streaming reads no attention")
	assert.Equal(t, kf.KVCellsEnd, stream.KVCellsEnd, "both at the budget")
	assert.Contains(t, progress.String(), "keyformer 0.25 reads 504 prompt tokens")
}

func TestSequencesThatFit(t *testing.T) {
	for _, c := range []struct {
		cells, prompt, gen, budget, ubatch, slack int
		unified                                   bool
		n, perSeq                                 int
	}{
		{4096, 992, 32, 0, 512, 0, true, 4, 1024},   // plain: the whole prompt and generation each
		{4096, 992, 32, 496, 512, 0, true, 7, 497},  // the budget and the token being decoded
		{4096, 992, 32, 496, 512, 64, true, 7, 560}, // with slack, budget + slack
		{1000, 992, 32, 496, 512, 0, true, 0, 497},  // 2 x 497 cells would fit, but not the one reading its prompt
		{500, 992, 32, 0, 512, 0, true, 0, 1024},
		{4096, 992, 32, 0, 512, 0, false, 4, 1024},   // a stream per sequence: the same, in 256s
		{4096, 992, 40, 0, 512, 0, false, 3, 1280},   // 1032 rounds up to 1280
		{4096, 992, 32, 496, 512, 0, false, 4, 1024}, // each stream holds its own prompt's ubatch
		{4096, 992, 32, 496, 256, 16, false, 5, 768},
	} {
		n, perSeq := sequencesThatFit(c.cells, c.prompt, c.gen, c.budget, c.ubatch, c.slack, c.unified)
		assert.Equal(t, []int{c.n, c.perSeq}, []int{n, perSeq}, "%+v", c)
	}
}

// TestBenchThroughput runs the throughput measurement at a tiny size on the real model, in both
// cache layouts: more sequences fit with Keyformer, every one generates, and evictions keep the
// cells within the cache.
func TestBenchThroughput(t *testing.T) {
	needModel(t)
	for _, c := range []struct {
		layout, context, cells string
		plain                  int
	}{
		{"--kv-unified", "320", "1024", 3},
		{"--kv-unified=false", "544", "1536", 2}, // streams of 768 cells plain, 512 at half the prompt
	} {
		var b bytes.Buffer
		require.NoError(t, bench([]string{"--throughput", c.layout, "--context", c.context, "--gen", "8", "--cells", c.cells,
			"--budgets", "0.5", "--ubatch", "128", "--threads", "2", "--evict-slack", "0", "--json"}, &b, io.Discard))
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		var rep throughputReport
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &rep))
		require.Len(t, rep.Rows, 2)
		plain, kf := rep.Rows[0], rep.Rows[1]
		assert.Equal(t, c.plain, plain.Sequences, c.layout)
		assert.Greater(t, kf.Sequences, plain.Sequences, c.layout)
		assert.Zero(t, plain.Evicted)
		budget := int(*kf.Budget*float64(rep.PromptTokens) + 0.5)
		assert.Equal(t, kf.Sequences*(rep.PromptTokens+rep.Gen-1-budget), kf.Evicted, "%s: each sequence ends at its budget", c.layout)
		assert.LessOrEqual(t, kf.PeakCells, rep.Cells)
		if rep.Layout == "per-stream" {
			assert.LessOrEqual(t, kf.PeakCells, kf.Sequences*kf.CellsPerSeq, "each sequence within its stream")
		}
		require.NotNil(t, rep.ThroughputRatio)
		assert.InDelta(t, kf.TokPerS/plain.TokPerS, *rep.ThroughputRatio, 1e-3)
	}
}
