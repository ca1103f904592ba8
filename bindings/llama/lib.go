//go:build linux || darwin

package llama

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Funcs holds every llama.cpp / ggml function the package calls, as Go functions bound with
// purego.RegisterFunc. The `sym` tag names the C symbol. Load requires every symbol but those
// marked ",optional"; FromProcess and FromHandles, which bind a host's llama.cpp for
// bindings/adapter, require only those marked ",attach" (what the adapter and the bind-time
// checks call). A symbol not required and absent leaves its field nil: test with Lib.Has before
// calling it.
//
// Handles (llama_model *, llama_context *, llama_vocab *, llama_memory_t, ggml_backend_buffer_t,
// threadpools) are uintptr: Go never dereferences them. Pointers Go reads through are typed.
type Funcs struct {
	// Backend and process setup.
	BackendInit                func()                                       `sym:"llama_backend_init"`
	BackendFree                func()                                       `sym:"llama_backend_free"`
	GGMLBackendLoadAllFromPath func(dir string)                             `sym:"ggml_backend_load_all_from_path"`
	GGMLBackendDevCount        func() uintptr                               `sym:"ggml_backend_dev_count"`
	LogSet                     func(cb uintptr, userData uintptr)           `sym:"llama_log_set"`
	Version                    func() string                                `sym:"llama_version,optional"`
	PrintSystemInfo            func() string                                `sym:"llama_print_system_info,optional"`
	ModelDefaultParams         func() ModelParams                           `sym:"llama_model_default_params"`
	ContextDefaultParams       func() ContextParams                         `sym:"llama_context_default_params"`
	ModelLoadFromFile          func(path string, p ModelParams) uintptr     `sym:"llama_model_load_from_file"`
	ModelFree                  func(model uintptr)                          `sym:"llama_model_free"`
	InitFromModel              func(model uintptr, p ContextParams) uintptr `sym:"llama_init_from_model"`
	Free                       func(ctx uintptr)                            `sym:"llama_free"`

	// Model and vocabulary.
	ModelGetVocab     func(model uintptr) uintptr                                                                                               `sym:"llama_model_get_vocab"`
	ModelNLayer       func(model uintptr) int32                                                                                                 `sym:"llama_model_n_layer"`
	ModelNHead        func(model uintptr) int32                                                                                                 `sym:"llama_model_n_head"`
	ModelNHeadKV      func(model uintptr) int32                                                                                                 `sym:"llama_model_n_head_kv"`
	ModelNEmbd        func(model uintptr) int32                                                                                                 `sym:"llama_model_n_embd"`
	ModelNCtxTrain    func(model uintptr) int32                                                                                                 `sym:"llama_model_n_ctx_train"`
	ModelSize         func(model uintptr) uint64                                                                                                `sym:"llama_model_size"`
	ModelNSWA         func(model uintptr) int32                                                                                                 `sym:"llama_model_n_swa,optional"`
	ModelIsRecurrent  func(model uintptr) bool                                                                                                  `sym:"llama_model_is_recurrent,optional"`
	ModelIsHybrid     func(model uintptr) bool                                                                                                  `sym:"llama_model_is_hybrid,optional"`
	ModelChatTemplate func(model uintptr, name *byte) *byte                                                                                     `sym:"llama_model_chat_template"`
	ChatApplyTemplate func(tmpl *byte, chat unsafe.Pointer, nMsg uintptr, addAss bool, buf *byte, length int32) int32                           `sym:"llama_chat_apply_template"`
	Tokenize          func(vocab uintptr, text *byte, textLen int32, tokens *int32, nTokensMax int32, addSpecial, parseSpecial bool) int32      `sym:"llama_tokenize"`
	TokenToPiece      func(vocab uintptr, token int32, buf *byte, length int32, lstrip int32, special bool) int32                               `sym:"llama_token_to_piece"`
	Detokenize        func(vocab uintptr, tokens *int32, nTokens int32, text *byte, textLenMax int32, removeSpecial, unparseSpecial bool) int32 `sym:"llama_detokenize"`
	VocabIsEOG        func(vocab uintptr, token int32) bool                                                                                     `sym:"llama_vocab_is_eog"`
	VocabBOS          func(vocab uintptr) int32                                                                                                 `sym:"llama_vocab_bos"`
	VocabEOS          func(vocab uintptr) int32                                                                                                 `sym:"llama_vocab_eos"`
	VocabNTokens      func(vocab uintptr) int32                                                                                                 `sym:"llama_vocab_n_tokens"`

	// Context, batches, decoding.
	NCtx             func(ctx uintptr) uint32                         `sym:"llama_n_ctx,attach"`
	NCtxSeq          func(ctx uintptr) uint32                         `sym:"llama_n_ctx_seq,attach"`
	NBatch           func(ctx uintptr) uint32                         `sym:"llama_n_batch"`
	NUbatch          func(ctx uintptr) uint32                         `sym:"llama_n_ubatch"`
	SetNThreads      func(ctx uintptr, nThreads, nThreadsBatch int32) `sym:"llama_set_n_threads"`
	BatchInit        func(nTokens, embd, nSeqMax int32) Batch         `sym:"llama_batch_init"`
	BatchFree        func(b Batch)                                    `sym:"llama_batch_free"`
	Decode           func(ctx uintptr, b Batch) int32                 `sym:"llama_decode"`
	GetLogitsIth     func(ctx uintptr, i int32) *float32              `sym:"llama_get_logits_ith"`
	Synchronize      func(ctx uintptr)                                `sym:"llama_synchronize,optional"`
	AttachThreadpool func(ctx uintptr, tp, tpBatch uintptr)           `sym:"llama_attach_threadpool,optional"`
	DetachThreadpool func(ctx uintptr)                                `sym:"llama_detach_threadpool,optional"`

	// Memory (KV cache).
	GetMemory       func(ctx uintptr) uintptr                   `sym:"llama_get_memory,attach"`
	MemoryClear     func(mem uintptr, data bool)                `sym:"llama_memory_clear"`
	MemorySeqRm     func(mem uintptr, seq, p0, p1 int32) bool   `sym:"llama_memory_seq_rm,attach"`
	MemorySeqAdd    func(mem uintptr, seq, p0, p1, delta int32) `sym:"llama_memory_seq_add,attach"`
	MemorySeqCp     func(mem uintptr, src, dst, p0, p1 int32)   `sym:"llama_memory_seq_cp"`
	MemorySeqKeep   func(mem uintptr, seq int32)                `sym:"llama_memory_seq_keep"`
	MemorySeqPosMin func(mem uintptr, seq int32) int32          `sym:"llama_memory_seq_pos_min,attach"`
	MemorySeqPosMax func(mem uintptr, seq int32) int32          `sym:"llama_memory_seq_pos_max,attach"`
	MemoryCanShift  func(mem uintptr) bool                      `sym:"llama_memory_can_shift,attach"`

	// Per-sequence state.
	StateSeqGetSize func(ctx uintptr, seq int32) uintptr                          `sym:"llama_state_seq_get_size"`
	StateSeqGetData func(ctx uintptr, dst *byte, size uintptr, seq int32) uintptr `sym:"llama_state_seq_get_data"`
	StateSeqSetData func(ctx uintptr, src *byte, size uintptr, seq int32) uintptr `sym:"llama_state_seq_set_data"`

	// ggml tensors (pointers come from the eval callback) and the bind-time checks of internals.go.
	GGMLGetName             func(t unsafe.Pointer) *byte                                                  `sym:"ggml_get_name,attach"`
	GGMLNbytes              func(t unsafe.Pointer) uintptr                                                `sym:"ggml_nbytes,attach"`
	GGMLGetData             func(t unsafe.Pointer) unsafe.Pointer                                         `sym:"ggml_get_data,attach"`
	GGMLBackendTensorGet    func(t unsafe.Pointer, data unsafe.Pointer, offset, size uintptr)             `sym:"ggml_backend_tensor_get,attach"`
	GGMLBackendBufferIsHost func(buf uintptr) bool                                                        `sym:"ggml_backend_buffer_is_host,attach"`
	GGMLOpName              func(op int32) *byte                                                          `sym:"ggml_op_name,attach"`
	GGMLOpDesc              func(t unsafe.Pointer) *byte                                                  `sym:"ggml_op_desc,attach"`
	GGMLTypeName            func(typ int32) string                                                        `sym:"ggml_type_name,optional"`
	GGMLInit                func(p initParams) uintptr                                                    `sym:"ggml_init,attach"`
	GGMLFree                func(ctx uintptr)                                                             `sym:"ggml_free,attach"`
	GGMLNewTensor1d         func(ctx uintptr, typ int32, ne0 int64) unsafe.Pointer                        `sym:"ggml_new_tensor_1d,attach"`
	GGMLView1d              func(ctx uintptr, t unsafe.Pointer, ne0 int64, offset uintptr) unsafe.Pointer `sym:"ggml_view_1d,attach"`
	GGMLSetName             func(t unsafe.Pointer, name string) unsafe.Pointer                            `sym:"ggml_set_name,attach"`

	// CPU threadpools (ggml_threadpool_new/free come from the CPU backend's proc-address table).
	GGMLThreadpoolParamsInit     func(p unsafe.Pointer, nThreads int32) `sym:"ggml_threadpool_params_init,optional"`
	GGMLBackendDevByType         func(typ int32) uintptr                `sym:"ggml_backend_dev_by_type,optional"`
	GGMLBackendDevBackendReg     func(dev uintptr) uintptr              `sym:"ggml_backend_dev_backend_reg,optional"`
	GGMLBackendRegGetProcAddress func(reg uintptr, name string) uintptr `sym:"ggml_backend_reg_get_proc_address,optional"`
}

