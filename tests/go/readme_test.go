package abitest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeSnippetsAreTheTestedFiles keeps the README's C code true: every C block must appear
// verbatim in one of the C files ctest compiles and runs.
func TestReadmeSnippetsAreTheTestedFiles(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	var sources []string
	for _, f := range []string{"../c/readme_snippet.c", "../c/readme_llama.c"} {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		sources = append(sources, string(b))
	}
	blocks := regexp.MustCompile("(?s)```c\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	require.Len(t, blocks, 2, "the README's C blocks")
	for _, b := range blocks {
		found := false
		for _, src := range sources {
			found = found || strings.Contains(src, strings.TrimSpace(b[1]))
		}
		assert.True(t, found, "README block not in a tested file:\n%s", b[1])
	}
	lines := strings.Count(strings.TrimSpace(blocks[0][1]), "\n") + 1
	assert.LessOrEqual(t, lines, 16, "the C/C++ snippet stays short")
}

// TestReadmeIsShort keeps the README a user reads top to bottom: numbers and manuals live in docs/.
func TestReadmeIsShort(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Less(t, strings.Count(string(readme), "\n"), 200, "README.md's lines (move detail to docs/)")
}
