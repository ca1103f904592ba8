//go:build linux || darwin

package llama

import (
	"fmt"
	"math"
	"structs"
	"unsafe"
)

// The mirrors below follow build/deps/llama/include/llama.h of the pinned llama.cpp
// (PinnedLlamaCpp, build/scripts/pins.env) field by field, for LP64 targets (linux and darwin, amd64 and
// arm64: pointers and size_t 8 bytes, enums 4 bytes, bool 1 byte, natural alignment). Explicit
// `_` fields are the padding the C compiler inserts. Offsets were cross-checked with offsetof()
// on the real header (gcc, x86-64) and are asserted at compile time at the end of this file;
// Lib.CheckLayout checks them against the library at run time.

// Enum values from the pinned llama.h / ggml.h.
const (
	FlashAttnAuto     FlashAttnType = -1 // LLAMA_FLASH_ATTN_TYPE_AUTO (the default)
	FlashAttnDisabled FlashAttnType = 0  // LLAMA_FLASH_ATTN_TYPE_DISABLED: attention matrices exist
	FlashAttnEnabled  FlashAttnType = 1  // LLAMA_FLASH_ATTN_TYPE_ENABLED
)

// FlashAttnType is enum llama_flash_attn_type.
type FlashAttnType int32

// ggml_type values used here (enum ggml_type, ggml.h).
const (
	TypeF32  GGMLType = 0
	TypeF16  GGMLType = 1
	TypeQ4_0 GGMLType = 2
	TypeQ4_1 GGMLType = 3
	TypeQ8_0 GGMLType = 8
	TypeI8   GGMLType = 24
	TypeI16  GGMLType = 25
	TypeI32  GGMLType = 26
	TypeI64  GGMLType = 27
	TypeF64  GGMLType = 28
	TypeBF16 GGMLType = 30
)

// GGMLType is enum ggml_type.
type GGMLType int32

// ModelParams mirrors struct llama_model_params (80 bytes).
type ModelParams struct {
	_                        structs.HostLayout
	Devices                  uintptr // ggml_backend_dev_t *, NULL-terminated; NULL = all       @0
	TensorBuftOverrides      uintptr // const struct llama_model_tensor_buft_override *           @8
	NGPULayers               int32   // default -1 (all)                                          @16
	SplitMode                int32   // enum llama_split_mode, default LAYER (1)                  @20
	LoadMode                 int32   // enum llama_load_mode, default AUTO (-1)                   @24
	LazyMode                 int32   // enum llama_lazy_mode, default AUTO (1)                    @28
	MainGPU                  int32   //                                                           @32
	_                        [4]byte //                                                           @36
	TensorSplit              uintptr // const float *                                             @40
	ProgressCallback         uintptr // llama_progress_callback                                   @48
	ProgressCallbackUserData uintptr //                                                           @56
	KVOverrides              uintptr // const struct llama_model_kv_override *                    @64
	VocabOnly                bool    //                                                           @72
	CheckTensors             bool    //                                                           @73
	UseExtraBufts            bool    // default true                                              @74
	NoHost                   bool    //                                                           @75
	NoAlloc                  bool    //                                                           @76
	LoadMTP                  bool    //                                                           @77
	_                        [2]byte //                                                           @78
}

// ContextParams mirrors struct llama_context_params (160 bytes).
type ContextParams struct {
	_                 structs.HostLayout
	NCtx              uint32        // 0 = from model; default 512                                 @0
	NBatch            uint32        // default 2048                                                @4
	NUbatch           uint32        // default 512                                                 @8
	NSeqMax           uint32        // default 1                                                   @12
	NRsSeq            uint32        // default 0                                                   @16
	NOutputsMax       uint32        // default 0                                                   @20
	NOutputsMaxPerSeq uint32        // default 1                                                   @24
	NThreads          int32         // default GGML_DEFAULT_N_THREADS (4)                          @28
	NThreadsBatch     int32         // default 4                                                   @32
	CtxType           int32         // enum llama_context_type, default 0                          @36
	RopeScalingType   int32         // enum llama_rope_scaling_type, default -1                    @40
	PoolingType       int32         // enum llama_pooling_type, default -1                         @44
	AttentionType     int32         // enum llama_attention_type, default -1                       @48
	FlashAttnType     FlashAttnType // default AUTO (-1)                                     @52
	RopeFreqBase      float32       // default 0                                                   @56
	RopeFreqScale     float32       // default 0                                                   @60
	YarnExtFactor     float32       // default -1                                                  @64
	YarnAttnFactor    float32       // default -1                                                  @68
	YarnBetaFast      float32       // default -1                                                  @72
	YarnBetaSlow      float32       // default -1                                                  @76
	YarnOrigCtx       uint32        // default 0                                                   @80
	DefragThold       float32       // deprecated; default -1                                      @84
	CbEval            uintptr       // ggml_backend_sched_eval_callback                            @88
	CbEvalUserData    uintptr       // void *                                                      @96
	TypeK             GGMLType      // default F16 (1)                                            @104
	TypeV             GGMLType      // default F16 (1)                                            @108
	AbortCallback     uintptr       // ggml_abort_callback                                         @112
	AbortCallbackData uintptr       //                                                             @120
	Embeddings        bool          // default false                                               @128
	OffloadKQV        bool          // default true                                                @129
	NoPerf            bool          // default true                                                @130
	OpOffload         bool          // default true                                                @131
	SWAFull           bool          // default true                                                @132
	KVUnified         bool          // default false                                               @133
	_                 [2]byte       //                                                             @134
	Samplers          uintptr       // struct llama_sampler_seq_config *                           @136
	NSamplers         uintptr       // size_t                                                      @144
	CtxOther          uintptr       // struct llama_context *                                      @152
}

