// Package llama loads a llama.cpp runtime (libllama, libggml, libggml-base) with purego, without
// cgo, and wraps the part of its C API that Keyformer needs: models, contexts, batches, the KV
// cache ("memory") calls, per-sequence state, the eval callback and read-only access to
// struct ggml_tensor.
//
// The struct mirrors (ModelParams, ContextParams, Batch) are laid out for ONE pinned llama.cpp: the
// release PinnedLlamaCpp, as build/scripts/pins.env pins it (the npm build of node-llama-cpp). They are
// checked at compile time (sizes, offsets) and at run time (Lib.CheckLayout reads the library's
// default parameters back through the mirrors). struct ggml_tensor's offsets are generated from the
// pinned ggml.h (go generate: ztensor_lp64.go) and checked against a live tensor whenever a runtime
// is bound, and the ggml op numbers are resolved by name then (Lib.Ops); internals.go holds these
// and the graph node names. Another llama.cpp version needs the mirrors re-derived from its llama.h
// (docs/porting.md, "Moving to a new llama.cpp").
//
// Two ways to get a Lib:
//
//   - Load(dir): this process owns the runtime; dlopen the three libraries from dir with
//     RTLD_NOW|RTLD_GLOBAL, load the ggml backends (ggml_backend_load_all_from_path) and call
//     llama_backend_init. Used by Go programs and tests.
//   - FromProcess(): the code runs inside a host that already loaded llama.cpp; symbols come from
//     RTLD_DEFAULT, or from the host's copy re-opened with RTLD_NOLOAD when the host loaded it
//     RTLD_LOCAL (Python ctypes). Nothing is initialised and no log callback is installed. Only
//     the symbols bindings/adapter calls are required (the Funcs fields marked ",attach").
//
// Callbacks: purego callbacks come from a fixed process-wide pool and are never freed, so the
// package creates exactly one eval callback (EvalCallback, dispatching on user_data to functions
// registered with RegisterEval) and one log callback, whatever the number of Libs or contexts.
//
// Only linux and darwin are supported (purego's Dlopen). The whole package is built on other
// systems only as this documentation.
package llama
