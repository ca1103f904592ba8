package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress draws a progress bar with an estimate of the time left on a terminal (a line per
// record elsewhere). The estimate extrapolates from the runs done in this invocation.
type progress struct {
	w        io.Writer
	tty      bool
	total    int
	done     int // runs done, including those a resumed run found
	ran      int // runs done by this invocation
	start    time.Time
	recordNo int
	records  int
	id       string
}

// newProgress starts the progress of running runs for every unit of every record (the record,
// or each of its questions), some of them done already.
func newProgress(w *os.File, records []evalRecord, runs []evalRun, done map[string]bool) *progress {
	st, err := w.Stat()
	p := &progress{w: w, tty: err == nil && st.Mode()&os.ModeCharDevice != 0, records: len(records), start: time.Now()}
	for _, r := range records {
		for _, id := range r.units() {
			for _, run := range runs {
				p.total++
				if done[run.key(id)] {
					p.done++
				}
			}
		}
	}
	return p
}

// record notes that record i (id) starts.
func (p *progress) record(i int, id string) {
	if !p.tty && p.ran > 0 {
		fmt.Fprintln(p.w, p.line())
	}
	p.recordNo, p.id = i+1, id
	if p.tty {
		fmt.Fprint(p.w, "\r"+p.line())
	}
}

// add counts n runs done.
func (p *progress) add(n int) {
	p.done += n
	p.ran += n
	if p.tty {
		fmt.Fprint(p.w, "\r"+p.line())
	}
}

// finish ends the bar.
func (p *progress) finish() {
	fmt.Fprintln(p.w, "\r"+p.line())
}

// line renders the bar.
func (p *progress) line() string {
	const width = 30
	frac := float64(p.done) / float64(max(p.total, 1))
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	elapsed := time.Since(p.start)
	eta := "--"
	if p.ran > 0 {
		eta = (time.Duration(float64(elapsed) / float64(p.ran) * float64(p.total-p.done))).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%d runs, record %d/%d %-12s %s elapsed, ETA %s   ",
		bar, 100*frac, p.done, p.total, p.recordNo, p.records, p.id, elapsed.Round(time.Second), eta)
}