// Batch mirrors struct llama_batch (56 bytes). Arrays are C memory from llama_batch_init.
type Batch struct {
	_       structs.HostLayout
	NTokens int32    //                     @0
	_       [4]byte  //                     @4
	Token   *int32   // llama_token *       @8
	Embd    *float32 // float *             @16
	Pos     *int32   // llama_pos *         @24
	NSeqID  *int32   // int32_t *           @32
	SeqID   **int32  // llama_seq_id **     @40
	Logits  *int8    // int8_t * ("output") @48
}

// LayoutError says which field of a mirror does not read back the library's known default.
type LayoutError struct {
	Struct, Field string
	Got, Want     any
}

func (e *LayoutError) Error() string {
	return fmt.Sprintf("llama: layout mismatch: %s.%s reads %v, want %v (the runtime is not llama.cpp "+PinnedLlamaCpp+"'s ABI)",
		e.Struct, e.Field, e.Got, e.Want)
}

// CheckLayout reads llama_model_default_params() and llama_context_default_params() back
// through the Go mirrors and checks that the known defaults of this llama.cpp version (see
// llama-model.cpp / llama-context.cpp) land in the right fields, and that llama_batch_init fills
// the Batch pointers it should. A different llama.cpp ABI shows up here as a named field.
func (l *Lib) CheckLayout() error {
	mp := l.ModelDefaultParams()
	type check struct {
		field     string
		got, want any
	}
	for _, c := range []check{
		{"Devices", mp.Devices, uintptr(0)},
		{"TensorBuftOverrides", mp.TensorBuftOverrides, uintptr(0)},
		{"NGPULayers", mp.NGPULayers, int32(-1)},
		{"SplitMode", mp.SplitMode, int32(1)},
		{"LoadMode", mp.LoadMode, int32(-1)},
		{"LazyMode", mp.LazyMode, int32(1)},
		{"MainGPU", mp.MainGPU, int32(0)},
		{"TensorSplit", mp.TensorSplit, uintptr(0)},
		{"ProgressCallback", mp.ProgressCallback, uintptr(0)},
		{"ProgressCallbackUserData", mp.ProgressCallbackUserData, uintptr(0)},
		{"KVOverrides", mp.KVOverrides, uintptr(0)},
		{"VocabOnly", mp.VocabOnly, false},
		{"CheckTensors", mp.CheckTensors, false},
		{"UseExtraBufts", mp.UseExtraBufts, true},
		{"NoHost", mp.NoHost, false},
		{"NoAlloc", mp.NoAlloc, false},
		{"LoadMTP", mp.LoadMTP, false},
	} {
		if c.got != c.want {
			return &LayoutError{"ModelParams", c.field, c.got, c.want}
		}
	}

	cp := l.ContextDefaultParams()
	m1 := float32(-1)
	for _, c := range []check{
		{"NCtx", cp.NCtx, uint32(512)},
		{"NBatch", cp.NBatch, uint32(2048)},
		{"NUbatch", cp.NUbatch, uint32(512)},
		{"NSeqMax", cp.NSeqMax, uint32(1)},
		{"NRsSeq", cp.NRsSeq, uint32(0)},
		{"NOutputsMax", cp.NOutputsMax, uint32(0)},
		{"NOutputsMaxPerSeq", cp.NOutputsMaxPerSeq, uint32(1)},
		{"NThreads", cp.NThreads, int32(4)},
		{"NThreadsBatch", cp.NThreadsBatch, int32(4)},
		{"CtxType", cp.CtxType, int32(0)},
		{"RopeScalingType", cp.RopeScalingType, int32(-1)},
		{"PoolingType", cp.PoolingType, int32(-1)},
		{"AttentionType", cp.AttentionType, int32(-1)},
		{"FlashAttnType", cp.FlashAttnType, FlashAttnAuto},
		{"RopeFreqBase", cp.RopeFreqBase, float32(0)},
		{"RopeFreqScale", cp.RopeFreqScale, float32(0)},
		{"YarnExtFactor", cp.YarnExtFactor, m1},
		{"YarnAttnFactor", cp.YarnAttnFactor, m1},
		{"YarnBetaFast", cp.YarnBetaFast, m1},
		{"YarnBetaSlow", cp.YarnBetaSlow, m1},
		{"YarnOrigCtx", cp.YarnOrigCtx, uint32(0)},
		{"DefragThold", cp.DefragThold, m1},
		{"CbEval", cp.CbEval, uintptr(0)},
		{"CbEvalUserData", cp.CbEvalUserData, uintptr(0)},
		{"TypeK", cp.TypeK, TypeF16},
		{"TypeV", cp.TypeV, TypeF16},
		{"AbortCallback", cp.AbortCallback, uintptr(0)},
		{"AbortCallbackData", cp.AbortCallbackData, uintptr(0)},
		{"Embeddings", cp.Embeddings, false},
		{"OffloadKQV", cp.OffloadKQV, true},
		{"NoPerf", cp.NoPerf, true},
		{"OpOffload", cp.OpOffload, true},
		{"SWAFull", cp.SWAFull, true},
		{"KVUnified", cp.KVUnified, false},
		{"Samplers", cp.Samplers, uintptr(0)},
		{"NSamplers", cp.NSamplers, uintptr(0)},
		{"CtxOther", cp.CtxOther, uintptr(0)},
	} {
		if c.got != c.want {
			if f, ok := c.got.(float32); ok && math.IsNaN(float64(f)) {
				return &LayoutError{"ContextParams", c.field, "NaN", c.want}
			}
			return &LayoutError{"ContextParams", c.field, c.got, c.want}
		}
	}

	// llama_batch_init(n, embd, n_seq_max): token or embd (exclusive), the rest always set,
	// n_tokens = 0. Two calls tell the token and embd slots apart.
	b := l.BatchInit(3, 0, 1)
	defer l.BatchFree(b)
	e := l.BatchInit(3, 4, 1)
	defer l.BatchFree(e)
	for _, c := range []struct {
		field string
		ok    bool
	}{
		{"NTokens", b.NTokens == 0 && e.NTokens == 0},
		{"Token", b.Token != nil && e.Token == nil},
		{"Embd", b.Embd == nil && e.Embd != nil},
		{"Pos", b.Pos != nil && e.Pos != nil},
		{"NSeqID", b.NSeqID != nil && e.NSeqID != nil},
		{"SeqID", b.SeqID != nil && e.SeqID != nil && unsafe.Slice(b.SeqID, 4)[3] == nil},
		{"Logits", b.Logits != nil && e.Logits != nil},
	} {
		if !c.ok {
			return &LayoutError{"Batch", c.field, "unexpected value after llama_batch_init", "set per llama_batch_init"}
		}
	}
	return nil
}

