package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// updateSchema rewrites the golden files of testdata/schema from the structs.
var updateSchema = flag.Bool("update", false, "rewrite testdata/schema/* from the structs (TestSchema)")

// The files that keyformer_eval reads (bindings/lab/python/keyformer_eval/records.py) are the
// JSON of these structs. TestSchema marshals examples of each into testdata/schema/, and
// tests/python/test_evaluate_schema.py reads those files with the Python readers: renaming or
// retyping a field the Python side needs fails one of the two tests.

// schemaSetting is the way of reading every example was written in.
var schemaSetting = evalSetting{Reading: readingBounded}

// schemaGenerations is generations.jsonl in quality mode: the full cache (budget and cache
// null), then a policy at a budget.
func schemaGenerations() []any {
	g := evalGeneration{ID: "cnndm-0000", evalRun: evalRun{Policy: "keyformer", Budget: ptr(0.5)}, evalSetting: schemaSetting,
		PromptTokens: 812, KVCells: 418, KVBytes: 9_630_720, GeneratedTokens: 60, DecodeTokPerS: 31.5,
		Text: "The cat sat on the mat.", Reference: "A cat sat on a mat."}
	full := g
	full.evalRun = evalRun{Policy: "full"}
	return []any{full, g}
}

// schemaGenerationsLong is generations.jsonl in long-document mode: a cache size, no budget.
func schemaGenerationsLong() []any {
	g := schemaGenerations()[1].(evalGeneration)
	g.evalRun = evalRun{Policy: contextShift, Cache: ptr(2048)}
	return []any{g}
}

// schemaFidelity is fidelity.jsonl: the full line, a policy with every metric, and one with
// no position and no reference token scored (the metrics null).
func schemaFidelity() []any {
	f := fidelityLine{ID: "cnndm-0000", evalRun: evalRun{Policy: "keyformer", Budget: ptr(0.5)}, evalSetting: schemaSetting,
		PromptTokens: 812, KVCells: 418, KVBytes: 9_630_720, Positions: 2, Top1: ptr(0.5), KL: ptr(0.0625), NLL: ptr(0.61),
		RefTokens: 54, RefNLL: ptr(2.93), KLPositions: []float64{0, 0.125}, DeltaP: []float64{0.25, -0.5}}
	full := f
	full.evalRun, full.Top1, full.KL = evalRun{Policy: "full"}, ptr(1.0), ptr(0.0)
	full.KLPositions, full.DeltaP = []float64{0, 0}, []float64{0, 0}
	empty := fidelityLine{ID: "cnndm-0001", evalRun: evalRun{Policy: "h2o", Budget: ptr(0.5)}, evalSetting: schemaSetting,
		PromptTokens: 30, KVCells: 15, KVBytes: 345_600}
	return []any{full, f, empty}
}

// schemaSparsity is sparsity.jsonl.
func schemaSparsity() []any {
	return []any{sparsityLine{ID: "cnndm-0000", evalSetting: schemaSetting, Layer: 3, Rows: 1152, Cells: 812.5, Share90: 0.25}}
}

// schemaAnswers is answers.jsonl: a multiple-choice question on the full cache, at a budget and
// in a quantized cache (gold and logprobs set, no text), a recall question (text set, no gold nor
// logprobs), and a retrieval question (references, task and depth set).
func schemaAnswers() []any {
	choice := evalAnswer{ID: "quality-00-03", Document: "quality-00", Set: "quality",
		evalRun: evalRun{Policy: "h2o", Budget: ptr(0.5)}, evalSetting: schemaSetting, Kind: "choice", PromptTokens: 6120,
		KVCells: 3060, KVBytes: 36_126_720, Answer: "B", Gold: ptr("A"), Logprobs: map[string]float64{"A": -1.25, "B": -0.75},
		Reference: "(A) ..."}
	full := choice
	full.evalRun, full.Answer, full.KVCells, full.KVBytes = evalRun{Policy: "full"}, "A", 6121, 72_266_496
	peer := full
	peer.evalRun, peer.KVBytes = evalRun{Policy: "kv-q8_0"}, 38_391_576
	recall := evalAnswer{ID: "quality-00-04", Document: "quality-00", Set: "quality",
		evalRun: evalRun{Policy: "keyformer", Budget: ptr(0.5)}, evalSetting: schemaSetting, Kind: "recall", PromptTokens: 6130,
		KVCells: 3065, KVBytes: 36_185_760, Answer: "The future of space tourism.", Text: ptr("The future of space tourism."),
		Reference: "The future of space tourism"}
	needle := recall
	needle.ID, needle.Document, needle.Set = "retrieval-4096-niah_multikey-000-q03", "retrieval-4096-niah_multikey-000", "retrieval-4096"
	needle.Answer, needle.Text = "4820391", ptr("4820391")
	needle.Reference, needle.References, needle.Task, needle.Depth = "4820391", []string{"4820391"}, ptr("niah_multikey"), ptr(0.4375)
	return []any{full, choice, peer, recall, needle}
}