// Lib is a bound llama.cpp runtime. It is safe for concurrent use as far as llama.cpp itself is
// (one context per goroutine at a time).
type Lib struct {
	Funcs
	// Ops are the numbers of the ggml ops keyformer compares nodes with, resolved by name.
	Ops Ops

	handles []uintptr // searched in order for every symbol
	dir     string    // Load's directory; "" for FromProcess / FromHandles
	owned   bool      // Load initialised the backend
	missing []string  // optional symbols not found

	tpOnce sync.Once
	tpNew  func(params unsafe.Pointer) uintptr
	tpFree func(tp uintptr)
	tpErr  error
}

// MissingSymbolsError lists the required symbols a runtime lacks.
type MissingSymbolsError struct {
	Symbols []string
	Where   string
}

func (e *MissingSymbolsError) Error() string {
	return fmt.Sprintf("llama: %d required symbol(s) missing from %s: %s", len(e.Symbols), e.Where,
		strings.Join(e.Symbols, ", "))
}

// Load opens the llama.cpp runtime in dir (libggml-base, libggml, libllama, with
// RTLD_NOW|RTLD_GLOBAL), resolves every symbol, loads the ggml backends found in dir
// (ggml_backend_load_all_from_path: the CPU variants libggml-cpu-*.so, GPU backends) and calls
// llama_backend_init. It installs the package log callback (see SetLogger) before loading the
// backends, so their messages go through it.
//
// The libraries stay loaded for the life of the process (they are never dlclosed). Loading the
// backends twice would register duplicate devices, so a second Load of the same directory
// returns the first Lib, and a Load of another directory is an error.
func Load(dir string) (*Lib, error) {
	if dir == "" {
		return nil, errors.New("llama: Load: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("llama: Load: %w", err)
	}
	loaded.mu.Lock()
	defer loaded.mu.Unlock()
	if loaded.lib != nil {
		if loaded.lib.dir == abs {
			return loaded.lib, nil
		}
		return nil, fmt.Errorf("llama: Load(%q): a runtime is already loaded from %q", abs, loaded.lib.dir)
	}
	var handles []uintptr
	for _, name := range libraryFiles { // dependencies first
		path := filepath.Join(abs, name)
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return nil, fmt.Errorf("llama: dlopen %s: %w", path, err)
		}
		handles = append(handles, h)
	}
	// Search libllama first: dlsym on a handle also searches that object's dependencies.
	for i, j := 0, len(handles)-1; i < j; i, j = i+1, j-1 {
		handles[i], handles[j] = handles[j], handles[i]
	}
	l, err := bind(handles, abs, false)
	if err != nil {
		return nil, err
	}
	l.dir = abs
	l.installLogger()
	l.GGMLBackendLoadAllFromPath(abs)
	if n := l.GGMLBackendDevCount(); n == 0 {
		return nil, fmt.Errorf("llama: no ggml backend device after ggml_backend_load_all_from_path(%q): "+
			"is a libggml-cpu*%s there?", abs, backendModuleExt)
	}
	l.BackendInit()
	l.owned = true
	loaded.lib = l
	return l, nil
}

