//go:build linux || darwin

package llama

import (
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
)

// purego callbacks come from a fixed pool (2000 per process) and are never freed, so this file
// creates exactly two: one ggml_backend_sched_eval_callback and one ggml_log_callback, each
// shared by every Lib and context and dispatching in Go.

// EvalFunc observes a graph node during llama_decode. llama.cpp calls it twice per node it is
// interested in: first with ask = true, before computing the chunk of the graph that ends at t
// (return true to see t once computed); then, for nodes answered true only, with ask = false
// after t has been computed (the node's data is readable then).
//
// The return value of the ask = false call is ignored: the shared callback always answers true
// there, because returning false stops the graph while llama_decode still reports success and
// commits the positions (silent corruption). Cancel a decode with an abort callback instead.
//
// Every node of every graph split is asked about (about 1100 asks per decode for a 30-layer
// model), on the thread that called llama_decode, while the engine's workers wait: keep the ask
// path tiny (compare names with Tensor.NameIs / NameLayer, which do not allocate). Each answer
// true ends a compute chunk (a worker sync). Graph inputs (inp_pos, attn_inp_k_idxs ...) are
// already set during the asks, so they can be read while answering false. A panic is recovered,
// reported by Context.Decode, and further asks of that decode are answered false.
type EvalFunc func(t Tensor, ask bool) bool

type evalSlot struct {
	fn       EvalFunc
	panicked atomic.Pointer[evalPanic]
}

type evalPanic struct {
	value any
	stack []byte
}

var evalState struct {
	once  sync.Once
	cb    uintptr
	mu    sync.Mutex
	slots atomic.Pointer[[]*evalSlot] // copy-on-write; user_data = index + 1
	free  []int
}

func evalTrampoline(t unsafe.Pointer, ask bool, userData uintptr) (ret bool) {
	if t == nil {
		return !ask
	}
	slots := evalState.slots.Load()
	i := int(userData) - 1
	if slots == nil || i < 0 || i >= len(*slots) {
		return !ask
	}
	s := (*slots)[i]
	if s == nil || s.panicked.Load() != nil {
		return !ask
	}
	defer func() {
		if r := recover(); r != nil {
			s.panicked.Store(&evalPanic{r, debug.Stack()})
			ret = !ask
		}
	}()
	want := s.fn(Tensor{t}, ask)
	return want || !ask
}

// EvalCallback returns the process's one eval callback, a C function pointer of type
// ggml_backend_sched_eval_callback to put in ContextParams.CbEval, with the UserData of a
// handle from RegisterEval in ContextParams.CbEvalUserData. It is created on first use.
func EvalCallback() uintptr {
	evalState.once.Do(func() { evalState.cb = purego.NewCallback(evalTrampoline) })
	return evalState.cb
}

// EvalHandle is a registered EvalFunc.
type EvalHandle struct {
	slot   *evalSlot
	index  int
	filter *askFilterTable // nil: every ask enters Go
}

// RegisterEval registers fn for the shared eval callback. Given nodes (name prefixes of 1 to 16
// bytes, at most 4), fn is asked only about nodes whose names start with one of them: the others
// are answered false by an ask filter in assembly, without entering Go (on amd64 and arm64;
// elsewhere fn sees every ask and must answer them). Pass h.Callback() and h.UserData() as the
// context's cb_eval and cb_eval_user_data; Release the handle after the context is freed.
func RegisterEval(fn EvalFunc, nodes ...string) (*EvalHandle, error) {
	if fn == nil {
		panic("llama: RegisterEval(nil)")
	}
	EvalCallback()
	s := &evalSlot{fn: fn}
	h := &EvalHandle{slot: s}
	h.index = registerSlot(s)
	if len(nodes) > 0 {
		var err error
		if h.filter, err = newAskFilter(evalState.cb, h.slotUserData(), nodes); err != nil {
			h.Release()
			return nil, err
		}
	}
	return h, nil
}

// registerSlot adds s to the slots and returns its index.
func registerSlot(s *evalSlot) int {
	evalState.mu.Lock()
	defer evalState.mu.Unlock()
	var cur []*evalSlot
	if p := evalState.slots.Load(); p != nil {
		cur = *p
	}
	next := append([]*evalSlot(nil), cur...)
	idx := len(next)
	if n := len(evalState.free); n > 0 {
		idx = evalState.free[n-1]
		evalState.free = evalState.free[:n-1]
		next[idx] = s
	} else {
		next = append(next, s)
	}
	evalState.slots.Store(&next)
	return idx
}

