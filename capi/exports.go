package main

/*
#include <stdint.h>
#include "keyformer.h"
*/
import "C"

import (
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unsafe"

	"github.com/keyformer/keyformer/keyformer"
)

// The smallest `size` each params struct may declare: its size in API version 1. Larger sizes
// (from newer headers) are accepted and the fields this library does not know are ignored; sizes
// above maxStructSize are taken for an uninitialised field. paramsSizeV2 is keyformer_params'
// size in version 2 (the observation schedule), paramsSizeV4 in version 4 (the ranking options)
// and paramsSizeV6 in version 6 (the prompt rows): a smaller size leaves those fields at their
// defaults.
const (
	paramsSizeV1    = unsafe.Offsetof(C.keyformer_params{}.observe_layer_stride)
	paramsSizeV2    = unsafe.Offsetof(C.keyformer_params{}.rank_mean_attention)
	paramsSizeV4    = unsafe.Offsetof(C.keyformer_params{}.observe_prompt_rows)
	paramsSizeV6    = C.sizeof_keyformer_params
	attentionSizeV1 = C.sizeof_keyformer_attention
	keysSizeV4      = C.sizeof_keyformer_keys
	maxStructSize   = 1 << 16
)

// maxExtent bounds the attention elements a call may span (4 TiB of floats), and maxStateBytes
// the size of a state to load, so that slices over caller memory stay representable.
const (
	maxExtent     = 1 << 40
	maxStateBytes = 1 << 40
)

// checkParamsSize validates keyformer_params' size: version 1's or version 2's (and 3's)
// exactly, or at least version 4's.
func checkParamsSize(size C.uint32_t) error {
	if s := uintptr(size); s < paramsSizeV6 && s != paramsSizeV1 && s != paramsSizeV2 && s != paramsSizeV4 {
		return invalid("keyformer_params->size is %d: neither version 1's %d, version 2's %d, version 4's %d nor at least sizeof(keyformer_params) = %d (set size = sizeof(keyformer_params))",
			size, paramsSizeV1, paramsSizeV2, paramsSizeV4, paramsSizeV6)
	}
	return checkSize("keyformer_params", size, paramsSizeV1)
}

// checkSize validates the size field of a params struct.
func checkSize(what string, size C.uint32_t, min uintptr) error {
	switch {
	case uintptr(size) < min:
		return invalid("%s->size is %d, smaller than sizeof(%s) = %d (set size = sizeof(%s))", what, size, what, min, what)
	case size > maxStructSize:
		return invalid("%s->size is %d, not a size of %s (uninitialised?)", what, size, what)
	}
	return nil
}

//export kfgo_last_error
func kfgo_last_error(h C.uintptr_t) (s *C.char) {
	defer func() {
		if recover() != nil {
			s = lastError(0)
		}
	}()
	return lastError(uintptr(h))
}

