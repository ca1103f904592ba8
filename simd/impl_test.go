package simd

// impl is one implementation of the kernels.
type impl struct {
	name         string
	gumbelScores func(dst, src []float32, invTau float32, key Key, flags Flags) (float32, bool)
	addScaled    func(acc, x []float32, a float32)
	argmin       func(x []float32) int
}

// implementations lists the kernels available on this CPU: the Go twins
// ("generic") always, and the assembly ("asm") when it can run here.
func implementations() []impl {
	list := []impl{{"generic", gumbelScoresGeneric, addScaledGeneric, argminGeneric}}
	if hasAsm {
		list = append(list, impl{"asm", gumbelScoresAsm, addScaledAsm, argminAsm})
	}
	return list
}
