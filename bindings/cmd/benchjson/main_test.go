package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `goos: linux
BenchmarkK/asm/n=4096-2   	 100	 2000 ns/op	 0.50 ns/elem
BenchmarkK/asm/n=4096-2   	 100	 2000 ns/op	 0.70 ns/elem
BenchmarkK/asm/n=4096-2   	 100	 2000 ns/op	 0.60 ns/elem
BenchmarkK/asm/n=40960-2   	 100	 2000 ns/op	 9.0 ns/elem
BenchmarkK/go/n=4096-2   	 100	 2000 ns/op	 3.0 ns/elem
BenchmarkK/go/n=4096-2   	 100	 2000 ns/op	 5.0 ns/elem
PASS
`

func TestMediansAndConstants(t *testing.T) {
	var out strings.Builder
	require.NoError(t, run(strings.NewReader(sample), &out, []string{"n=4096", "asm=K/asm/n=4096$:ns/elem", "go=K/go/n=4096$:ns/elem"}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Equal(t, `{"n":4096,"asm":0.6,"go":4}`, lines[len(lines)-1])
	assert.Contains(t, out.String(), "BenchmarkK/go/n=4096-2")
}

func TestErrors(t *testing.T) {
	for _, args := range [][]string{{"x"}, {"x=abc"}, {"x=[:ns"}, {"x=Nothing:ns/elem"}} {
		assert.Error(t, run(strings.NewReader(sample), &strings.Builder{}, args), args)
	}
}
