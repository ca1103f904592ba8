package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEvalQuestions answers a question set of our own on the real model: each document read once
// per run, multiple choice by the letters' log-probabilities, recall by a greedy answer.
func TestEvalQuestions(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, evalCmd([]string{"--data", "testdata/questions.jsonl", "--policies", "keyformer,streaming,kv-q8_0",
		"--budgets", "0.5", "--threads", "2", "--ubatch", "64", "--out", dir, "--json"}, &out))
	answers := readLines[evalAnswer](t, filepath.Join(dir, "answers.jsonl"))
	require.Len(t, answers, 5*4)
	full := map[string]evalAnswer{}
	for _, a := range answers {
		if a.full() {
			full[a.ID] = a
		}
	}
	for _, a := range answers {
		assert.Equal(t, "questions", a.Set)
		assert.Positive(t, a.PromptTokens)
		switch a.Kind {
		case "choice":
			require.NotNil(t, a.Gold)
			require.Len(t, a.Logprobs, 4)
			best := a.Logprobs[a.Answer]
			for l, lp := range a.Logprobs {
				assert.Less(t, lp, 0.0, l)
				assert.LessOrEqual(t, lp, best, "the answer is the likeliest letter")
			}
		case "recall":
			require.NotNil(t, a.Text)
			assert.NotEmpty(t, *a.Text)
			assert.Nil(t, a.Logprobs)
		default:
			t.Fatalf("kind %q", a.Kind)
		}
		switch a.Policy {
		case "full":
			assert.Equal(t, int64(a.KVCells)*smolLM2CellBytes, a.KVBytes)
		case "kv-q8_0":
			assert.Greater(t, a.KVCells, a.PromptTokens, "%s: the quantized cache holds the whole document and the question", a.ID)
			if a.Kind == "choice" { // one token generated; a recall answer's length may differ under q8_0
				assert.Equal(t, full[a.ID].KVCells, a.KVCells, "%s: the quantized cache holds what the full one holds", a.ID)
			}
			assert.Equal(t, int64(a.KVCells)*smolLM2CellBytes*34/64, a.KVBytes, "q8_0: 34 bytes per 32 elements")
		default:
			assert.Less(t, a.KVCells, a.PromptTokens, "%s %s: the cache holds less than the document", a.Policy, a.ID)
		}
	}
	require.Len(t, full, 5)
	assert.NotEqual(t, full["qtest-00-00"].Logprobs["A"], full["qtest-00-00"].Logprobs["B"], "the letters are told apart")
	assert.Contains(t, *full["qtest-00-02"].Text, "Grey Gull")
	r := lastJSON(t, out.String())
	assert.Equal(t, "questions", r["metric"])
	assert.Equal(t, readingBounded, r["reading"])
	assert.EqualValues(t, 5, r["questions"])
	assert.Contains(t, r["full"], "accuracy")
	for _, row := range r["results"].([]any) {
		assert.Contains(t, row, "agreement")
		assert.Contains(t, row, "accuracy")
	}
}

// TestEvalQuestionsThroughSmallCache reads the documents through a cache smaller than them:
// a policy and llama.cpp's context shift, every answer within the cache.
func TestEvalQuestionsThroughSmallCache(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, evalCmd([]string{"--data", "testdata/questions.jsonl", "--limit", "1", "--policies", "h2o",
		"--cache", "128", "--threads", "2", "--out", dir, "--json"}, &out))
	answers := readLines[evalAnswer](t, filepath.Join(dir, "answers.jsonl"))
	require.Len(t, answers, 3*3, "full (the document fits the model), h2o and the context shift")
	for _, a := range answers {
		if a.full() {
			continue
		}
		require.NotNil(t, a.Cache)
		assert.Greater(t, a.PromptTokens, 128)
		assert.LessOrEqual(t, a.KVCells, 128, "%s %s", a.Policy, a.ID)
	}
	assert.Equal(t, contextShift, answers[len(answers)-1].Policy)
	assert.Len(t, lastJSON(t, out.String())["results"], 2)
}
