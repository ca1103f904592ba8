package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyformer/keyformer/keyformer"
)

// compare is `keyformer compare` (what `make run` shows): the same document and question answered
// by plain llama.cpp with the full cache and by Keyformer at a fraction of it, side by side with
// their memory and speed.
func compare(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	policyName := fs.String("policy", defaultPolicy(), "eviction policy to compare with the full cache")
	if err := fs.Parse(args); err != nil {
		return err
	}
	policy, err := keyformer.ParsePolicy(*policyName)
	if err != nil {
		return err
	}
	l, err := f.load()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "model %s, %d-token prompt (document + question), greedy, up to %d new tokens\n\n",
		f.model, len(l.prompt), f.maxNew)
	full, err := f.run(l, nil, os.Stderr)
	if err != nil {
		return fmt.Errorf("full cache: %w", err)
	}
	kf, err := f.run(l, &policy, os.Stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", policy, err)
	}
	left := "full cache (plain llama.cpp)"
	right := fmt.Sprintf("%s, budget %d tokens (%.0f%% of the prompt)", policy, kf.BudgetTokens, 100*float64(kf.BudgetTokens)/float64(len(l.prompt)))
	sideBySide(out, 48, left, right, full.Text, kf.Text)
	fmt.Fprintln(out)
	row := func(name, format string, a, b any) {
		fmt.Fprintf(out, "  %-24s %14s %14s\n", name, fmt.Sprintf(format, a), fmt.Sprintf(format, b))
	}
	fmt.Fprintf(out, "  %-24s %14s %14s\n", "", "full", policy)
	row("KV cells (peak)", "%d", full.KVCellsPeak, kf.KVCellsPeak)
	row("KV memory (peak)", "%.1f MiB", float64(full.KVBytesPeak)/(1<<20), float64(kf.KVBytesPeak)/(1<<20))
	row("cells evicted", "%d", full.Evicted, kf.Evicted)
	row("prefill (tokens/s)", "%.0f", full.PrefillTokPerS, kf.PrefillTokPerS)
	row("decode (tokens/s)", "%.1f", full.DecodeTokPerS, kf.DecodeTokPerS)
	return nil
}

// sideBySide prints two texts in columns of width characters under their titles.
func sideBySide(out io.Writer, width int, titleA, titleB, a, b string) {
	la, lb := wrap(titleA, width), wrap(titleB, width)
	la = append(la, strings.Repeat("-", width))
	lb = append(lb, strings.Repeat("-", width))
	for len(la) < len(lb) {
		la = append(la, "")
	}
	for len(lb) < len(la) {
		lb = append(lb, "")
	}
	la, lb = append(la, wrap(a, width)...), append(lb, wrap(b, width)...)
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		fmt.Fprintf(out, "%-*s | %s\n", width, x, y)
	}
}

// wrap breaks text into lines of at most width characters at spaces, keeping its line breaks.
func wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(strings.TrimSpace(text), "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len([]rune(line))+1+len([]rune(w)) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		lines = append(lines, line)
	}
	return lines
}