//export kfgo_default_params
func kfgo_default_params(p *C.keyformer_params) (st C.keyformer_status) {
	const name = "keyformer_default_params"
	defer func() {
		if r := recover(); r != nil {
			st = recovered(nil, name, r)
		}
	}()
	if p == nil {
		return report(nil, name, invalid("params is NULL"))
	}
	if err := checkParamsSize(p.size); err != nil {
		return report(nil, name, err)
	}
	d := keyformer.DefaultConfig(keyformer.Shape{})
	def := C.keyformer_params{
		size:            p.size,
		policy:          C.keyformer_policy(d.Policy),
		granularity:     C.keyformer_granularity(d.Granularity),
		budget_fraction: C.float(d.Budget.Fraction),
		window_fraction: C.float(d.Window.Fraction),
		n_sinks:         C.int32_t(d.Sinks),
		tau_init:        C.float(d.TauInit),
		tau_end:         C.float(d.TauEnd),
		n_new_tokens:    C.int32_t(d.NewTokens),
		noise:           boolInt(d.Noise),
		seed:            C.uint64_t(d.Seed),
	}
	if uintptr(p.size) < paramsSizeV4 {
		// A host of API version 3 or older wrote against Keyformer as the default (and may show
		// attention to it by hand): it keeps it.
		def.policy = C.KEYFORMER_POLICY_KEYFORMER
	}
	if uintptr(p.size) < paramsSizeV2 { // a version 1 host: its struct ends before the schedule
		copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), paramsSizeV1), unsafe.Slice((*byte)(unsafe.Pointer(&def)), paramsSizeV1))
		return statusOK
	}
	def.observe_layer_stride = C.int32_t(max(d.Observe.LayerStride, 1))
	def.observe_decode_stride = C.int32_t(max(d.Observe.DecodeStride, 1))
	def.evict_slack = C.int32_t(d.Observe.Slack)
	if uintptr(p.size) < paramsSizeV4 { // a version 2 or 3 host: its struct ends before the ranking
		copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), paramsSizeV2), unsafe.Slice((*byte)(unsafe.Pointer(&def)), paramsSizeV2))
		return statusOK
	}
	def.rank_mean_attention = boolInt(d.Ranking.MeanAttention)
	def.rank_span = C.int32_t(d.Ranking.Span)
	def.rank_keep_sinks = boolInt(d.Ranking.KeepSinks)
	if uintptr(p.size) < paramsSizeV6 { // a version 4 or 5 host: its struct ends before the prompt rows
		copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), paramsSizeV4), unsafe.Slice((*byte)(unsafe.Pointer(&def)), paramsSizeV4))
		return statusOK
	}
	def.observe_prompt_rows = C.int64_t(d.Observe.PromptRows)
	*p = def // fields of later versions, past sizeof, are left alone
	return statusOK
}

// float64From32 returns the float64 nearest to the decimal a C float was written as (0.7f gives
// 0.7, not 0.699999988), so that a fraction from C resolves to the same token count as the same
// fraction given to the Go API.
func float64From32(f C.float) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(f), 'g', -1, 32), 64)
	if err != nil { // NaN and infinities format as such and parse back; nothing else fails
		return float64(f)
	}
	return v
}

func boolInt(b bool) C.int32_t {
	if b {
		return 1
	}
	return 0
}

// configFields maps the field names in keyformer.Config's validation errors to keyformer_params'.
var configFields = strings.NewReplacer(
	"config: shape.layers:", "n_layer:",
	"config: shape.query_heads:", "n_head:",
	"config: shape.kv_heads:", "n_head_kv:",
	"config: budget:", "budget_tokens/budget_fraction:",
	"config: window:", "window_tokens/window_fraction:",
	"config: sinks:", "n_sinks:",
	"config: new_tokens:", "n_new_tokens:",
	"config: tau_init:", "tau_init:",
	"config: tau_end:", "tau_end:",
	"config: policy:", "policy:",
	"config: granularity:", "granularity:",
	"config: observe.layer_stride:", "observe_layer_stride:",
	"config: observe.layers", "observe_layers",
	"config: observe.decode_stride:", "observe_decode_stride:",
	"config: observe.slack:", "evict_slack:",
	"config: observe.prompt_rows:", "observe_prompt_rows:",
	"config: ranking.span:", "rank_span:",
	"config: ranking.mean_attention:", "rank_mean_attention:",
)

