package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/keyformer"
)

// concentrationMass is the share of a row's attention whose cells tune counts (sparsity.jsonl's share90).
const concentrationMass = 0.9

// tuneCmd is `keyformer tune`: the fidelity sweep of `keyformer eval --metric fidelity` on the
// user's documents, then, per policy, the smallest budget whose top-1 agreement with the full
// cache reaches --target, with the plot; beside it, measured while the full cache generates, the
// share of cells that holds 90% of each layer's attention (why a budget is safe for the model).
// On a question set (a retrieval set, say) it runs the questions instead, and the budget is the
// smallest whose accuracy reaches --target times the full cache's.
func tuneCmd(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tune", flag.ContinueOnError)
	var o evalOptions
	o.register(fs)
	target := fs.Float64("target", 0.99, "top-1 agreement with the full cache to keep (0..1); on a question set, the share of the full cache's accuracy")
	asJSON := fs.Bool("json", false, "print the advice as one JSON object on the last line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.metric != metricFidelity && o.metric != metricROUGE {
		return fmt.Errorf("tune: --metric %q: tune always measures fidelity", o.metric)
	}
	if !(*target > 0 && *target <= 1) {
		return fmt.Errorf("tune: --target %v is not in (0, 1]", *target)
	}
	if o.data == "" {
		return errors.New("tune: --data is required")
	}
	first, err := readRecords(o.data, 1, nil)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	o.metric = metricFidelity
	var probe *keyformer.Concentration // the attention sparsity, beside a fidelity sweep
	if first[0].Questions != nil {
		o.metric = metricROUGE // a question set: eval answers its questions
	} else if probe, err = keyformer.NewConcentration(concentrationMass); err != nil {
		return err
	}
	if o.outDir == "" {
		o.outDir = filepath.Join(checkout.Root(), "build", "tune", strings.TrimSuffix(filepath.Base(o.f.model), ".gguf"),
			strings.TrimSuffix(filepath.Base(o.data), ".jsonl")+evalSetting{Reading: o.reading, InstructionInPrompt: o.instructionInPrompt}.tag())
	}
	dir, err := o.run(probe)
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	args = []string{"tune", dir, "--target", strconv.FormatFloat(*target, 'g', -1, 64)}
	if *asJSON {
		args = append(args, "--json")
	}
	return runEvaluate(out, args...)
}

// writeSparsity appends the probe's measurements of record id, one line per layer, unless the
// file has them already, and resets the probe.
func (e *evaluation) writeSparsity(id string) error {
	defer e.probe.Reset()
	if e.sparsityDone[evalRun{}.key(id)] {
		return nil
	}
	for layer, l := range e.probe.Layers() {
		if l.Rows == 0 {
			continue
		}
		line := sparsityLine{ID: id, evalSetting: e.plan.setting, Layer: layer, Rows: l.Rows, Cells: l.MeanCells(), Share90: l.MeanShare()}
		if err := writeResult(e.sparsity, line); err != nil {
			return err
		}
	}
	return nil
}

// openSparsity opens DIR/sparsity.jsonl beside the results when the evaluation has a probe.
func (e *evaluation) openSparsity(dir string) error {
	if e.probe == nil {
		return nil
	}
	var err error
	e.sparsityDone, _, e.sparsity, err = openResults(filepath.Join(dir, "sparsity.jsonl"), e.plan.setting)
	return err
}

// closeSparsity closes DIR/sparsity.jsonl if it is open.
func (e *evaluation) closeSparsity() {
	if e.sparsity != nil {
		e.sparsity.Close()
	}
}
