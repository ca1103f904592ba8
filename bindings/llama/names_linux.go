//go:build linux

package llama

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// libraryFiles are the runtime's shared libraries in dependency order (each needs the ones before
// it). In the pinned linux build libggml.so and libllama.so are symlinks to libggml.vX.Y.Z.so and
// libllama.vX.Y.Z.so, whose SONAMEs are those versioned names; libggml-base.so has no version.
var libraryFiles = []string{"libggml-base.so", "libggml.so", "libllama.so"}

// backendModuleExt is the extension of the dynamically loaded ggml backends (libggml-cpu-*.so,
// libggml-cuda.so ...) that ggml_backend_load_all_from_path looks for.
const backendModuleExt = ".so"

// rtldNoload is glibc's RTLD_NOLOAD (<bits/dlfcn.h>); purego does not export it.
const rtldNoload = 0x00004

// loadedRuntimePaths returns the paths of the libllama*/libggml* objects mapped into this
// process, libllama first, from /proc/self/maps. dlopen(name, RTLD_NOLOAD) with a bare file name
// matches only objects opened under that name or SONAME, so a host that loaded
// /x/libllama.so (SONAME libllama.vX.Y.Z.so) is found here by its full path instead.
func loadedRuntimePaths() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var llama, ggml []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		i := strings.IndexByte(line, '/')
		if i < 0 {
			continue
		}
		path := strings.TrimSuffix(line[i:], " (deleted)")
		if seen[path] {
			continue
		}
		seen[path] = true
		base := filepath.Base(path)
		switch {
		case !strings.Contains(base, ".so"):
		case strings.HasPrefix(base, "libllama"):
			llama = append(llama, path)
		case strings.HasPrefix(base, "libggml"):
			ggml = append(ggml, path)
		}
	}
	return append(llama, ggml...)
}