// config translates keyformer_params into a keyformer.Config (validated by keyformer.NewTracker).
func config(p *C.keyformer_params) (keyformer.Config, error) {
	if err := checkParamsSize(p.size); err != nil {
		return keyformer.Config{}, err
	}
	if p.noise != 0 && p.noise != 1 {
		return keyformer.Config{}, invalid("noise: %d is neither 0 nor 1", p.noise)
	}
	cfg := keyformer.Config{
		Policy:      keyformer.Policy(p.policy),
		Granularity: keyformer.Granularity(p.granularity),
		Shape:       keyformer.Shape{Layers: int(p.n_layer), QueryHeads: int(p.n_head), KVHeads: int(p.n_head_kv)},
		Sinks:       int(p.n_sinks),
		TauInit:     float64From32(p.tau_init),
		TauEnd:      float64From32(p.tau_end),
		NewTokens:   int(p.n_new_tokens),
		Noise:       p.noise == 1,
		Seed:        uint64(p.seed),
	}
	if p.budget_tokens != 0 {
		cfg.Budget = keyformer.Tokens(int(p.budget_tokens))
	} else {
		cfg.Budget = keyformer.Fraction(float64From32(p.budget_fraction))
	}
	if p.window_tokens != 0 {
		cfg.Window = keyformer.Tokens(int(p.window_tokens))
	} else {
		cfg.Window = keyformer.Fraction(float64From32(p.window_fraction))
	}
	if uintptr(p.size) < paramsSizeV2 {
		// A version 1 host shows every layer of every token and sized its cache for eviction at
		// every plan: it keeps version 1's behaviour.
		cfg.Observe = keyformer.Schedule{}
		return cfg, nil
	}
	switch {
	case p.n_observe_layers < 0 || p.n_observe_layers > maxLayers:
		return keyformer.Config{}, invalid("n_observe_layers: %d outside [0, %d]", p.n_observe_layers, maxLayers)
	case p.n_observe_layers > 0 && p.observe_layers == nil:
		return keyformer.Config{}, invalid("observe_layers is NULL but n_observe_layers is %d", p.n_observe_layers)
	}
	cfg.Observe = keyformer.Schedule{
		LayerStride:  int(p.observe_layer_stride),
		DecodeStride: int(p.observe_decode_stride),
		Slack:        int(p.evict_slack),
	}
	for _, l := range int32s(p.observe_layers, p.n_observe_layers) {
		cfg.Observe.Layers = append(cfg.Observe.Layers, int(l))
	}
	if uintptr(p.size) < paramsSizeV4 {
		return cfg, nil // a version 2 or 3 host: the published rankings
	}
	for _, f := range []struct {
		name string
		v    C.int32_t
	}{{"rank_mean_attention", p.rank_mean_attention}, {"rank_keep_sinks", p.rank_keep_sinks}} {
		if f.v != 0 && f.v != 1 {
			return keyformer.Config{}, invalid("%s: %d is neither 0 nor 1", f.name, f.v)
		}
	}
	cfg.Ranking = keyformer.Ranking{MeanAttention: p.rank_mean_attention == 1, Span: int(p.rank_span), KeepSinks: p.rank_keep_sinks == 1}
	if uintptr(p.size) < paramsSizeV6 {
		return cfg, nil // a version 4 or 5 host: every row read
	}
	if p.observe_prompt_rows < 0 || p.observe_prompt_rows > math.MaxInt32 {
		return keyformer.Config{}, invalid("observe_prompt_rows: %d outside [0, %d]", p.observe_prompt_rows, math.MaxInt32)
	}
	cfg.Observe.PromptRows = int(p.observe_prompt_rows)
	return cfg, nil
}

// maxLayers bounds n_observe_layers (keyformer.Config allows at most 4096 layers).
const maxLayers = 1 << 12

//export kfgo_context_new
func kfgo_context_new(p *C.keyformer_params, out *C.uintptr_t) (st C.keyformer_status) {
	const name = "keyformer_context_new"
	defer func() {
		if r := recover(); r != nil {
			st = recovered(nil, name, r)
		}
	}()
	switch {
	case p == nil:
		return report(nil, name, invalid("params is NULL"))
	case out == nil:
		return report(nil, name, invalid("out is NULL"))
	}
	cfg, err := config(p)
	if err != nil {
		return report(nil, name, err)
	}
	t, err := keyformer.NewTracker(cfg)
	if err != nil {
		return report(nil, name, invalid("%s", configFields.Replace(err.Error())))
	}
	*out = C.uintptr_t(newHandle(&context{tracker: t}))
	return statusOK
}

//export kfgo_context_free
func kfgo_context_free(h C.uintptr_t) C.keyformer_status {
	return call("keyformer_context_free", uintptr(h), func(*context) error {
		if !release(uintptr(h)) {
			return fail(statusInvalidHandle, "context %#x freed concurrently", uintptr(h))
		}
		return nil
	})
}

