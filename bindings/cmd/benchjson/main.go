// Command benchjson reads `go test -bench` output on standard input, echoes it, and prints as its
// last line one JSON object holding, for each field given as an argument, the median of one
// benchmark metric over the repeated runs (-count).
//
// Usage:
//
//	go test -bench . -count 5 ./simd/ | benchjson n=4096 asm_ns_per_elem='GumbelScores/asm/n=4096$:ns/elem' ...
//
// An argument NAME=VALUE with a plain number adds a constant field; NAME='REGEXP:UNIT' adds the
// median of metric UNIT over the benchmarks whose name (without the -GOMAXPROCS suffix) matches
// REGEXP. A field that matches nothing is an error.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Stdin, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchjson:", err)
		os.Exit(1)
	}
}

// field is one output field: a constant or a metric of the matching benchmarks.
type field struct {
	name     string
	constant json.Number
	match    *regexp.Regexp
	unit     string
	values   []float64
}

func parseFields(args []string) ([]*field, error) {
	var fields []*field
	for _, a := range args {
		name, spec, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("argument %q is not NAME=VALUE", a)
		}
		f := &field{name: name}
		if _, err := strconv.ParseFloat(spec, 64); err == nil {
			f.constant = json.Number(spec)
		} else {
			i := strings.LastIndex(spec, ":")
			if i < 0 {
				return nil, fmt.Errorf("field %s: %q is neither a number nor REGEXP:UNIT", name, spec)
			}
			re, err := regexp.Compile(spec[:i])
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			f.match, f.unit = re, spec[i+1:]
		}
		fields = append(fields, f)
	}
	return fields, nil
}

var gomaxprocsSuffix = regexp.MustCompile(`-\d+$`)

func run(in io.Reader, out io.Writer, args []string) error {
	fields, err := parseFields(args)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		cols := strings.Fields(line)
		if len(cols) < 4 || !strings.HasPrefix(cols[0], "Benchmark") {
			continue
		}
		name := gomaxprocsSuffix.ReplaceAllString(cols[0], "")
		for _, f := range fields {
			if f.match == nil || !f.match.MatchString(name) {
				continue
			}
			for i := 2; i+1 < len(cols); i += 2 {
				if cols[i+1] == f.unit {
					if v, err := strconv.ParseFloat(cols[i], 64); err == nil {
						f.values = append(f.values, v)
					}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		v := f.constant
		if f.match != nil {
			if len(f.values) == 0 {
				return fmt.Errorf("field %s: no benchmark matched %q with unit %s", f.name, f.match, f.unit)
			}
			v = json.Number(strconv.FormatFloat(median(f.values), 'g', 4, 64))
		}
		fmt.Fprintf(&b, "%q:%s", f.name, v)
	}
	b.WriteByte('}')
	_, err = fmt.Fprintln(out, b.String())
	return err
}

// median returns the middle value (the mean of the two middle ones for an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
