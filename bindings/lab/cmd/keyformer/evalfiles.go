package main

// The files of `keyformer eval` and `keyformer tune`: the dataset it reads, the JSONL results it
// writes (one line per record or question and run), and resuming from those.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/keyformer/keyformer/keyformer"
)

// evalRecord is one line of an evaluation dataset (the format of ../shared/datasets/*.jsonl): a
// document with an instruction, a reference and a generation length (summaries), or a document
// with a list of questions (question sets).
type evalRecord struct {
	ID           string         `json:"id"`
	Document     string         `json:"document"`
	Instruction  string         `json:"instruction"`
	Reference    string         `json:"reference"`
	MaxNewTokens int            `json:"max_new_tokens"`
	Questions    []evalQuestion `json:"questions"`
}

// evalQuestion is one question of a question-set record: the question (with its lettered options
// for multiple choice), the published reference answer, and for multiple choice the correct letter.
// Retrieval sets (`python -m keyformer_eval make-retrieval`) add the values an answer must
// recall, the task, where the needle sits and the answer's length.
type evalQuestion struct {
	ID           string   `json:"id"`
	Instruction  string   `json:"instruction"`
	Reference    string   `json:"reference"`
	Answer       string   `json:"answer"`
	References   []string `json:"references"`     // every value the answer must contain (optional)
	Task         string   `json:"task"`           // e.g. niah_single (optional)
	Depth        *float64 `json:"depth"`          // the needle's place in the document, 0..1 (optional)
	MaxNewTokens int      `json:"max_new_tokens"` // recall: tokens to generate at most (0: recallTokens)
}

// units returns the ids a record's results are written under: its questions', or its own.
func (r evalRecord) units() []string {
	if r.Questions == nil {
		return []string{r.ID}
	}
	ids := make([]string, len(r.Questions))
	for i, q := range r.Questions {
		ids[i] = q.ID
	}
	return ids
}

// evalRun names one generation of a record: a policy (a keyformer policy, "full" or
// "context-shift") at a budget (a fraction of the prompt, quality mode) or a cache size in cells
// (long-document mode). The full cache has neither.
type evalRun struct {
	Policy string   `json:"policy"`
	Budget *float64 `json:"budget"`
	Cache  *int     `json:"cache"`
}

// key identifies the run of a record or question id.
func (r evalRun) key(id string) string {
	b, c := "-", "-"
	if r.Budget != nil {
		b = strconv.FormatFloat(*r.Budget, 'g', -1, 64)
	}
	if r.Cache != nil {
		c = strconv.Itoa(*r.Cache)
	}
	return id + "|" + r.Policy + "/" + b + "/" + c
}

// full reports whether the run is the full cache.
func (r evalRun) full() bool { return r.Policy == keyformer.PolicyFull.String() }

// evalGeneration is one line of DIR/generations.jsonl, what keyformer_eval scores.
type evalGeneration struct {
	ID string `json:"id"`
	evalRun
	evalSetting
	PromptTokens    int     `json:"prompt_tokens"`
	KVCells         int     `json:"kv_cells"`
	KVBytes         int64   `json:"kv_bytes"` // the KV cache at its peak: kv_cells at the run's cache type
	GeneratedTokens int     `json:"generated_tokens"`
	DecodeTokPerS   float64 `json:"decode_tok_per_s"`
	Text            string  `json:"text"`
	Reference       string  `json:"reference"`
}

// The metrics of `keyformer eval`.
const (
	metricROUGE     = "rouge"     // greedy generations scored with ROUGE
	metricFidelity  = "fidelity"  // teacher-forced agreement with the full cache
	metricQuestions = "questions" // question sets (chosen by the data, not by --metric)
)

// metricFiles are the files each metric writes its results to, one JSON line per record or
// question and run.
var metricFiles = map[string]string{
	metricROUGE: "generations.jsonl", metricFidelity: "fidelity.jsonl", metricQuestions: "answers.jsonl",
}

// check reports what is wrong with a question.
func (q evalQuestion) check() error {
	switch {
	case q.ID == "":
		return errors.New("no id")
	case strings.TrimSpace(q.Instruction) == "":
		return errors.New("no instruction")
	case q.Reference == "":
		return errors.New("no reference")
	case q.Answer != "" && !strings.Contains("ABCD", q.Answer) || len(q.Answer) > 1:
		return fmt.Errorf("answer %q is not a letter A to D", q.Answer)
	case q.Answer != "" && (q.References != nil || q.MaxNewTokens != 0):
		return errors.New("a multiple-choice question has no references or max_new_tokens")
	case slices.Contains(q.References, ""):
		return errors.New("an empty reference")
	case q.Depth != nil && !(*q.Depth >= 0 && *q.Depth <= 1):
		return fmt.Errorf("depth %v is not in [0, 1]", *q.Depth)
	case q.MaxNewTokens < 0:
		return fmt.Errorf("max_new_tokens %d is negative", q.MaxNewTokens)
	}
	return nil
}

// readRecords reads the first limit records (0: all) of a dataset, checking every field; with
// tasks, only the questions of those tasks, and the records that have any.
func readRecords(path string, limit int, tasks []string) ([]evalRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	var records []evalRecord
	for n, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if limit > 0 && len(records) == limit {
			break
		}
		var r evalRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("eval: %s:%d: %w", path, n+1, err)
		}
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("eval: %s:%d: record %q: %w", path, n+1, r.ID, err)
		}
		if len(records) > 0 && (r.Questions == nil) != (records[0].Questions == nil) {
			return nil, fmt.Errorf("eval: %s:%d: record %q: a question set and a summary set mixed in one file", path, n+1, r.ID)
		}
		if tasks != nil {
			if r.Questions == nil {
				return nil, fmt.Errorf("eval: --tasks: %s is not a question set", path)
			}
			r.Questions = slices.DeleteFunc(r.Questions, func(q evalQuestion) bool { return !slices.Contains(tasks, q.Task) })
			if len(r.Questions) == 0 {
				continue
			}
		}
		records = append(records, r)
	}
	if len(records) == 0 {
		return nil, fmt.Errorf("eval: %s holds no records (of tasks %v)", path, tasks)
	}
	return records, nil
}