var loaded struct {
	mu  sync.Mutex
	lib *Lib
}

// FromProcess binds the llama.cpp already loaded into this process (the code runs inside a host
// that links or loaded libllama). It tries RTLD_DEFAULT first; where that lacks symbols (a host
// that loaded llama.cpp with RTLD_LOCAL, as Python ctypes does) it re-opens the host's copies
// with RTLD_NOW|RTLD_NOLOAD, by their usual names and, on linux, by the paths of the loaded
// libllama*/libggml* objects (/proc/self/maps), on darwin by the dyld image list. It never loads
// a new copy, initialises nothing and leaves the host's log callback alone.
func FromProcess() (*Lib, error) {
	l, errDefault := bind([]uintptr{purego.RTLD_DEFAULT}, "the process (RTLD_DEFAULT)", true)
	if errDefault == nil {
		return l, nil
	}
	var handles []uintptr
	seen := map[uintptr]bool{}
	add := func(name string) {
		h, err := purego.Dlopen(name, purego.RTLD_NOW|rtldNoload)
		if err == nil && h != 0 && !seen[h] {
			seen[h] = true
			handles = append(handles, h)
		}
	}
	for i := len(libraryFiles) - 1; i >= 0; i-- { // libllama first
		add(libraryFiles[i])
	}
	for _, path := range loadedRuntimePaths() {
		add(path)
	}
	if len(handles) == 0 {
		return nil, fmt.Errorf("%w; and no loaded libllama/libggml found to re-open with RTLD_NOLOAD", errDefault)
	}
	l, err := bind(handles, "the process's loaded libllama/libggml (RTLD_NOLOAD)", true)
	if err != nil {
		return nil, fmt.Errorf("%v; then %w", errDefault, err)
	}
	return l, nil
}

