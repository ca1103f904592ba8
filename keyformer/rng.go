package keyformer

import "github.com/keyformer/keyformer/simd"

// rng is a splitmix64 stream: one per sequence, so that sequences draw independent noise and the
// same seed and inputs give the same evictions.
type rng struct{ state uint64 }

const golden = 0x9e3779b97f4a7c15

// mix64 is splitmix64's output function.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// newRNG returns the stream of sequence id under seed.
func newRNG(seed uint64, id int32) rng {
	return rng{state: mix64(seed^golden) ^ mix64(uint64(uint32(id))+golden)}
}

// next returns the next 64 random bits.
func (r *rng) next() uint64 {
	r.state += golden
	return mix64(r.state)
}

// rowKey returns the noise key of row i of an observation whose draw was base.
func rowKey(base uint64, i int) simd.Key {
	x := mix64(base + uint64(i)*golden)
	return simd.Key{A: uint32(x) | 1, B: uint32(x >> 32)}
}
