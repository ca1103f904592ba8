package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
)

// Question sets: a document is read once per run (compressed to the run's budget before any
// question is seen) and every question is then asked from that same compressed cache.

// choiceHint follows a multiple-choice question, so that the answer starts with the letter.
const choiceHint = "\n\nAnswer with the letter (A, B, C or D) of the correct option."

// recallTokens is the most tokens generated for an open (recall) answer, unless the question says.
const recallTokens = 32

// answerTokens is the most tokens a recall answer to q may take (the room a cache keeps for any
// answer).
func (q evalQuestion) answerTokens() int {
	if q.MaxNewTokens > 0 {
		return q.MaxNewTokens
	}
	return recallTokens
}

// choiceLetters are the options of a multiple-choice question.
var choiceLetters = []string{"A", "B", "C", "D"}

// questionPrompt is a question-set record tokenized: the document's part of the chat prompt,
// then each question's part (the rest of the user turn and the assistant turn's opening).
type questionPrompt struct {
	document  []int32
	questions [][]int32
	letters   []int32 // the tokens of choiceLetters
}

// newQuestionPrompt formats each question of r with the model's chat template, as one user turn
// holding the document, a blank line and the question, and splits it where the document ends.
func newQuestionPrompt(m *llama.Model, r evalRecord) (*questionPrompt, error) {
	qp := &questionPrompt{}
	for _, q := range r.Questions {
		text := q.Instruction
		if q.Answer != "" {
			text += choiceHint
		}
		doc, tail, err := generate.ChatPromptParts(m, r.Document, text)
		if err != nil {
			return nil, err
		}
		if qp.document == nil {
			qp.document = doc
		}
		qp.questions = append(qp.questions, tail)
	}
	for _, l := range choiceLetters {
		t, err := m.Tokenize(l, false, false)
		if err != nil {
			return nil, err
		}
		if len(t) != 1 {
			return nil, fmt.Errorf("the answer letter %q is %d tokens for this model, not one", l, len(t))
		}
		qp.letters = append(qp.letters, t[0])
	}
	return qp, nil
}

// questions runs the record's missing runs: for each, the document is read (the compressed cache),
// then every question not yet answered under that run is continued from it.
func (e *evaluation) questions(r evalRecord) error {
	runs := e.missing(r)
	if len(runs) == 0 {
		return nil
	}
	qp, err := newQuestionPrompt(e.model, r)
	if err != nil {
		return err
	}
	room, newTokens := 0, 0
	for i, q := range qp.questions {
		n := r.Questions[i].answerTokens()
		room, newTokens = max(room, len(q)+n), max(newTokens, n)
	}
	rd := e.reading(qp.document, room, newTokens)
	for _, run := range runs {
		if run.Cache == nil && !e.fits(r, len(qp.document)+room, []evalRun{run}) {
			continue
		}
		for i, q := range r.Questions {
			if e.done[run.key(q.ID)] {
				continue
			}
			a, err := e.answer(rd, run, qp, i, q)
			if err != nil {
				return fmt.Errorf("run %s: %w", run.key(q.ID), err)
			}
			a.Document, a.Set, a.KVBytes = r.ID, e.set, e.kvBytes(run, a.KVCells)
			if err := e.write(a); err != nil {
				return err
			}
			if run.full() {
				e.fullAnswers[q.ID] = a.Answer
			}
		}
	}
	return nil
}

// answer asks question i under run: a multiple-choice question is answered by the letter with
// the highest log-probability as the first token of the answer; an open one by a greedy answer.
func (e *evaluation) answer(rd *reading, run evalRun, qp *questionPrompt, i int, q evalQuestion) (evalAnswer, error) {
	a := evalAnswer{ID: q.ID, evalRun: run, evalSetting: e.plan.setting, PromptTokens: len(qp.document), Reference: q.Reference,
		References: q.References, Depth: q.Depth}
	if q.Task != "" {
		a.Task = &q.Task
	}
	probe, err := e.oracleProbe(run, qp.questions[i], q)
	if err != nil {
		return a, err
	}
	if q.Answer == "" {
		a.Kind = "recall"
		res, err := rd.continuation(run, qp.questions[i], generate.Options{MaxNew: q.answerTokens(), StopAtEOG: true, Probe: probe})
		if err != nil {
			return a, err
		}
		text := strings.TrimSpace(e.model.Detokenize(res.Tokens, true, false))
		a.KVCells, a.Answer, a.Text = res.PeakCells, text, &text
		return a, nil
	}
	a.Kind, a.Gold, a.Logprobs = "choice", &q.Answer, map[string]float64{}
	o := generate.Options{MaxNew: 1, Probe: probe, Logits: func(_ int, logits []float32) error {
		lp := logSoftmax(nil, logits)
		best := float32(0)
		for j, tok := range qp.letters {
			a.Logprobs[choiceLetters[j]] = float64(lp[tok])
			if j == 0 || lp[tok] > best {
				a.Answer, best = choiceLetters[j], lp[tok]
			}
		}
		return nil
	}}
	res, err := rd.continuation(run, qp.questions[i], o)
	a.KVCells = res.PeakCells
	return a, err
}

// oracleProbe returns what an oracle run scores the document by before it evicts (nil for any
// other run): the question's tokens, then the full cache's answer to it.
func (e *evaluation) oracleProbe(run evalRun, question []int32, q evalQuestion) ([]int32, error) {
	if spec, err := parsePolicy(run.Policy); run.full() || err != nil || !spec.oracle {
		return nil, nil
	}
	answer, ok := e.fullAnswers[q.ID]
	if !ok {
		return nil, fmt.Errorf("the oracle scores by the full cache's answer, and question %s has none", q.ID)
	}
	tokens, err := e.model.Tokenize(answer, false, false)
	return slices.Concat(question, tokens), err
}
