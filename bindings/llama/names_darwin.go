//go:build darwin

package llama

import (
	"path/filepath"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// libraryFiles are the runtime's shared libraries in dependency order. On macOS (e.g. npm
// @node-llama-cpp/mac-arm64-metal) the libraries built as CMake SHARED libraries are .dylib files.
//
// The backends are different: with GGML_BACKEND_DL (node-llama-cpp's CI builds on mac arm64 set
// GGML_BACKEND_DL=ON and GGML_CPU_ALL_VARIANTS=ON) they are CMake MODULE libraries, which CMake
// names *.so on macOS too (libggml-metal.so, libggml-blas.so, libggml-cpu-apple_m1.so ...), and
// ggml-backend-reg.cpp searches for "libggml-<name>-*.so" on every non-Windows system. Without
// GGML_BACKEND_DL (e.g. Homebrew) the backends are linked into libggml.dylib and
// ggml_backend_load_all_from_path finds nothing to load, which is fine.
var libraryFiles = []string{"libggml-base.dylib", "libggml.dylib", "libllama.dylib"}

// backendModuleExt is the extension of the dynamically loaded ggml backends (see libraryFiles).
const backendModuleExt = ".so"

// rtldNoload is Darwin's RTLD_NOLOAD (<dlfcn.h>); purego does not export it.
const rtldNoload = 0x10

var dyld struct {
	once       sync.Once
	imageCount func() uint32
	imageName  func(i uint32) string
}

// loadedRuntimePaths returns the paths of the libllama*/libggml* images loaded into this process,
// libllama first, from the dyld image list.
func loadedRuntimePaths() []string {
	dyld.once.Do(func() {
		if a, err := purego.Dlsym(purego.RTLD_DEFAULT, "_dyld_image_count"); err == nil {
			purego.RegisterFunc(&dyld.imageCount, a)
		}
		if a, err := purego.Dlsym(purego.RTLD_DEFAULT, "_dyld_get_image_name"); err == nil {
			purego.RegisterFunc(&dyld.imageName, a)
		}
	})
	if dyld.imageCount == nil || dyld.imageName == nil {
		return nil
	}
	var llama, ggml []string
	for i := range dyld.imageCount() {
		path := dyld.imageName(i)
		base := filepath.Base(path)
		switch {
		case !strings.HasSuffix(base, ".dylib"):
		case strings.HasPrefix(base, "libllama"):
			llama = append(llama, path)
		case strings.HasPrefix(base, "libggml"):
			ggml = append(ggml, path)
		}
	}
	return append(llama, ggml...)
}
