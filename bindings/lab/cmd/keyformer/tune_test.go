package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTune runs tune on one record of the real model: advice per policy and the attention
// concentration of every layer.
func TestTune(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, tuneCmd([]string{"--data", "testdata/eval.jsonl", "--limit", "1", "--policies", "keyformer,window",
		"--budgets", "0.3,0.9", "--target", "0.5", "--threads", "2", "--ubatch", "128", "--out", dir, "--json"}, &out))
	sp := readLines[sparsityLine](t, filepath.Join(dir, "sparsity.jsonl"))
	require.NotEmpty(t, sp)
	layers := map[int]bool{}
	for _, l := range sp {
		layers[l.Layer] = true
		assert.Positive(t, l.Rows)
		assert.True(t, l.Share90 > 0 && l.Share90 <= 1, "layer %d: %v", l.Layer, l.Share90)
		assert.Greater(t, l.Cells, 100.0, "rows of generated tokens see the prompt")
	}
	assert.Len(t, layers, 30, "every layer of SmolLM2")
	r := lastJSON(t, out.String())
	assert.Equal(t, "tune", r["metric"])
	assert.EqualValues(t, 0.5, r["target"])
	advice := r["advice"].([]any)
	require.Len(t, advice, 2)
	kf := advice[0].(map[string]any)
	assert.Equal(t, "keyformer", kf["policy"])
	assert.NotNil(t, kf["budget"], "keyformer reaches 50%% agreement at 0.9 or less")
	assert.Len(t, r["sparsity"], 30)

	var none bytes.Buffer
	assert.ErrorContains(t, tuneCmd([]string{"--data", "testdata/eval.jsonl", "--target", "1.5"}, &none), "--target")
	assert.ErrorContains(t, tuneCmd(nil, &none), "--data is required")
}

// TestTuneOnAQuestionSet runs tune on a question set: the questions are asked (no fidelity sweep,
// no sparsity) and the advice is by accuracy against the full cache's.
func TestTuneOnAQuestionSet(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, tuneCmd([]string{"--data", "testdata/questions.jsonl", "--limit", "1", "--policies", "keydiff,window",
		"--budgets", "0.5,0.9", "--target", "0.01", "--threads", "2", "--ubatch", "64", "--out", dir, "--json"}, &out))
	answers := readLines[evalAnswer](t, filepath.Join(dir, "answers.jsonl"))
	assert.NotEmpty(t, answers)
	assert.NoFileExists(t, filepath.Join(dir, "sparsity.jsonl"))
	r := lastJSON(t, out.String())
	assert.Equal(t, "tune", r["metric"])
	assert.Equal(t, "questions", r["basis"])
	advice := r["advice"].([]any)
	require.Len(t, advice, 2)
	assert.Equal(t, "keydiff", advice[0].(map[string]any)["policy"])
}
