package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestServeLaunch(t *testing.T) {
	preload := filepath.Join(t.TempDir(), "libkeyformer-preload.so")
	require.NoError(t, os.WriteFile(preload, nil, 0o644))
	env := []string{"HOME=/h", "LD_PRELOAD=/other.so", "KEYFORMER_BUDGET=9", "KEYFORMER_WINDOW=64"}
	l, err := serveLaunchOf([]string{"--budget", "512", "--policy", "TOVA", "--server", "/bin/true",
		"--preload", preload, "--", "-m", "model.gguf", "-np", "4"}, env, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/bin/true", l.Path)
	assert.Equal(t, []string{"/bin/true", "-m", "model.gguf", "-np", "4"}, l.Argv)
	assert.ElementsMatch(t, []string{"HOME=/h", "KEYFORMER_WINDOW=64", "LD_PRELOAD=" + preload + ":/other.so",
		"KEYFORMER_BUDGET=512", "KEYFORMER_POLICY=TOVA"}, l.Env)

	// no policy, no stats: the variables are unset, not empty; the server's arguments may be none
	l, err = serveLaunchOf([]string{"--server", "/bin/true", "--preload", preload}, []string{"KEYFORMER_POLICY=h2o"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"/bin/true"}, l.Argv)
	assert.ElementsMatch(t, []string{"LD_PRELOAD=" + preload, "KEYFORMER_BUDGET=2048"}, l.Env)
}

func TestServeLaunchRefuses(t *testing.T) {
	preload := filepath.Join(t.TempDir(), "libkeyformer-preload.so")
	require.NoError(t, os.WriteFile(preload, nil, 0o644))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--budget", "0"}, "--budget 0"},
		{[]string{"--policy", "lru"}, "unknown policy"},
		{[]string{"-m", "model.gguf"}, "flag provided but not defined"},
		{[]string{"--", "-m", "x"}, ""}, // accepted: checks that the cases above fail for their own reason
		{[]string{"--budget", "64", "model.gguf"}, "after --"},
		{[]string{"--preload", preload + ".missing"}, "make lib"},
		{[]string{"--server", "/no/such/llama-server"}, "--server"},
	} {
		args := append([]string{"--server", "/bin/true", "--preload", preload}, c.args...)
		_, err := serveLaunchOf(args, nil, io.Discard)
		if c.want == "" {
			assert.NoError(t, err, c.args)
			continue
		}
		if assert.Error(t, err, c.args) {
			assert.True(t, strings.Contains(err.Error(), c.want), "%v: %v", c.args, err)
		}
	}
}