// Callback is the value for ContextParams.CbEval: the ask filter when the handle has one, else
// EvalCallback().
func (h *EvalHandle) Callback() uintptr {
	if h.filter != nil {
		return askFilterABI0
	}
	return evalState.cb
}

// UserData is the value for ContextParams.CbEvalUserData.
func (h *EvalHandle) UserData() uintptr {
	if h.filter != nil {
		return uintptr(unsafe.Pointer(h.filter))
	}
	return h.slotUserData()
}

// slotUserData is the user_data of the shared callback for h's slot.
func (h *EvalHandle) slotUserData() uintptr { return uintptr(h.index + 1) }

// TakePanic returns (and clears) a panic recovered in the function, as an error.
func (h *EvalHandle) TakePanic() error {
	if p := h.slot.panicked.Swap(nil); p != nil {
		return fmt.Errorf("llama: eval callback panicked: %v\n%s", p.value, p.stack)
	}
	return nil
}

// Release unregisters the function (and unmaps its ask filter); later calls with its slot's
// user_data answer false to asks. Release only after the context using it is freed.
func (h *EvalHandle) Release() {
	if h == nil || h.index < 0 {
		return
	}
	evalState.mu.Lock()
	defer evalState.mu.Unlock()
	cur := *evalState.slots.Load()
	next := append([]*evalSlot(nil), cur...)
	next[h.index] = nil
	evalState.slots.Store(&next)
	evalState.free = append(evalState.free, h.index)
	h.index = -1
	h.filter.free()
	h.filter = nil
}

// LogLevel is enum ggml_log_level.
type LogLevel int32

// Log levels (ggml.h). LogCont continues the previous message.
const (
	LogNone  LogLevel = 0
	LogDebug LogLevel = 1
	LogInfo  LogLevel = 2
	LogWarn  LogLevel = 3
	LogError LogLevel = 4
	LogCont  LogLevel = 5
)

// LogFunc receives llama.cpp / ggml log text (usually a line with its newline; LogCont pieces
// continue the previous message). It may be called from any thread.
type LogFunc func(level LogLevel, text string)

var logState struct {
	once sync.Once
	cb   uintptr
	fn   atomic.Pointer[LogFunc]
}

func init() {
	fn := LogFunc(StderrLogger(LogWarn))
	logState.fn.Store(&fn)
}

func logTrampoline(level int32, text *byte, _ uintptr) {
	p := logState.fn.Load()
	if p == nil || *p == nil || text == nil {
		return
	}
	defer func() { _ = recover() }() // a panic must not unwind into C
	(*p)(LogLevel(level), goString(text))
}

// SetLogger sets where the log callback installed by Load (or InstallLogger) sends llama.cpp's
// messages: nil drops them all. The default is StderrLogger(LogWarn).
func SetLogger(fn LogFunc) {
	logState.fn.Store(&fn)
}

// StderrLogger returns a LogFunc writing messages of level >= min (and their continuations) to
// standard error.
func StderrLogger(min LogLevel) LogFunc {
	var last atomic.Int32
	return func(level LogLevel, text string) {
		if level == LogCont {
			level = LogLevel(last.Load())
		} else {
			last.Store(int32(level))
		}
		if level >= min {
			os.Stderr.WriteString(text)
		}
	}
}

// InstallLogger routes llama.cpp's and ggml's logs (llama_log_set, which also sets ggml's) to the
// package LogFunc (SetLogger). Load does this itself; FromProcess does not, so as not to take
// the host's logs.
func (l *Lib) InstallLogger() { l.installLogger() }

func (l *Lib) installLogger() {
	logState.once.Do(func() { logState.cb = purego.NewCallback(logTrampoline) })
	l.LogSet(logState.cb, 0)
}

// RestoreDefaultLogger gives llama.cpp back its own stderr logger (llama_log_set(NULL, NULL)).
func (l *Lib) RestoreDefaultLogger() { l.LogSet(0, 0) }