// FromHandles binds symbols from dlopen handles the caller already holds (searched in order;
// purego.RTLD_DEFAULT is allowed). Like FromProcess it initialises nothing.
func FromHandles(handles ...uintptr) (*Lib, error) {
	if len(handles) == 0 {
		return nil, errors.New("llama: FromHandles: no handle")
	}
	return bind(handles, "the given handles", true)
}

// bind binds a Lib from handles in order (bindFuncs); attach: only the symbols marked ",attach"
// are required.
func bind(handles []uintptr, where string, attach bool) (*Lib, error) {
	l := &Lib{handles: handles}
	if err := l.bindFuncs(l.lookup, where, attach); err != nil {
		return nil, err
	}
	return l, nil
}

// bindFuncs resolves every `sym` of Funcs once with lookup and reports all missing required
// symbols together (where names the place searched); then it resolves l.Ops by name and checks
// struct ggml_tensor's layout against a live tensor (internals.go).
func (l *Lib) bindFuncs(lookup func(string) uintptr, where string, attach bool) error {
	v := reflect.ValueOf(&l.Funcs).Elem()
	t := v.Type()
	var missing []string
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("sym")
		if tag == "" {
			continue
		}
		name, mark, _ := strings.Cut(tag, ",")
		addr := lookup(name)
		if addr == 0 {
			if mark == "optional" || (attach && mark != "attach") {
				l.missing = append(l.missing, name)
			} else {
				missing = append(missing, name)
			}
			continue
		}
		purego.RegisterFunc(v.Field(i).Addr().Interface(), addr)
	}
	if len(missing) > 0 {
		return &MissingSymbolsError{Symbols: missing, Where: where}
	}
	ops, err := resolveOps(l.GGMLOpName)
	if err != nil {
		return err
	}
	l.Ops = ops
	return l.checkTensorLayout()
}

func (l *Lib) lookup(name string) uintptr {
	for _, h := range l.handles {
		if addr, err := purego.Dlsym(h, name); err == nil && addr != 0 {
			return addr
		}
	}
	return 0
}

