package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/keyformer/keyformer/bindings/internal/checkout"
	"github.com/keyformer/keyformer/keyformer"
)

// serveLaunch is what `keyformer serve` runs: the server binary, its argv and its environment.
type serveLaunch struct {
	Path string
	Argv []string
	Env  []string
}

// serveCmd replaces this process with llama-server, keyformer preloaded into it (see serveLaunchOf).
func serveCmd(args []string, stderr io.Writer) error {
	l, err := serveLaunchOf(args, os.Environ(), stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "keyformer serve: %s %s\n", l.Path, strings.Join(l.Argv[1:], " "))
	return syscall.Exec(l.Path, l.Argv, l.Env)
}

// serveLaunchOf reads `serve [flags] -- <llama-server arguments>` against the environment env:
// the server (--server, else the pinned release built by build/scripts/llama-server.sh, which builds it
// the first time with its progress on stderr), LD_PRELOAD with libkeyformer-preload.so in front
// (--preload, else build/lib/ of the checkout), and KEYFORMER_BUDGET, KEYFORMER_POLICY and
// KEYFORMER_STATS from the flags (other KEYFORMER_* variables of env pass through).
func serveLaunchOf(args, env []string, stderr io.Writer) (serveLaunch, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keyformer serve [flags] -- <llama-server arguments>\n\n"+
			"llama-server with a bounded KV cache per slot: keyformer keeps --budget cells of each sequence.\n\nflags:")
		fs.PrintDefaults()
	}
	budget := fs.Int("budget", 2048, "KV cells kept per sequence (slot)")
	policy := fs.String("policy", "", "eviction policy ("+strings.Join(keyformer.PolicyNames(), ", ")+"; empty: the library's default)")
	stats := fs.String("stats", "", "file to append one JSON line per eviction step to (KEYFORMER_STATS)")
	server := fs.String("server", "", "llama-server binary (empty: the pinned release, built by build/scripts/llama-server.sh)")
	preload := fs.String("preload", "", "libkeyformer-preload.so (empty: build/lib/ of this checkout)")
	var rest []string
	for i, a := range args {
		if a == "--" {
			args, rest = args[:i], args[i+1:]
			break
		}
	}
	if err := fs.Parse(args); err != nil {
		return serveLaunch{}, err
	}
	if fs.NArg() > 0 {
		return serveLaunch{}, fmt.Errorf("serve: %q: llama-server's arguments go after --", fs.Arg(0))
	}
	if *budget < 1 || *budget > 1<<24 {
		return serveLaunch{}, fmt.Errorf("serve: --budget %d: want 1 to %d cells", *budget, 1<<24)
	}
	if *policy != "" {
		if _, err := keyformer.ParsePolicy(*policy); err != nil {
			return serveLaunch{}, fmt.Errorf("serve: --policy: %w", err)
		}
	}
	root := checkout.Root()
	if *preload == "" {
		*preload = filepath.Join(root, "build", "lib", "libkeyformer-preload.so")
	}
	if _, err := os.Stat(*preload); err != nil {
		return serveLaunch{}, fmt.Errorf("serve: the preload library: %w (make lib builds it)", err)
	}
	preloadAbs, err := filepath.Abs(*preload)
	if err != nil {
		return serveLaunch{}, fmt.Errorf("serve: %w", err)
	}
	if *server == "" {
		if *server, err = pinnedServer(root, stderr); err != nil {
			return serveLaunch{}, err
		}
	}
	path, err := exec.LookPath(*server)
	if err != nil {
		return serveLaunch{}, fmt.Errorf("serve: --server: %w", err)
	}
	set := map[string]string{"KEYFORMER_BUDGET": strconv.Itoa(*budget), "KEYFORMER_POLICY": *policy,
		"KEYFORMER_STATS": *stats, "LD_PRELOAD": preloadAbs}
	var out []string
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; !ok {
			out = append(out, kv)
		} else if name == "LD_PRELOAD" && value != "" {
			set[name] = preloadAbs + ":" + value
		}
	}
	for _, name := range []string{"LD_PRELOAD", "KEYFORMER_BUDGET", "KEYFORMER_POLICY", "KEYFORMER_STATS"} {
		if set[name] != "" {
			out = append(out, name+"="+set[name])
		}
	}
	return serveLaunch{Path: path, Argv: append([]string{path}, rest...), Env: out}, nil
}

// pinnedServer runs build/scripts/llama-server.sh under root (which builds llama-server the first time)
// and returns the binary's path, its last line of output.
func pinnedServer(root string, stderr io.Writer) (string, error) {
	script := filepath.Join(root, "build", "scripts", "llama-server.sh")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("serve: no --server and no %s: %w", script, err)
	}
	cmd := exec.Command("bash", script)
	cmd.Dir, cmd.Stderr = root, stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("serve: build/scripts/llama-server.sh: %w", err)
	}
	out := strings.TrimSpace(string(b))
	if out == "" {
		return "", errors.New("serve: build/scripts/llama-server.sh printed no path")
	}
	return out[strings.LastIndexByte(out, '\n')+1:], nil
}
