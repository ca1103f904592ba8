package main

import (
	"fmt"
	"math"

	"github.com/keyformer/keyformer/bindings/lab/generate"
	"github.com/keyformer/keyformer/bindings/llama"
	"github.com/keyformer/keyformer/keyformer"
)

// maxReferenceTokens caps the reference text forced through each run.
const maxReferenceTokens = 256

// forcedScore accumulates, position by position, a forced run's agreement with a teacher.
type forcedScore struct {
	n             int
	top1, kl, nll float64
	withTeacher   bool
	// per position with a teacher: the KL, and the run's probability of the forced token less the
	// teacher's
	kls, deltaP []float64
}

// add scores one position: lp are the run's log-probabilities, tok the forced token, and teacher
// the full cache's log-probabilities at the same position (nil: only the NLL of tok counts).
func (s *forcedScore) add(lp []float32, tok int32, teacher []float32) error {
	if int(tok) >= len(lp) || tok < 0 {
		return fmt.Errorf("token %d outside the vocabulary of %d", tok, len(lp))
	}
	s.n++
	s.nll -= float64(lp[tok])
	if teacher == nil {
		return nil
	}
	s.withTeacher = true
	if llama.Argmax(lp) == tok {
		s.top1++
	}
	kl := klDivergence(teacher, lp)
	s.kl += kl
	s.kls = append(s.kls, kl)
	s.deltaP = append(s.deltaP, math.Exp(float64(lp[tok]))-math.Exp(float64(teacher[tok])))
	return nil
}

// means returns the mean top-1 agreement, KL and NLL (nil where nothing was scored; top-1 and KL
// only with a teacher).
func (s *forcedScore) means() (top1, kl, nll *float64) {
	if s.n == 0 {
		return nil, nil, nil
	}
	mean := func(v float64) *float64 { m := v / float64(s.n); return &m }
	if s.withTeacher {
		top1, kl = mean(s.top1), mean(s.kl)
	}
	return top1, kl, mean(s.nll)
}

// logSoftmax writes the log-probabilities of logits into dst (resized) and returns it.
func logSoftmax(dst, logits []float32) []float32 {
	dst = append(dst[:0], logits...)
	hi := float32(math.Inf(-1))
	for _, x := range logits {
		hi = max(hi, x)
	}
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64(x - hi))
	}
	lse := float32(float64(hi) + math.Log(sum))
	for i := range dst {
		dst[i] -= lse
	}
	return dst
}

// klDivergence returns KL(p || q) for log-probabilities p and q of one vocabulary, in nats.
func klDivergence(p, q []float32) float64 {
	var kl float64
	for i, lp := range p {
		if pi := math.Exp(float64(lp)); pi > 0 {
			kl += pi * float64(lp-q[i])
		}
	}
	return max(kl, 0)
}

// fidelity runs the record's missing teacher-forced runs: the full cache generates greedily
// (the teacher, recomputed whenever a run is missing: it is deterministic), then every run is
// forced through the teacher's tokens and, separately, through the reference's, and its
// next-token distributions are compared with the teacher's at every position.
func (e *evaluation) fidelity(r evalRecord) error {
	runs, doc, instruction, err := e.summaryPrompt(r)
	if len(runs) == 0 || err != nil {
		return err
	}
	ref, err := e.model.Tokenize(r.Reference, false, false)
	if err != nil {
		return err
	}
	ref = ref[:min(len(ref), maxReferenceTokens)]
	room := len(instruction) + max(r.MaxNewTokens, len(ref))
	if !e.fits(r, len(doc)+room, runs) {
		return nil
	}
	rd := e.reading(doc, room, r.MaxNewTokens)
	full := evalRun{Policy: keyformer.PolicyFull.String()}
	var teacher [][]float32
	o := generate.Options{MaxNew: r.MaxNewTokens, StopAtEOG: true, Logits: func(_ int, logits []float32) error {
		teacher = append(teacher, logSoftmax(nil, logits))
		return nil
	}}
	if e.probe != nil {
		rd.probe = e.probe
	}
	res, err := rd.continuation(full, instruction, o)
	rd.probe = nil
	if err != nil {
		return fmt.Errorf("teacher: %w", err)
	}
	if e.probe != nil {
		if err := e.writeSparsity(r.ID); err != nil {
			return err
		}
	}
	tokens := res.Tokens
	for _, run := range runs {
		line := fidelityLine{ID: r.ID, evalRun: run, evalSetting: e.plan.setting, PromptTokens: len(doc) + len(instruction),
			Positions: len(tokens), RefTokens: len(ref)}
		var s forcedScore
		if run.full() { // forced through its own tokens, the full cache is the teacher
			for i, tok := range tokens {
				if err := s.add(teacher[i], tok, teacher[i]); err != nil {
					return err
				}
			}
			line.KVCells = res.PeakCells
		} else {
			var got generate.Result
			if s, got, err = rd.forced(run, instruction, tokens, teacher); err != nil {
				return fmt.Errorf("run %s: %w", run.key(r.ID), err)
			}
			line.KVCells = got.PeakCells
		}
		line.KVBytes = e.kvBytes(run, line.KVCells)
		line.Top1, line.KL, line.NLL = s.means()
		line.KLPositions, line.DeltaP = s.kls, s.deltaP
		rs, _, err := rd.forced(run, instruction, ref, nil)
		if err != nil {
			return fmt.Errorf("run %s, reference: %w", run.key(r.ID), err)
		}
		_, _, line.RefNLL = rs.means()
		if err := e.write(line); err != nil {
			return err
		}
	}
	return nil
}

// forced continues the prompt under run with suffix, forced through tokens, and scores every
// position against teacher, the full cache's log-probabilities at the same positions (nil: the
// NLL of tokens only).
func (rd *reading) forced(run evalRun, suffix, tokens []int32, teacher [][]float32) (forcedScore, generate.Result, error) {
	var s forcedScore
	var lp []float32
	res, err := rd.continuation(run, suffix, generate.Options{Force: tokens, Logits: func(i int, logits []float32) error {
		lp = logSoftmax(lp, logits)
		var t []float32
		if teacher != nil {
			t = teacher[i]
		}
		return s.add(lp, tokens[i], t)
	}})
	return s, res, err
}
