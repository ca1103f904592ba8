#!/usr/bin/env bash
# build/scripts/ensure-tools.sh: installs, from Debian's packages, the tools a build or test needs when they
# are missing (a fresh CI machine). Does nothing when everything is there.
#   (no argument)  the C ABI build and its tests: cmake, ninja (ninja-build), pkg-config, gcc, g++,
#                  the ASan/UBSan runtimes (libasan8, libubsan1) for the sanitizer configuration,
#                  and python3-venv when python3 cannot create a virtual environment (build/scripts/venv.sh);
#                  `make lib`, `make ctest` and `make bench-abi` run it.
#   --arm64        qemu-aarch64 (qemu-user), which runs the linux/arm64 test binaries, and the arm64
#                  libc they link (libc6-arm64-cross, /usr/aarch64-linux-gnu); `make arm64`.
#   --fuzz         clang with libFuzzer and its sanitizer runtimes (clang, libclang-rt-dev), when
#                  clang cannot link -fsanitize=fuzzer,address,undefined; `make fuzz-c`.
set -euo pipefail

missing=()
case "${1:-}" in
--arm64)
  command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
  [[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]] || missing+=(libc6-arm64-cross)
  ;;
--fuzz)
  probe=$(mktemp -d)
  trap 'rm -rf "$probe"' EXIT
  printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return 0; }\n' >"$probe/f.c"
  if ! clang -fsanitize=fuzzer,address,undefined "$probe/f.c" -o "$probe/f" >/dev/null 2>&1; then
    missing+=(clang libclang-rt-dev)
  fi
  ;;
"")
  declare -A pkg_of=([cmake]=cmake [ninja]=ninja-build [pkg-config]=pkg-config [gcc]=gcc [g++]=g++)
  for tool in cmake ninja pkg-config gcc g++; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg_of[$tool]}")
  done

  # The sanitizer runtimes: can gcc link -fsanitize=address,undefined?
  if command -v gcc >/dev/null 2>&1; then
    probe=$(mktemp -d)
    trap 'rm -rf "$probe"' EXIT
    echo 'int main(void) { return 0; }' > "$probe/t.c"
    if ! gcc -fsanitize=address,undefined "$probe/t.c" -o "$probe/t" >/dev/null 2>&1; then
      missing+=(libasan8 libubsan1)
    fi
  fi

  # Python's venv and ensurepip (Debian splits them into python3-venv).
  if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=(python3-venv)
  fi
  ;;
*)
  echo "ensure-tools: unknown argument $1 (none, --arm64 or --fuzz)" >&2
  exit 2
  ;;
esac

if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "ensure-tools: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "ensure-tools: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