// Symbol returns the address of any symbol of the runtime (0 if absent), for functions Funcs does
// not cover.
func (l *Lib) Symbol(name string) uintptr { return l.lookup(name) }

// Has reports whether the symbol of a Funcs field that was not required was found.
func (l *Lib) Has(symbol string) bool {
	for _, m := range l.missing {
		if m == symbol {
			return false
		}
	}
	return l.lookup(symbol) != 0
}

// MissingOptional lists the symbols this runtime lacks that were not required (optional ones,
// and for FromProcess and FromHandles those not marked ",attach").
func (l *Lib) MissingOptional() []string { return append([]string(nil), l.missing...) }

// Dir is the directory Load opened ("" for FromProcess and FromHandles).
func (l *Lib) Dir() string { return l.dir }

// Owned reports whether this Lib loaded and initialised the runtime itself (Load).
func (l *Lib) Owned() bool { return l.owned }

// NewThreadpool creates a persistent CPU threadpool of n threads (ggml_threadpool_new through the
// CPU backend's proc-address table), for Context.AttachThreadpool: with an eval callback that
// asks for tensors, a persistent pool avoids starting workers again at every graph split. Free it
// with FreeThreadpool after the contexts using it are freed or detached.
//
// poll is ggml's polling level (0..100; < 0 keeps ggml's default, 50): after each graph, and
// right after creation, the workers spin about poll*128Ki pause instructions waiting for more
// work before sleeping (around 0.1-0.2 s at 50), which takes cores from anything else running.
// On small machines, or with several pools, use a low level.
func (l *Lib) NewThreadpool(n, poll int) (uintptr, error) {
	if err := l.initThreadpool(); err != nil {
		return 0, err
	}
	if n < 1 || poll > 100 {
		return 0, fmt.Errorf("llama: NewThreadpool(%d threads, poll %d)", n, poll)
	}
	// struct ggml_threadpool_params (ggml.h): bool cpumask[GGML_MAX_N_THREADS=512] @0;
	// int n_threads @512; enum ggml_sched_priority prio @516; uint32_t poll @520;
	// bool strict_cpu @524; bool paused @525; sizeof 528. ggml_threadpool_params_init fills it.
	var params [528]byte
	l.GGMLThreadpoolParamsInit(unsafe.Pointer(&params[0]), int32(n))
	if poll >= 0 {
		*(*uint32)(unsafe.Pointer(&params[520])) = uint32(poll)
	}
	tp := l.tpNew(unsafe.Pointer(&params[0]))
	if tp == 0 {
		return 0, fmt.Errorf("llama: ggml_threadpool_new(%d) failed", n)
	}
	return tp, nil
}

// FreeThreadpool frees a pool from NewThreadpool.
func (l *Lib) FreeThreadpool(tp uintptr) {
	if tp != 0 && l.initThreadpool() == nil {
		l.tpFree(tp)
	}
}

func (l *Lib) initThreadpool() error {
	l.tpOnce.Do(func() {
		for _, s := range []string{"ggml_threadpool_params_init", "ggml_backend_dev_by_type",
			"ggml_backend_dev_backend_reg", "ggml_backend_reg_get_proc_address", "llama_attach_threadpool"} {
			if !l.Has(s) {
				l.tpErr = fmt.Errorf("llama: threadpools unsupported: %s missing", s)
				return
			}
		}
		const ggmlBackendDeviceTypeCPU = 0
		dev := l.GGMLBackendDevByType(ggmlBackendDeviceTypeCPU)
		if dev == 0 {
			l.tpErr = errors.New("llama: threadpools unsupported: no CPU backend device")
			return
		}
		reg := l.GGMLBackendDevBackendReg(dev)
		pNew := l.GGMLBackendRegGetProcAddress(reg, "ggml_threadpool_new")
		pFree := l.GGMLBackendRegGetProcAddress(reg, "ggml_threadpool_free")
		if pNew == 0 || pFree == 0 {
			l.tpErr = errors.New("llama: threadpools unsupported: CPU backend lacks ggml_threadpool_new/free")
			return
		}
		purego.RegisterFunc(&l.tpNew, pNew)
		purego.RegisterFunc(&l.tpFree, pFree)
	})
	return l.tpErr
}