// schemaBench is bench.json: plain llama.cpp (budget, observe time and ideal speedup null) and
// a policy at a budget.
func schemaBench() benchReport {
	return benchReport{Model: "smollm2", Machine: "2 cores", Gen: 32, Repeats: 3, NUbatch: 512, Threads: 2,
		WeightBytes: 270_000_000, KVBytesPerCell: 30720,
		Rows: []benchRow{
			{Context: 4096, Config: "none", PromptTokens: 4096, PrefillTokPerS: 500.5, DecodeTokPerS: 20.5,
				DecodeMsPerToken: 48.75, KVCells: 4128, KVBytes: 126_812_160, KVCellsPeak: 4128, KVCellsEnd: 4128,
				Speedup: 1},
			{Context: 4096, Config: "keyformer 0.5", Budget: ptr(0.5), PromptTokens: 4096, PrefillTokPerS: 480.25,
				DecodeTokPerS: 30.5, DecodeMsPerToken: 32.75, KVCells: 2080, KVBytes: 63_897_600, KVCellsPeak: 2560,
				KVCellsEnd: 2080, ObserveMsPerToken: ptr(1.5), Speedup: 1.5, IdealSpeedup: ptr(1.875)},
		},
		HookOverhead: map[string]float64{"4096": 0.03}, HookOverheadAll: map[string]float64{"4096": 0.06}}
}

// schemaThroughput is the --json line of `keyformer bench --throughput` (no Python reads it; the
// golden file pins its names all the same).
func schemaThroughput() throughputReport {
	return throughputReport{Model: "smollm2", Machine: "2 cores", Layout: "per-stream", Cells: 16384, PromptTokens: 1024, Gen: 32,
		NUbatch: 512, ThroughputRatio: ptr(1.75),
		Rows: []throughputRow{
			{Config: "none", Sequences: 15, CellsPerSeq: 1056, PrefillTokPerS: 400.5, TokPerS: 60.5,
				SeqMsPerToken: 247.75, PeakCells: 15840},
			{Config: "keyformer 0.5", Budget: ptr(0.5), Sequences: 30, CellsPerSeq: 528, PrefillTokPerS: 380.5,
				TokPerS: 105.5, SeqMsPerToken: 284.25, PeakCells: 15840, Evicted: 15360},
		}}
}

// requireAllSet fails unless every field of v (a struct) is set, so that a field added to a
// struct is added to its example too. Embedded structs (evalRun, whose budget and cache exclude
// each other in a record) are checked on a value of their own.
func requireAllSet(t *testing.T, name string, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	for i := 0; i < rv.NumField(); i++ {
		if f := rv.Type().Field(i); !f.Anonymous {
			require.False(t, rv.Field(i).IsZero(), "%s: the example leaves %s.%s unset", name, rv.Type().Name(), f.Name)
		}
	}
}

// checkGolden compares got with testdata/schema/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "schema", name)
	if *updateSchema {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -run TestSchema ./bindings/lab/cmd/keyformer/ -update")
	assert.Equal(t, string(want), string(got),
		"%s is not what the structs marshal to: if the change is meant, run go test -run TestSchema "+
			"./bindings/lab/cmd/keyformer/ -update and make keyformer_eval read the new schema", path)
}

// TestSchema marshals an example of every record keyformer_eval reads (and of the
// throughput report) and compares it with the golden files of testdata/schema/.
func TestSchema(t *testing.T) {
	jsonl := func(lines []any) []byte {
		var b []byte
		for _, l := range lines {
			line, err := json.Marshal(l)
			require.NoError(t, err)
			b = append(append(b, line...), '\n')
		}
		return b
	}
	object := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return append(b, '\n')
	}

	requireAllSet(t, "generations", schemaGenerations()[1])
	requireAllSet(t, "runs", evalRun{Policy: "keyformer", Budget: ptr(0.5), Cache: ptr(2048)})
	requireAllSet(t, "settings", evalSetting{Reading: readingWhole, InstructionInPrompt: true})
	requireAllSet(t, "fidelity", schemaFidelity()[1])
	requireAllSet(t, "sparsity", schemaSparsity()[0])
	answers := schemaAnswers()
	choice, needle := answers[1].(evalAnswer), answers[4].(evalAnswer)
	choice.Text, choice.References, choice.Task, choice.Depth = needle.Text, needle.References, needle.Task, needle.Depth
	requireAllSet(t, "answers", choice)
	bench := schemaBench()
	requireAllSet(t, "bench", bench)
	requireAllSet(t, "bench", bench.Rows[1])
	throughput := schemaThroughput()
	requireAllSet(t, "throughput", throughput)
	requireAllSet(t, "throughput", throughput.Rows[1])

	checkGolden(t, "generations.jsonl", jsonl(schemaGenerations()))
	checkGolden(t, "generations-long.jsonl", jsonl(schemaGenerationsLong()))
	checkGolden(t, "fidelity.jsonl", jsonl(schemaFidelity()))
	checkGolden(t, "sparsity.jsonl", jsonl(schemaSparsity()))
	checkGolden(t, "answers.jsonl", jsonl(answers))
	checkGolden(t, "bench.json", object(bench))
	checkGolden(t, "throughput.json", object(throughput))
}