// check reports what is missing from a record.
func (r evalRecord) check() error {
	switch {
	case r.ID == "":
		return errors.New("no id")
	case strings.TrimSpace(r.Document) == "":
		return errors.New("empty document")
	case r.Questions != nil:
		if len(r.Questions) == 0 {
			return errors.New("an empty list of questions")
		}
		for i, q := range r.Questions {
			if err := q.check(); err != nil {
				return fmt.Errorf("question %d %q: %w", i, q.ID, err)
			}
		}
		return nil
	case r.Reference == "":
		return errors.New("no reference")
	case r.MaxNewTokens <= 0:
		return fmt.Errorf("max_new_tokens %d is not positive", r.MaxNewTokens)
	}
	return nil
}

// openResults opens a results file (generations.jsonl and the like) for appending and returns
// the runs it holds, by id and run, and the full cache's answers by id (answers.jsonl's). A last
// line cut short by an interrupted run is removed. Every line must have been written in setting:
// one file holds one way of reading.
func openResults(path string, setting evalSetting) (done map[string]bool, full map[string]string, w *os.File, err error) {
	done, full = map[string]bool{}, map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, err
	}
	complete := bytes.LastIndexByte(b, '\n') + 1
	sc := bufio.NewScanner(bytes.NewReader(b[:complete]))
	sc.Buffer(nil, 1<<24)
	for n := 1; sc.Scan(); n++ {
		var g struct {
			ID string `json:"id"`
			evalRun
			evalSetting
			Answer string `json:"answer"`
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			return nil, nil, nil, fmt.Errorf("eval: %s:%d: %w (delete the file to start over)", path, n, err)
		}
		if g.evalSetting != setting {
			return nil, nil, nil, fmt.Errorf("eval: %s:%d was written with %s, not %s: give another --out (or delete the file to start over)",
				path, n, g.evalSetting, setting)
		}
		done[g.key(g.ID)] = true
		if g.full() {
			full[g.ID] = g.Answer
		}
	}
	w, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		if err = w.Truncate(int64(complete)); err == nil {
			_, err = w.Seek(int64(complete), io.SeekStart)
		}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("eval: %w", err)
	}
	return done, full, w, nil
}

// writeResult appends one line and syncs it, so that a resumed run finds it.
func writeResult(w *os.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	return w.Sync()
}

// fidelityLine is one line of DIR/fidelity.jsonl: how closely one run follows the full cache on
// one record, teacher-forced (keyformer_eval fidelity reads it). The means are null when
// there was nothing to average.
type fidelityLine struct {
	ID string `json:"id"`
	evalRun
	evalSetting
	PromptTokens int      `json:"prompt_tokens"`
	KVCells      int      `json:"kv_cells"`
	KVBytes      int64    `json:"kv_bytes"`
	Positions    int      `json:"positions"` // teacher tokens forced
	Top1         *float64 `json:"top1"`      // share of positions whose argmax is the teacher's token
	KL           *float64 `json:"kl"`        // mean KL(full || run) of the next-token distributions, nats
	NLL          *float64 `json:"nll"`       // mean negative log-likelihood of the teacher's tokens, nats
	RefTokens    int      `json:"ref_tokens"`
	RefNLL       *float64 `json:"ref_nll"` // mean negative log-likelihood of the reference's tokens, nats
	// per teacher position, llama-perplexity --kl-divergence's quantities: KL(full || run), and
	// the run's probability of the teacher's token less the full cache's
	KLPositions []float64 `json:"kl_positions"`
	DeltaP      []float64 `json:"delta_p"`
}

// evalAnswer is one line of DIR/answers.jsonl: one run's answer to one question
// (keyformer_eval questions scores it).
type evalAnswer struct {
	ID       string `json:"id"`       // the question's id
	Document string `json:"document"` // the record's id
	Set      string `json:"set"`      // the dataset's name
	evalRun
	evalSetting
	Kind         string             `json:"kind"` // "choice" (an answer letter is known) or "recall"
	PromptTokens int                `json:"prompt_tokens"`
	KVCells      int                `json:"kv_cells"`
	KVBytes      int64              `json:"kv_bytes"`
	Answer       string             `json:"answer"` // the letter with the highest log-probability, or the generated text
	Gold         *string            `json:"gold"`
	Logprobs     map[string]float64 `json:"logprobs"` // choice: each letter's log-probability as the answer's first token
	Text         *string            `json:"text"`     // recall: the generated answer
	Reference    string             `json:"reference"`
	References   []string           `json:"references"` // the question's values to recall, or null
	Task         *string            `json:"task"`       // the question's task, or null
	Depth        *float64           `json:"depth"`      // where the needle sits, or null
}

// sparsityLine is one line of DIR/sparsity.jsonl: on one record, one layer's attention while the
// full cache generated, as the share of live cells holding 90% of a row's attention.
type sparsityLine struct {
	ID string `json:"id"`
	evalSetting
	Layer   int     `json:"layer"`
	Rows    int     `json:"rows"`    // attention rows measured (generated tokens x query heads)
	Cells   float64 `json:"cells"`   // mean live cells per row
	Share90 float64 `json:"share90"` // mean share of the live cells holding 90% of a row's attention
}
