//go:build (linux || darwin) && !amd64 && !arm64

package llama

// askFilterABI0 is 0: no ask filter on this architecture, every ask enters Go.
var askFilterABI0 uintptr
