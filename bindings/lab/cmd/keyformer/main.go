// Command keyformer runs Keyformer KV-cache eviction from the command line.
//
//	keyformer compare [flags]   a document answered with the full cache and with Keyformer, side by side
//	keyformer generate [flags]  generate with one policy and budget (--json for a machine-readable line)
//	keyformer eval [flags]      ROUGE or teacher-forced fidelity of every policy x budget on a dataset, or question-set accuracy
//	keyformer tune [flags]      the smallest budget per policy that keeps top-1 agreement with the full cache, and attention sparsity
//	keyformer bench [flags]     prefill and decode speed, KV memory and hook overhead over contexts and budgets
//	keyformer demo [flags]      synthetic attention: what each policy keeps
//	keyformer serve [flags] -- <llama-server arguments>
//	                            llama-server with keyformer preloaded: a bounded KV cache per slot
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "compare":
		err = compare(os.Args[2:], os.Stdout)
	case "generate":
		err = generateCmd(os.Args[2:], os.Stdout)
	case "eval":
		err = evalCmd(os.Args[2:], os.Stdout)
	case "tune":
		err = tuneCmd(os.Args[2:], os.Stdout)
	case "bench":
		err = bench(os.Args[2:], os.Stdout, os.Stderr)
	case "demo":
		err = demo(os.Args[2:], os.Stdout)
	case "serve":
		err = serveCmd(os.Args[2:], os.Stderr)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "keyformer: unknown command %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyformer:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: keyformer COMMAND [flags]

commands:
  compare    answer a document's question with the full cache and with Keyformer, side by side
  generate   generate with one policy and budget (--json prints a machine-readable last line)
  eval       ROUGE (--metric fidelity: teacher-forced agreement with the full cache) of every policy x budget
             on a JSONL dataset (or at fixed cache sizes, with --cache); accuracy on a question set
  tune       per policy, the smallest budget that keeps top-1 agreement with the full cache (--target),
             and how concentrated the model's attention is on the given documents
  bench      prefill and decode speed, KV memory and hook overhead by context and budget, with a plot
  demo       run every policy on a synthetic attention stream and show what each keeps
  serve      llama-server (the pinned release, or --server) with keyformer preloaded: --budget cells per
             slot; llama-server's own arguments after --

run 'keyformer COMMAND -h' for a command's flags`)
	os.Exit(2)
}
