package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/keyformer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needEvalDeps skips unless the runtime, the model and the scoring environment (make deps) are here.
func needEvalDeps(t *testing.T) {
	t.Helper()
	needModel(t)
	if err := exec.Command(pythonPath(), "-c", "import rouge_score, matplotlib").Run(); err != nil {
		t.Skipf("%s cannot import rouge_score and matplotlib (run make deps): %v", pythonPath(), err)
	}
}

// smolLM2CellBytes is one KV cell of SmolLM2-135M in an f16 cache: K and V, 30 layers, 3 KV heads
// of 64 dimensions, 2 bytes each.
const smolLM2CellBytes = 2 * 30 * 3 * 64 * 2

// readGenerations returns the lines of DIR/generations.jsonl.
func readGenerations(t *testing.T, dir string) []evalGeneration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "generations.jsonl"))
	require.NoError(t, err)
	var out []evalGeneration
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var g evalGeneration
		require.NoError(t, json.Unmarshal(sc.Bytes(), &g))
		out = append(out, g)
	}
	return out
}

// cutLastLine cuts the last line of path in half, as an interrupted run leaves it.
func cutLastLine(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lastStart := bytes.LastIndexByte(b[:len(b)-1], '\n') + 1
	require.NoError(t, os.WriteFile(path, b[:lastStart+(len(b)-lastStart)/2], 0o644))
}

// lastJSON decodes the last line of out.
func lastJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &r), lines[len(lines)-1])
	return r
}

// TestEvalTwoRecordsTwoPolicies runs the whole pipeline on the real model: two records, the full
// cache and two policies at one budget, scored by rouge-score, then resumes after a cut-off line.
func TestEvalTwoRecordsTwoPolicies(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	args := []string{"--data", "testdata/eval.jsonl", "--policies", "keyformer,h2o", "--budgets", "0.5",
		"--threads", "2", "--ubatch", "128", "--out", dir, "--json"}
	var out bytes.Buffer
	require.NoError(t, evalCmd(args, &out))

	gens := readGenerations(t, dir)
	require.Len(t, gens, 2*3)
	for _, g := range gens {
		assert.NotEmpty(t, g.Text, g.key(g.ID))
		assert.Positive(t, g.GeneratedTokens)
		assert.LessOrEqual(t, g.GeneratedTokens, 24)
		assert.NotEmpty(t, g.Reference)
		assert.Equal(t, evalSetting{Reading: readingBounded}, g.evalSetting)
		assert.Equal(t, int64(g.KVCells)*smolLM2CellBytes, g.KVBytes)
		if g.Policy == "full" {
			assert.Nil(t, g.Budget)
			assert.GreaterOrEqual(t, g.KVCells, g.PromptTokens)
		} else {
			require.NotNil(t, g.Budget)
			slack := keyformer.DefaultConfig(keyformer.Shape{}).Observe.Slack
			assert.LessOrEqual(t, g.KVCells, int(0.5*float64(g.PromptTokens)+0.5)+max(128, slack),
				"read in ubatches of 128, held at most the budget and one ubatch (or the slack)")
		}
	}
	for _, f := range []string{"results.md", "results.csv", "rougeL.png", "scores.jsonl"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Positive(t, st.Size(), f)
	}
	r := lastJSON(t, out.String())
	assert.EqualValues(t, 2, r["records"])
	full := r["full"].(map[string]any)
	assert.Greater(t, full["rougeL"].(float64), 0.0)
	results := r["results"].([]any)
	require.Len(t, results, 2)
	for i, want := range []string{"keyformer", "h2o"} {
		row := results[i].(map[string]any)
		assert.Equal(t, want, row["policy"])
		assert.EqualValues(t, 0.5, row["budget"])
		for _, k := range []string{"rouge1", "rouge2", "rougeL", "rougeL_vs_full"} {
			v := row[k].(float64)
			assert.True(t, v >= 0 && v <= 1, "%s %s = %v", want, k, v)
		}
	}

	// An interrupted run: the last line cut in half. The rerun redoes exactly that generation.
	cutLastLine(t, filepath.Join(dir, "generations.jsonl"))
	out.Reset()
	require.NoError(t, evalCmd(args, &out))
	again := readGenerations(t, dir)
	require.Len(t, again, 2*3)
	assert.Equal(t, gens[:5], again[:5], "finished generations are kept")
	assert.Equal(t, gens[5].Text, again[5].Text, "the cut generation is redone identically")
	assert.Equal(t, r, lastJSON(t, out.String()), "same scores after resuming")
}