//export kfgo_set_prompt_length
func kfgo_set_prompt_length(h C.uintptr_t, seq, n C.int32_t) C.keyformer_status {
	return call("keyformer_set_prompt_length", uintptr(h), func(c *context) error {
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		return s.SetPromptLength(int(n))
	})
}

//export kfgo_add_cells
func kfgo_add_cells(h C.uintptr_t, seq C.int32_t, cells, positions *C.int32_t, n C.int32_t) C.keyformer_status {
	return call("keyformer_add_cells", uintptr(h), func(c *context) error {
		switch {
		case n < 0:
			return invalid("n is negative (%d)", n)
		case n > 0 && cells == nil:
			return invalid("cells is NULL")
		case n > 0 && positions == nil:
			return invalid("positions is NULL")
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		return s.AddCells(int32s(cells, n), int32s(positions, n))
	})
}

//export kfgo_wants_attention
func kfgo_wants_attention(h C.uintptr_t, seq, layer, nNew C.int32_t, wanted *C.int32_t) C.keyformer_status {
	return call("keyformer_wants_attention", uintptr(h), func(c *context) error {
		switch {
		case wanted == nil:
			return invalid("wanted is NULL")
		case nNew <= 0:
			return invalid("n_new is %d, not positive", nNew)
		}
		cfg := c.tracker.Config()
		if layer < 0 || int(layer) >= cfg.Shape.Layers {
			return invalid("layer %d outside [0, %d)", layer, cfg.Shape.Layers)
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		*wanted = boolInt(cfg.ObservesLayer(int(layer)) && s.WantsAttention(int(nNew)))
		return nil
	})
}

// int32s views n C int32s as a slice (nil for n = 0), valid during the call only.
func int32s(p *C.int32_t, n C.int32_t) []int32 {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(p)), int(n))
}

// extent returns the number of elements (r, h, j) of an attention spans, (rows-1)*rowStride +
// (heads-1)*headStride + cols, or false if that exceeds maxExtent.
func extent(rows, heads, cols, rowStride, headStride uint64) (uint64, bool) {
	hi1, a := bits.Mul64(rows-1, rowStride)
	hi2, b := bits.Mul64(heads-1, headStride)
	if hi1 != 0 || hi2 != 0 || a > maxExtent || b > maxExtent {
		return 0, false
	}
	n := a + b + cols // each term is at most 2^40: no overflow
	return n, n <= maxExtent
}

// attention translates a keyformer_attention into a keyformer.Attention over the caller's memory
// (no copy: the core reads it during the call only).
func attention(a *C.keyformer_attention) (keyformer.Attention, error) {
	if a == nil {
		return keyformer.Attention{}, invalid("attention is NULL")
	}
	if err := checkSize("keyformer_attention", a.size, attentionSizeV1); err != nil {
		return keyformer.Attention{}, err
	}
	switch {
	case a.n_rows <= 0:
		return keyformer.Attention{}, invalid("attention->n_rows is %d, not positive", a.n_rows)
	case a.n_heads <= 0:
		return keyformer.Attention{}, invalid("attention->n_heads is %d, not positive", a.n_heads)
	case a.n_cols <= 0:
		return keyformer.Attention{}, invalid("attention->n_cols is %d, not positive", a.n_cols)
	case a.row_stride < 0 || a.head_stride < 0:
		return keyformer.Attention{}, invalid("attention strides (%d, %d) are negative", a.row_stride, a.head_stride)
	case a.data == nil:
		return keyformer.Attention{}, invalid("attention->data is NULL")
	case a.logits != 0 && a.logits != 1:
		return keyformer.Attention{}, invalid("attention->logits is %d, neither 0 nor 1", a.logits)
	}
	n, ok := extent(uint64(a.n_rows), uint64(a.n_heads), uint64(a.n_cols), uint64(a.row_stride), uint64(a.head_stride))
	if !ok {
		return keyformer.Attention{}, invalid("attention of %d rows x %d heads x %d columns with strides (%d, %d) spans more than %d elements",
			a.n_rows, a.n_heads, a.n_cols, a.row_stride, a.head_stride, uint64(maxExtent))
	}
	at := keyformer.Attention{
		Data:       unsafe.Slice((*float32)(unsafe.Pointer(a.data)), n),
		Rows:       int(a.n_rows),
		Heads:      int(a.n_heads),
		Cols:       int(a.n_cols),
		RowStride:  int(a.row_stride),
		HeadStride: int(a.head_stride),
		Logits:     a.logits == 1,
	}
	if a.cells != nil {
		at.Cells = int32s(a.cells, a.n_cols)
	}
	return at, nil
}

