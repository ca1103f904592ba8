package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReadingProgress(t *testing.T) {
	var b bytes.Buffer
	show := readingProgress(&b, "  ", 10)
	show(5, 10)
	assert.Empty(t, b.String(), "a prompt of at most minTotal tokens shows nothing")
	show(5, 20)
	show(20, 20)
	assert.Regexp(t, `^\r      5/20 tokens \( 25%\)   0\.\ds\r     20/20 tokens \(100%\)   0\.\ds\n$`, b.String())
	assert.Nil(t, readingProgress(nil, "", 0))
}

func TestProgressLineInALog(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b}
	p.update("one")
	p.log("two")
	p.end("three")
	assert.Equal(t, "two\n\rthree\n", b.String(), "a log gets whole lines, no redraws")
	b.Reset()
	p = newProgressLine(&b)
	p.update("one")
	p.log("two")
	p.end("three")
	assert.Equal(t, "\rone\rthree\n", b.String())
}
