package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogSoftmaxAndKL(t *testing.T) {
	lp := logSoftmax(nil, []float32{1, 2, 3})
	sum := 0.0
	for _, v := range lp {
		sum += math.Exp(float64(v))
	}
	assert.InDelta(t, 1, sum, 1e-6)
	assert.InDelta(t, -math.Log(1+math.Exp(-1)+math.Exp(-2)), float64(lp[2]), 1e-6)
	shifted := logSoftmax(nil, []float32{101, 102, 103})
	assert.InDeltaSlice(t, lp, shifted, 1e-5, "invariant to a constant")
	huge := logSoftmax(nil, []float32{1e30, 0, float32(math.Inf(-1))})
	assert.Equal(t, float32(0), huge[0])
	assert.True(t, math.IsInf(float64(huge[2]), -1))

	assert.Zero(t, klDivergence(lp, lp))
	p := logSoftmax(nil, []float32{0, 0})    // 1/2, 1/2
	q := logSoftmax(nil, []float32{0, -1e9}) // 1, 0
	assert.InDelta(t, math.Log(2), klDivergence(q, p), 1e-6, "KL(q||p) = log 2")
	assert.Greater(t, klDivergence(p, q), 1e6, "p puts mass where q has almost none")
}

func TestForcedScore(t *testing.T) {
	teacher := [][]float32{logSoftmax(nil, []float32{3, 0, 0}), logSoftmax(nil, []float32{0, 3, 0})}
	run := [][]float32{logSoftmax(nil, []float32{3, 0, 0}), logSoftmax(nil, []float32{3, 0, 0})}
	var s forcedScore
	for i, tok := range []int32{0, 1} {
		require.NoError(t, s.add(run[i], tok, teacher[i]))
	}
	top1, kl, nll := s.means()
	assert.Equal(t, 0.5, *top1, "agrees at the first position only")
	assert.InDelta(t, klDivergence(teacher[1], run[1])/2, *kl, 1e-9)
	assert.Equal(t, []float64{0, klDivergence(teacher[1], run[1])}, s.kls)
	require.Len(t, s.deltaP, 2)
	assert.Zero(t, s.deltaP[0])
	p1 := math.Exp(3) / (math.Exp(3) + 2) // the teacher's probability of token 1; the run gives it 1 / (e^3 + 2)
	assert.InDelta(t, 1/(math.Exp(3)+2)-p1, s.deltaP[1], 1e-6)
	assert.InDelta(t, -(float64(run[0][0])+float64(run[1][1]))/2, *nll, 1e-6)
	assert.ErrorContains(t, s.add(run[0], 3, nil), "outside the vocabulary")

	var ref forcedScore
	require.NoError(t, ref.add(run[0], 2, nil))
	top1, kl, nll = ref.means()
	assert.Nil(t, top1)
	assert.Nil(t, kl)
	assert.InDelta(t, -float64(run[0][2]), *nll, 1e-6)
	var none forcedScore
	top1, kl, nll = none.means()
	assert.Nil(t, top1)
	assert.Nil(t, nll)
}

// readLines decodes the JSON lines of path into T.
func readLines[T any](t *testing.T, path string) []T {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var v T
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v), sc.Text())
		out = append(out, v)
	}
	return out
}