//export kfgo_observe
func kfgo_observe(h C.uintptr_t, seq, layer C.int32_t, a *C.keyformer_attention) C.keyformer_status {
	return call("keyformer_observe", uintptr(h), func(c *context) error {
		at, err := attention(a)
		if err != nil {
			return err
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		return s.ObserveAttention(int(layer), at)
	})
}

//export kfgo_observe_keys
func kfgo_observe_keys(h C.uintptr_t, seq, layer C.int32_t, k *C.keyformer_keys) C.keyformer_status {
	return call("keyformer_observe_keys", uintptr(h), func(c *context) error {
		keys, err := keysOf(k)
		if err != nil {
			return err
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		return s.ObserveKeys(int(layer), keys)
	})
}

// keysOf validates keyformer_keys and views its data.
func keysOf(k *C.keyformer_keys) (keyformer.Keys, error) {
	if k == nil {
		return keyformer.Keys{}, invalid("keys is NULL")
	}
	if err := checkSize("keyformer_keys", k.size, keysSizeV4); err != nil {
		return keyformer.Keys{}, err
	}
	switch {
	case k.n_rows <= 0:
		return keyformer.Keys{}, invalid("keys->n_rows is %d, not positive", k.n_rows)
	case k.n_heads <= 0:
		return keyformer.Keys{}, invalid("keys->n_heads is %d, not positive", k.n_heads)
	case k.head_dim <= 0:
		return keyformer.Keys{}, invalid("keys->head_dim is %d, not positive", k.head_dim)
	case k.row_stride < 0 || k.head_stride < 0:
		return keyformer.Keys{}, invalid("keys strides (%d, %d) are negative", k.row_stride, k.head_stride)
	case k.data == nil:
		return keyformer.Keys{}, invalid("keys->data is NULL")
	}
	n, ok := extent(uint64(k.n_rows), uint64(k.n_heads), uint64(k.head_dim), uint64(k.row_stride), uint64(k.head_stride))
	if !ok {
		return keyformer.Keys{}, invalid("keys of %d rows x %d heads x %d values with strides (%d, %d) span more than %d elements",
			k.n_rows, k.n_heads, k.head_dim, k.row_stride, k.head_stride, uint64(maxExtent))
	}
	return keyformer.Keys{
		Data: unsafe.Slice((*float32)(unsafe.Pointer(k.data)), n),
		Rows: int(k.n_rows), Heads: int(k.n_heads), Dim: int(k.head_dim),
		RowStride: int(k.row_stride), HeadStride: int(k.head_stride),
	}, nil
}

//export kfgo_plan
func kfgo_plan(h C.uintptr_t, seq C.int32_t, out *C.keyformer_eviction, capacity C.int32_t, nOut *C.int32_t) C.keyformer_status {
	return call("keyformer_plan", uintptr(h), func(c *context) error {
		switch {
		case nOut == nil:
			return invalid("n_out is NULL")
		case capacity < 0:
			return invalid("capacity is negative (%d)", capacity)
		case capacity > 0 && out == nil:
			return invalid("out is NULL")
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		evs, err := s.Plan(nil)
		if err != nil {
			return err
		}
		*nOut = C.int32_t(len(evs))
		if len(evs) > int(capacity) {
			return fail(statusBufferTooSmall, "%d evictions do not fit in capacity %d", len(evs), capacity)
		}
		if len(evs) > 0 {
			dst := unsafe.Slice(out, len(evs))
			for i, e := range evs {
				dst[i] = C.keyformer_eviction{cell: C.int32_t(e.Cell), layer: C.int32_t(e.Layer), head: C.int32_t(e.Head)}
			}
		}
		return nil
	})
}

//export kfgo_forget
func kfgo_forget(h C.uintptr_t, seq C.int32_t, evictions *C.keyformer_eviction, n C.int32_t) C.keyformer_status {
	return call("keyformer_forget", uintptr(h), func(c *context) error {
		switch {
		case n < 0:
			return invalid("n is negative (%d)", n)
		case n > 0 && evictions == nil:
			return invalid("evictions is NULL")
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		evs := make([]keyformer.Eviction, n)
		if n > 0 {
			for i, e := range unsafe.Slice(evictions, int(n)) {
				evs[i] = keyformer.Eviction{Cell: int32(e.cell), Layer: int32(e.layer), Head: int32(e.head)}
			}
		}
		return s.Forget(evs)
	})
}

//export kfgo_seq_length
func kfgo_seq_length(h C.uintptr_t, seq C.int32_t, nOut *C.int32_t) C.keyformer_status {
	return call("keyformer_seq_length", uintptr(h), func(c *context) error {
		if nOut == nil {
			return invalid("n_out is NULL")
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		*nOut = C.int32_t(s.Len())
		return nil
	})
}

//export kfgo_seq_reset
func kfgo_seq_reset(h C.uintptr_t, seq C.int32_t) C.keyformer_status {
	return call("keyformer_seq_reset", uintptr(h), func(c *context) error {
		if _, err := c.sequence(seq); err != nil { // validates the id
			return err
		}
		c.tracker.Remove(int32(seq))
		return nil
	})
}

//export kfgo_state_size
func kfgo_state_size(h C.uintptr_t, seq C.int32_t, sizeOut *C.size_t) C.keyformer_status {
	return call("keyformer_state_size", uintptr(h), func(c *context) error {
		if sizeOut == nil {
			return invalid("size_out is NULL")
		}
		b, err := marshal(c, seq)
		if err != nil {
			return err
		}
		*sizeOut = C.size_t(len(b))
		return nil
	})
}

func marshal(c *context, seq C.int32_t) ([]byte, error) {
	s, err := c.sequence(seq)
	if err != nil {
		return nil, err
	}
	return s.MarshalBinary()
}

//export kfgo_state_save
func kfgo_state_save(h C.uintptr_t, seq C.int32_t, buf *C.uint8_t, capacity C.size_t, written *C.size_t) C.keyformer_status {
	return call("keyformer_state_save", uintptr(h), func(c *context) error {
		switch {
		case written == nil:
			return invalid("written is NULL")
		case capacity > 0 && buf == nil:
			return invalid("buf is NULL")
		}
		b, err := marshal(c, seq)
		if err != nil {
			return err
		}
		*written = C.size_t(len(b))
		if uint64(len(b)) > uint64(capacity) {
			return fail(statusBufferTooSmall, "the state needs %d bytes, capacity is %d", len(b), uint64(capacity))
		}
		if len(b) > 0 {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), len(b)), b)
		}
		return nil
	})
}

//export kfgo_state_load
func kfgo_state_load(h C.uintptr_t, seq C.int32_t, buf *C.uint8_t, size C.size_t) C.keyformer_status {
	return call("keyformer_state_load", uintptr(h), func(c *context) error {
		switch {
		case size > 0 && buf == nil:
			return invalid("buf is NULL")
		case uint64(size) > maxStateBytes:
			return fail(statusInvalidState, "a state of %d bytes is larger than any state can be", uint64(size))
		}
		s, err := c.sequence(seq)
		if err != nil {
			return err
		}
		var data []byte
		if size > 0 {
			data = unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size))
		}
		return s.UnmarshalBinary(data)
	})
}

// cFloat converts to a C float (for the tests, which cannot name C types).
func cFloat(f float64) C.float { return C.float(f) }