// TestEvalLongDocumentMode runs two policies and llama.cpp's context shift through a cache
// smaller than the prompt.
func TestEvalLongDocumentMode(t *testing.T) {
	needEvalDeps(t)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, evalCmd([]string{"--data", "testdata/eval.jsonl", "--limit", "1", "--policies", "keyformer,streaming",
		"--cache", "128", "--threads", "2", "--out", dir, "--json"}, &out))
	gens := readGenerations(t, dir)
	require.Len(t, gens, 3)
	for _, g := range gens {
		require.NotNil(t, g.Cache)
		assert.Greater(t, g.PromptTokens, 128, "the prompt exceeds the cache")
		assert.LessOrEqual(t, g.KVCells, 128, g.Policy)
		assert.NotEmpty(t, g.Text, g.Policy)
	}
	assert.Equal(t, contextShift, gens[2].Policy)
	r := lastJSON(t, out.String())
	assert.EqualValues(t, 1, r["records"])
	assert.NotContains(t, r, "full")
	assert.Len(t, r["results"], 3)
}

func TestEvalFlagErrors(t *testing.T) {
	var out bytes.Buffer
	for args, want := range map[string]string{
		"":                                      "--data is required",
		"--data x --reading lazy":               `--reading "lazy"`,
		"--data x --reading whole --cache 1024": "not with --cache",
		"--data x --policies kv-q5_1":           "or a peer: kv-q8_0, kv-q4_0",
		"--data x --policies lru":               "--policies",
		"--data x --policies full":              "--policies: full always runs",
		"--data x --policies h2o+kv-q8_0":       "reads attention, which a q8_0 cache",
		"--data x --policies streaming+span2":   "ranks no scores",
		"--data x --policies h2o+span0":         "want span<N>",
		"--data x --policies h2o+fast":          `unknown option "fast"`,
		"--data x --policies keydiff+mean":      "reads no attention",
		"--data x --policies keydiff+repeat":    "reads no attention to score a pass by",
		"--data x --policies h2o+repeat+oracle": "give one",
		"--data x --budgets 0":                  "--budgets",
		"--data x --budgets 1.5":                "--budgets",
		"--data x --cache 10":                   "--cache",
		"--data testdata/missing.jsonl":         "missing.jsonl",
		"--data testdata/eval.jsonl --window x": "--window",
	} {
		err := evalCmd(strings.Fields(args), &out)
		assert.ErrorContains(t, err, want, args)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"id":"a","document":"d","reference":"r","max_new_tokens":8}`+"\n"+`{"id":"b","document":"d"}`+"\n"), 0o644))
	assert.ErrorContains(t, evalCmd([]string{"--data", bad}, &out), "bad.jsonl:2: record \"b\": no reference")
	for q, want := range map[string]string{
		`"answer":"A","references":["1"]`: "a multiple-choice question has no references",
		`"references":["1",""]`:           "an empty reference",
		`"depth":1.5`:                     "depth 1.5 is not in [0, 1]",
		`"max_new_tokens":-2`:             "max_new_tokens -2 is negative",
	} {
		line := `{"id":"d","document":"text","questions":[{"id":"q","instruction":"ask","reference":"r",` + q + `}]}` + "\n"
		require.NoError(t, os.WriteFile(bad, []byte(line), 0o644))
		assert.ErrorContains(t, evalCmd([]string{"--data", bad}, &out), `question 0 "q": `+want, q)
	}
}

// TestReadRecordsOfTasks keeps the questions of the tasks asked for, and the records that have any,
// before the limit counts them.
func TestReadRecordsOfTasks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.jsonl")
	q := func(id, task string) string {
		return `{"id":"` + id + `","instruction":"ask","reference":"1","task":"` + task + `"}`
	}
	lines := `{"id":"a","document":"d","questions":[` + q("a0", "vt") + `]}` + "\n" +
		`{"id":"b","document":"d","questions":[` + q("b0", "cwe") + "," + q("b1", "niah_single") + `]}` + "\n" +
		`{"id":"c","document":"d","questions":[` + q("c0", "niah_single") + `]}` + "\n"
	require.NoError(t, os.WriteFile(path, []byte(lines), 0o644))
	records, err := readRecords(path, 1, []string{"niah_single"})
	require.NoError(t, err)
	require.Len(t, records, 1)
	assert.Equal(t, "b", records[0].ID)
	assert.Equal(t, []string{"b1"}, records[0].units())
	all, err := readRecords(path, 0, nil)
	require.NoError(t, err)
	assert.Len(t, all, 3)
	_, err = readRecords(path, 0, []string{"qa"})
	assert.ErrorContains(t, err, "holds no records (of tasks [qa])")
	_, err = readRecords("testdata/eval.jsonl", 0, []string{"qa"})
	assert.ErrorContains(t, err, "is not a question set")
}

// TestEvalSettings checks the names of the ways of reading (output folders, the log) and that a
// results file refuses to be resumed in another way.
func TestEvalSettings(t *testing.T) {
	assert.Empty(t, evalSetting{Reading: readingBounded}.tag())
	assert.Equal(t, "-whole-instruction-in-prompt", evalSetting{Reading: readingWhole, InstructionInPrompt: true}.tag())
	assert.Equal(t, "bounded reading, question after the document", evalSetting{Reading: readingBounded}.String())

	path := filepath.Join(t.TempDir(), "answers.jsonl")
	bounded := evalSetting{Reading: readingBounded}
	_, _, w, err := openResults(path, bounded)
	require.NoError(t, err)
	require.NoError(t, writeResult(w, evalAnswer{ID: "q", evalRun: evalRun{Policy: "full"}, evalSetting: bounded, Answer: "42"}))
	b := 0.5
	require.NoError(t, writeResult(w, evalAnswer{ID: "q", evalRun: evalRun{Policy: "h2o", Budget: &b}, evalSetting: bounded, Answer: "4"}))
	require.NoError(t, w.Close())
	done, full, w, err := openResults(path, bounded)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	assert.Equal(t, map[string]bool{"q|full/-/-": true, "q|h2o/0.5/-": true}, done)
	assert.Equal(t, map[string]string{"q": "42"}, full, "the full cache's answers, for the oracle")
	_, _, _, err = openResults(path, evalSetting{Reading: readingWhole})
	assert.ErrorContains(t, err, "answers.jsonl:1 was written with bounded reading, question after the document, not whole reading")

	policies, peers, err := parsePolicies("h2o,kv-q4_0,keyformer+span2,kv-q8_0")
	require.NoError(t, err)
	assert.Equal(t, []string{"h2o", "keyformer+span2"}, policies)
	assert.Equal(t, []generate.KVCache{generate.KVQ4_0, generate.KVQ8_0}, peers)
	assert.Equal(t, []evalRun{{Policy: "full"}, {Policy: "h2o", Budget: &b}, {Policy: "kv-q4_0"}},
		evalPlan{policies: policies[:1], peers: peers[:1], budgets: []float64{b}}.runs())
}

func TestParsePolicySpecs(t *testing.T) {
	for spec, want := range map[string]policySpec{
		"keyformer":             {policy: keyformer.PolicyKeyformer},
		"h2o+mean+span3+sinks":  {policy: keyformer.PolicyH2O, ranking: keyformer.Ranking{MeanAttention: true, Span: 3, KeepSinks: true}},
		"keydiff+span2+kv-q8_0": {policy: keyformer.PolicyKeyDiff, ranking: keyformer.Ranking{Span: 2}, kv: generate.KVQ8_0},
		"streaming+kv-q4_0":     {policy: keyformer.PolicyStreaming, kv: generate.KVQ4_0},
		"peak+repeat":           {policy: keyformer.PolicyPeak, repeat: true},
		"h2o+oracle":            {policy: keyformer.PolicyH2O, oracle: true},
	} {
		got, err := parsePolicy(spec)
		require.NoError(t, err, spec)
		assert.Equal(t, want, got, spec)
	}
}
