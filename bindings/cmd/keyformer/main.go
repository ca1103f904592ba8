// Command keyformer runs Keyformer KV-cache eviction from the command line.
//
//	keyformer demo [--prompt N] [--budget F] [--gen N]   synthetic attention: what each policy keeps
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
	case "demo":
		err = demo(os.Args[2:], os.Stdout)
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
  demo   run every policy on a synthetic attention stream and show what each keeps`)
	os.Exit(2)
}
