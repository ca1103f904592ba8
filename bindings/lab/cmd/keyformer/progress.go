package main

// Progress on stderr: one line, redrawn in place on a terminal and printed as whole lines in a log,
// drawn the same way by generate, eval and bench.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progressLine draws one progress line on w: update redraws it in place (a carriage return, then
// the text), end draws it a last time and ends it with a newline. A line that does not redraw (w a
// log file or a pipe rather than a terminal) ignores update, prints whole lines with log instead,
// and ends with the last text alone, so that a log holds no carriage returns.
type progressLine struct {
	w      io.Writer
	redraw bool
}

// newProgressLine returns a line on w that redraws in place where w is a terminal.
func newProgressLine(w io.Writer) *progressLine {
	f, ok := w.(*os.File)
	if !ok {
		return &progressLine{w: w}
	}
	st, err := f.Stat()
	return &progressLine{w: w, redraw: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

// update redraws the line as text.
func (p *progressLine) update(text string) {
	if p.redraw {
		fmt.Fprint(p.w, "\r"+text)
	}
}

// log prints text as a line of its own where the line does not redraw.
func (p *progressLine) log(text string) {
	if !p.redraw {
		fmt.Fprintln(p.w, text)
	}
}

// end draws the line a last time as text and ends it.
func (p *progressLine) end(text string) {
	if p.redraw {
		text = "\r" + text
	}
	fmt.Fprintln(p.w, text)
}

// readingProgress returns a generate.Options.Progress showing on w, after prefix, the prompt
// tokens read so far, their share and the time since the call, for prompts longer than minTotal
// tokens; nil for a nil w.
func readingProgress(w io.Writer, prefix string, minTotal int) func(done, total int) {
	if w == nil {
		return nil
	}
	line, start := newProgressLine(w), time.Now()
	return func(done, total int) {
		if total <= minTotal {
			return
		}
		text := fmt.Sprintf("%s%5d/%d tokens (%3.0f%%) %5.1fs", prefix, done, total, 100*float64(done)/float64(total),
			time.Since(start).Seconds())
		if done == total {
			line.end(text)
		} else {
			line.update(text)
		}
	}
}

// progress shows how far an evaluation is: a bar with an estimate of the time left, redrawn on a
// terminal, a line per record elsewhere. The estimate extrapolates from the runs done in this
// invocation.
type progress struct {
	out      *progressLine
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
func newProgress(w io.Writer, records []evalRecord, runs []evalRun, done map[string]bool) *progress {
	p := &progress{out: newProgressLine(w), records: len(records), start: time.Now()}
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
	if p.ran > 0 {
		p.out.log(p.line())
	}
	p.recordNo, p.id = i+1, id
	p.out.update(p.line())
}

// add counts n runs done.
func (p *progress) add(n int) {
	p.done += n
	p.ran += n
	p.out.update(p.line())
}

// finish ends the bar.
func (p *progress) finish() {
	p.out.end(p.line())
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
