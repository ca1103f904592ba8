package main

// What `keyformer bench` measures at one context: every configuration reads the prompt in its own
// session, then all decode in turns.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyformer/keyformer/bindings/lab/generate"
)

// benchSample is what one configuration measured at one context in one repeat.
type benchSample struct {
	prefill   float64 // prompt tokens/s
	step      float64 // median decode step, seconds
	observe   float64 // the adapter's time observing attention per decode step, seconds
	nCtx      int     // KV cells allocated
	peak, end int     // KV cells held at most, and after decoding
}

// measureContext creates a session per configuration for l.prompt, reads the prompt in each in
// turn, then decodes f.maxNew tokens in all of them, one token each in turn.
func measureContext(f *runFlags, l *loaded, configs []benchConfig, tag string, progress io.Writer) ([]benchSample, error) {
	type running struct {
		s      *generate.Session
		g      *generate.Generation
		before time.Duration
	}
	runs := make([]*running, len(configs))
	defer func() {
		for _, r := range runs {
			if r != nil {
				r.s.Close()
			}
		}
	}()
	observe := f.observe
	defer func() { f.observe = observe }()
	for i, c := range configs {
		f.observe = c.observe
		f.budget = "1.0"
		if c.policy != nil && c.budget < 1 {
			f.budget = strconv.FormatFloat(c.budget, 'f', -1, 64)
		}
		fmt.Fprintf(progress, "bench: %s: %s reads %d prompt tokens\n", tag, c.name, len(l.prompt))
		s, o, err := f.session(l, c.policy, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		o.Progress = readingProgress(progress, "  ", 0)
		r := &running{s: s}
		runs[i] = r
		o.StopAtEOG = false
		if r.g, err = generate.Start(s.Ctx, s.Adapter, l.prompt, o); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		r.before = observed(s)
	}
	fmt.Fprintf(progress, "bench: %s: %d configurations decode %d tokens in turns\n", tag, len(configs), f.maxNew)
	decoded := newProgressLine(progress)
	for step, more := 1, true; more; step++ {
		more = false
		for i, r := range runs {
			m, err := r.g.Next()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", configs[i].name, err)
			}
			more = more || m
		}
		if step%16 == 0 || !more {
			text := fmt.Sprintf("  decoded %d/%d tokens", min(step, f.maxNew), f.maxNew)
			if more {
				decoded.update(text)
			} else {
				decoded.end(text)
			}
		}
	}
	samples := make([]benchSample, len(runs))
	for i, r := range runs {
		res := r.g.Result()
		end, err := trackerLen(r.s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", configs[i].name, err)
		}
		samples[i] = benchSample{prefill: res.PrefillTokensPerSecond(), step: res.MedianStep().Seconds(),
			observe: (observed(r.s) - r.before).Seconds() / float64(max(len(res.Steps), 1)),
			nCtx:    r.s.Ctx.NCtx(), peak: res.PeakCells, end: end}
	}
	return samples, nil
}

// cpuName returns the CPU's model name from /proc/cpuinfo followed by ", ", or "" where that is
// not available.
func cpuName() string {
	fh, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v) + ", "
		}
	}
	return ""
}

// trackerLen returns the cells sequence 0 holds (the context size without an adapter).
func trackerLen(s *generate.Session) (int, error) {
	if s.Adapter == nil {
		return int(s.Ctx.SeqPosMax(0)) + 1, nil
	}
	seq, err := s.Adapter.Tracker().Sequence(0)
	if err != nil {
		return 0, err
	}
	return seq.Len(), nil
}