// TestEvalFidelity runs the teacher-forced sweep on the real model: two records, the full cache
// and two policies, scored by keyformer_eval fidelity, then resumes after a cut-off line.
func TestEvalFidelity(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	args := []string{"--data", "testdata/eval.jsonl", "--metric", "fidelity", "--policies", "keyformer,streaming,kv-q4_0",
		"--budgets", "0.3", "--threads", "2", "--ubatch", "128", "--out", dir, "--json"}
	var out bytes.Buffer
	require.NoError(t, evalCmd(args, &out))
	path := filepath.Join(dir, "fidelity.jsonl")
	lines := readLines[fidelityLine](t, path)
	require.Len(t, lines, 2*4)
	byRun := map[string]fidelityLine{}
	for _, l := range lines {
		byRun[l.key(l.ID)] = l
	}
	for _, l := range lines {
		require.NotNil(t, l.Top1, l.key(l.ID))
		assert.Positive(t, l.Positions)
		assert.Equal(t, lines[0].Positions, lines[1].Positions, "every run of a record is forced through the same tokens")
		assert.Len(t, l.KLPositions, l.Positions)
		assert.Len(t, l.DeltaP, l.Positions)
		assert.InDelta(t, *l.KL, mean(l.KLPositions), 1e-9)
		assert.Positive(t, l.RefTokens)
		assert.Positive(t, *l.RefNLL)
		assert.Positive(t, *l.NLL)
		full := byRun[l.ID+"|full/-/-"]
		switch {
		case l.full():
			assert.Equal(t, 1.0, *l.Top1)
			assert.Zero(t, *l.KL)
			assert.Equal(t, make([]float64, l.Positions), l.DeltaP)
			assert.GreaterOrEqual(t, l.KVCells, l.PromptTokens)
		case l.Policy == "kv-q4_0":
			assert.Equal(t, full.KVCells, l.KVCells, "the quantized cache holds everything")
			assert.InDelta(t, 18.0/64, float64(l.KVBytes)/float64(full.KVBytes), 1e-9, "q4_0: 18 bytes per 32 elements against 64")
			assert.Positive(t, *l.KL, "q4_0 changes the distributions")
		default:
			assert.True(t, *l.Top1 >= 0 && *l.Top1 <= 1)
			assert.Positive(t, *l.KL, "a 30%% cache changes the distributions")
			slack := keyformer.DefaultConfig(keyformer.Shape{}).Observe.Slack
			assert.LessOrEqual(t, l.KVCells, int(0.3*float64(l.PromptTokens)+0.5)+max(128, slack),
				"read in ubatches of 128: the budget and one ubatch (or the slack)")
		}
	}
	for _, id := range []string{"test-0000", "test-0001"} {
		kf, st := byRun[id+"|keyformer/0.3/-"], byRun[id+"|streaming/0.3/-"]
		assert.Greater(t, *kf.Top1, *st.Top1, "%s: keyformer keeps what the answer needs, streaming the start and the end", id)
	}
	r := lastJSON(t, out.String())
	assert.Equal(t, "fidelity", r["metric"])
	assert.EqualValues(t, 2, r["records"])
	assert.Equal(t, readingBounded, r["reading"])
	assert.Equal(t, false, r["instruction_in_prompt"])
	results := r["results"].([]any)
	require.Len(t, results, 3)
	row := results[0].(map[string]any)
	assert.Equal(t, "keyformer", row["policy"])
	for _, k := range []string{"top1", "top1_se", "kl", "nll", "ref_nll", "ref_nll_vs_full"} {
		assert.Contains(t, row, k)
	}

	cutLastLine(t, path)
	out.Reset()
	require.NoError(t, evalCmd(args, &out))
	assert.Equal(t, lines, readLines[fidelityLine](t, path), "the cut run is redone identically, teacher included")

	assert.ErrorContains(t, evalCmd(append(args, "--reading", "whole"), &out), "was written with bounded reading",
		"a bounded file is not resumed by a whole reading")
	whole := t.TempDir()
	args = []string{"--data", "testdata/eval.jsonl", "--limit", "1", "--metric", "fidelity", "--policies", "keyformer",
		"--budgets", "0.3", "--threads", "2", "--ubatch", "128", "--out", whole, "--reading", "whole", "--instruction-in-prompt"}
	require.NoError(t, evalCmd(args, &out))
	paper := readLines[fidelityLine](t, filepath.Join(whole, "fidelity.jsonl"))
	require.Len(t, paper, 2)
	for _, l := range paper {
		assert.Equal(t, evalSetting{Reading: readingWhole, InstructionInPrompt: true}, l.evalSetting)
		assert.GreaterOrEqual(t, l.KVCells, l.PromptTokens, "%s: a whole reading holds the whole prompt at its peak", l.Policy)
	}
}

// mean is the mean of xs.
func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestEvalMetricErrors(t *testing.T) {
	var out bytes.Buffer
	assert.ErrorContains(t, evalCmd([]string{"--data", "testdata/eval.jsonl", "--metric", "bleu"}, &out), `--metric "bleu"`)
	assert.ErrorContains(t, evalCmd([]string{"--data", "testdata/questions.jsonl", "--metric", "fidelity"}, &out), "question set")
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	q, err := os.ReadFile("testdata/questions.jsonl")
	require.NoError(t, err)
	s, err := os.ReadFile("testdata/eval.jsonl")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(mixed, append(q, s...), 0o644))
	assert.ErrorContains(t, evalCmd([]string{"--data", mixed}, &out), "mixed")
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"id":"a","document":"d","questions":[{"id":"q","instruction":"i","reference":"r","answer":"E"}]}`+"\n"), 0o644))
	assert.ErrorContains(t, evalCmd([]string{"--data", bad}, &out), `answer "E" is not a letter`)
}