// Compile-time layout checks: each line fails to compile ("cannot use ... as [N]byte value")
// when the Go mirror's size or offset differs from the C struct's.
var (
	_ [80]byte  = [unsafe.Sizeof(ModelParams{})]byte{}
	_ [16]byte  = [unsafe.Offsetof(ModelParams{}.NGPULayers)]byte{}
	_ [32]byte  = [unsafe.Offsetof(ModelParams{}.MainGPU)]byte{}
	_ [40]byte  = [unsafe.Offsetof(ModelParams{}.TensorSplit)]byte{}
	_ [64]byte  = [unsafe.Offsetof(ModelParams{}.KVOverrides)]byte{}
	_ [72]byte  = [unsafe.Offsetof(ModelParams{}.VocabOnly)]byte{}
	_ [77]byte  = [unsafe.Offsetof(ModelParams{}.LoadMTP)]byte{}
	_ [160]byte = [unsafe.Sizeof(ContextParams{})]byte{}
	_ [36]byte  = [unsafe.Offsetof(ContextParams{}.CtxType)]byte{}
	_ [52]byte  = [unsafe.Offsetof(ContextParams{}.FlashAttnType)]byte{}
	_ [56]byte  = [unsafe.Offsetof(ContextParams{}.RopeFreqBase)]byte{}
	_ [84]byte  = [unsafe.Offsetof(ContextParams{}.DefragThold)]byte{}
	_ [88]byte  = [unsafe.Offsetof(ContextParams{}.CbEval)]byte{}
	_ [96]byte  = [unsafe.Offsetof(ContextParams{}.CbEvalUserData)]byte{}
	_ [104]byte = [unsafe.Offsetof(ContextParams{}.TypeK)]byte{}
	_ [112]byte = [unsafe.Offsetof(ContextParams{}.AbortCallback)]byte{}
	_ [128]byte = [unsafe.Offsetof(ContextParams{}.Embeddings)]byte{}
	_ [133]byte = [unsafe.Offsetof(ContextParams{}.KVUnified)]byte{}
	_ [136]byte = [unsafe.Offsetof(ContextParams{}.Samplers)]byte{}
	_ [152]byte = [unsafe.Offsetof(ContextParams{}.CtxOther)]byte{}
	_ [56]byte  = [unsafe.Sizeof(Batch{})]byte{}
	_ [8]byte   = [unsafe.Offsetof(Batch{}.Token)]byte{}
	_ [24]byte  = [unsafe.Offsetof(Batch{}.Pos)]byte{}
	_ [40]byte  = [unsafe.Offsetof(Batch{}.SeqID)]byte{}
	_ [48]byte  = [unsafe.Offsetof(Batch{}.Logits)]byte{}
)
