//go:build linux || darwin

package generate

import _ "embed"

// SampleDocument is the built-in document: a short history of a lighthouse, about 1,300 tokens,
// with facts spread through it so that a question can depend on a part a policy might drop.
//
//go:embed sample.txt
var SampleDocument string

// SampleQuestion asks about a fact in the middle of SampleDocument.
const SampleQuestion = "Who converted the Calder Bay Light to electricity, in which year, and how far could the electric light be seen?"
