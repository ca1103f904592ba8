package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadingProgress(t *testing.T) {
	var b bytes.Buffer
	show := readingProgress(&b, "  ", 10)
	show(5, 10)
	assert.Empty(t, b.String(), "a prompt of at most minTotal tokens shows nothing")
	show(5, 20)
	show(20, 20)
	assert.Regexp(t, `^     20/20 tokens \(100%\)   0\.\ds\n$`, b.String(), "a buffer is no terminal: the last line only")
	assert.Nil(t, readingProgress(nil, "", 0))
}

func TestProgressLineInALog(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b}
	p.update("one")
	p.log("two")
	p.end("three")
	assert.Equal(t, "two\nthree\n", b.String(), "a log gets whole lines, no carriage returns")
	b.Reset()
	p = &progressLine{w: &b, redraw: true}
	p.update("one")
	p.log("two")
	p.end("three")
	assert.Equal(t, "\rone\rthree\n", b.String())
}

func TestProgressLineRedrawsOnATerminalOnly(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, newProgressLine(f).redraw, "a log file")
	assert.False(t, newProgressLine(&bytes.Buffer{}).redraw, "a buffer")
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		assert.True(t, newProgressLine(tty).redraw, "a terminal")
	}
}
