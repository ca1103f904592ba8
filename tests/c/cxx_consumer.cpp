// cxx_consumer: the scenarios of scenario.h from C++11 through a small RAII wrapper: the exact
// H2O evictions, and a Keyformer run whose evictions repeat under the same seed and continue
// identically after a state save/load into another context.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "keyformer.h"
#include "scenario.h"

namespace kf {

// Error is a failed call: its status and the library's message.
class Error : public std::runtime_error {
  public:
    Error(keyformer_status status, const std::string &what) : std::runtime_error(what), status_(status) {}
    keyformer_status status() const { return status_; }

  private:
    keyformer_status status_;
};

inline void check(keyformer_status st, const keyformer_context *ctx, const char *call) {
    if (st != KEYFORMER_OK) {
        throw Error(st, std::string(call) + ": " + keyformer_status_string(st) + ": " + keyformer_last_error(ctx));
    }
}

// Params starts from keyformer_default_params.
struct Params : keyformer_params {
    Params() {
        std::memset(static_cast<keyformer_params *>(this), 0, sizeof(keyformer_params));
        size = sizeof(keyformer_params);
        check(keyformer_default_params(this), nullptr, "keyformer_default_params");
    }
};

// Context owns a keyformer_context: movable, not copyable, freed by the destructor.
class Context {
  public:
    explicit Context(const keyformer_params &p) { check(keyformer_context_new(&p, &ctx_), nullptr, "keyformer_context_new"); }
    ~Context() {
        if (ctx_) {
            keyformer_context_free(ctx_);
        }
    }
    Context(Context &&o) noexcept : ctx_(o.ctx_) { o.ctx_ = nullptr; }
    Context &operator=(Context &&o) noexcept {
        std::swap(ctx_, o.ctx_);
        return *this;
    }
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;

    void add_cells(int32_t seq, const std::vector<int32_t> &cells, const std::vector<int32_t> &positions) {
        if (cells.size() != positions.size()) {
            throw std::invalid_argument("cells and positions differ in length");
        }
        check(keyformer_add_cells(ctx_, seq, cells.data(), positions.data(), static_cast<int32_t>(cells.size())), ctx_,
              "keyformer_add_cells");
    }
    void observe(int32_t seq, int32_t layer, const keyformer_attention &a) {
        check(keyformer_observe(ctx_, seq, layer, &a), ctx_, "keyformer_observe");
    }
    // plan asks for the count first when the buffer is too small.
    std::vector<keyformer_eviction> plan(int32_t seq) {
        std::vector<keyformer_eviction> out(1);
        int32_t n = 0;
        keyformer_status st = keyformer_plan(ctx_, seq, out.data(), static_cast<int32_t>(out.size()), &n);
        if (st == KEYFORMER_ERR_BUFFER_TOO_SMALL) {
            out.resize(static_cast<size_t>(n));
            st = keyformer_plan(ctx_, seq, out.data(), n, &n);
        }
        check(st, ctx_, "keyformer_plan");
        out.resize(static_cast<size_t>(n));
        return out;
    }
    void forget(int32_t seq, const std::vector<keyformer_eviction> &evs) {
        check(keyformer_forget(ctx_, seq, evs.data(), static_cast<int32_t>(evs.size())), ctx_, "keyformer_forget");
    }
    int32_t length(int32_t seq) {
        int32_t n = 0;
        check(keyformer_seq_length(ctx_, seq, &n), ctx_, "keyformer_seq_length");
        return n;
    }
    std::vector<uint8_t> save(int32_t seq) {
        size_t size = 0, written = 0;
        check(keyformer_state_size(ctx_, seq, &size), ctx_, "keyformer_state_size");
        std::vector<uint8_t> buf(size);
        check(keyformer_state_save(ctx_, seq, buf.data(), buf.size(), &written), ctx_, "keyformer_state_save");
        buf.resize(written);
        return buf;
    }
    void load(int32_t seq, const std::vector<uint8_t> &state) {
        check(keyformer_state_load(ctx_, seq, state.data(), state.size()), ctx_, "keyformer_state_load");
    }

  private:
    keyformer_context *ctx_ = nullptr;
};

} // namespace kf

static int failures = 0;

static void expect(bool ok, const std::string &what) {
    if (!ok) {
        std::fprintf(stderr, "check failed: %s\n", what.c_str());
        failures++;
    }
}

static keyformer_attention attention(int32_t rows, int32_t cols, const float *data, const int32_t *cells) {
    keyformer_attention a;
    std::memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.n_rows = rows;
    a.n_heads = 1;
    a.n_cols = cols;
    a.row_stride = cols;
    a.head_stride = static_cast<int64_t>(rows) * cols;
    a.data = data;
    a.cells = cells;
    return a;
}

static void test_h2o_exact() {
    kf::Params p;
    kf_h2o_params(&p);
    kf::Context ctx(p);
    std::vector<int32_t> cells, pos;
    for (int32_t i = 0; i < KF_H2O_PREFILL; i++) {
        cells.push_back(i);
        pos.push_back(i);
    }
    ctx.add_cells(0, cells, pos);
    ctx.observe(0, 0, attention(KF_H2O_PREFILL, KF_H2O_PREFILL, kf_h2o_prefill, nullptr));
    std::vector<keyformer_eviction> ev = ctx.plan(0);
    expect(ev.size() == KF_H2O_PREFILL_EVICTIONS, "prefill: " + std::to_string(ev.size()) + " evictions");
    for (size_t i = 0; i < ev.size() && i < KF_H2O_PREFILL_EVICTIONS; i++) {
        expect(ev[i].cell == kf_h2o_prefill_evictions[i], "prefill eviction " + std::to_string(i) + ": cell " +
                                                              std::to_string(ev[i].cell));
    }
    ctx.forget(0, ev);
    expect(ctx.length(0) == KF_H2O_BUDGET, "length after prefill");
    for (int s = 0; s < KF_H2O_STEPS; s++) {
        const kf_h2o_step &st = kf_h2o_steps[s];
        ctx.add_cells(0, {st.cell}, {st.pos});
        ctx.observe(0, 0, attention(1, st.n_cols, st.row, st.use_cells ? st.cells : nullptr));
        ev = ctx.plan(0);
        expect(ev.size() == 1 && ev[0].cell == st.evict,
               "step " + std::to_string(s + 1) + ": want cell " + std::to_string(st.evict));
        ctx.forget(0, ev);
        expect(ctx.length(0) == KF_H2O_BUDGET, "length at step " + std::to_string(s + 1));
    }
}

// Run is one context driving the Keyformer scenario with its own simulated engine.
struct Run {
    kf::Context ctx;
    int32_t seq;
    kf_sim sim;
    std::vector<int32_t> log; // evicted positions

    static keyformer_params params(uint64_t seed) {
        kf::Params p;
        kf_keyformer_params(&p, seed);
        return p;
    }
    Run(uint64_t seed, int32_t seq_) : ctx(params(seed)), seq(seq_) { kf_sim_init(&sim, 0x5eed); }

    void decode(int32_t n) {
        std::vector<int32_t> cells(static_cast<size_t>(n)), pos(static_cast<size_t>(n));
        if (!kf_sim_add(&sim, n, cells.data(), pos.data())) {
            throw std::runtime_error("simulated cache full");
        }
        ctx.add_cells(seq, cells, pos);
        std::vector<float> buf(static_cast<size_t>(n) * KF_SIM_HEADS * KF_SIM_CELLS);
        for (int32_t layer = 0; layer < KF_SIM_LAYERS; layer++) {
            keyformer_attention a;
            kf_sim_attention(&sim, layer, pos.data(), n, buf.data(), &a);
            ctx.observe(seq, layer, a);
        }
        std::vector<keyformer_eviction> ev = ctx.plan(seq);
        for (const keyformer_eviction &e : ev) {
            int32_t p = kf_sim_free(&sim, e.cell);
            expect(p >= 0 && p < sim.next_pos - KF_SIM_WINDOW, "evicted position " + std::to_string(p));
            log.push_back(p);
        }
        ctx.forget(seq, ev);
        expect(ctx.length(seq) <= KF_SIM_BUDGET, "length over the budget");
    }
};

static void test_keyformer() {
    Run a(42, 0), b(42, 0);
    a.decode(KF_SIM_PROMPT);
    b.decode(KF_SIM_PROMPT);
    for (int i = 0; i < KF_SIM_STEPS; i++) {
        a.decode(1);
        b.decode(1);
    }
    expect(a.log.size() == KF_SIM_PROMPT - KF_SIM_BUDGET + KF_SIM_STEPS, "eviction count");
    expect(a.log == b.log, "same seed, different evictions");

    Run d(42, 0), e(42, 5);
    d.decode(KF_SIM_PROMPT);
    int i = 0;
    for (; i < KF_SIM_STEPS / 2; i++) {
        d.decode(1);
    }
    e.ctx.load(e.seq, d.ctx.save(d.seq));
    e.sim = d.sim;
    e.log = d.log;
    for (; i < KF_SIM_STEPS; i++) {
        d.decode(1);
        e.decode(1);
    }
    expect(d.log == e.log, "the loaded state continued differently");
    expect(a.log == d.log, "a run saved half way differs from an uninterrupted one");
    expect(d.ctx.save(d.seq) == e.ctx.save(e.seq), "final states differ");

    kf::Context moved(std::move(a.ctx)); // the moved-from wrapper must not free it twice
    expect(moved.length(0) == KF_SIM_BUDGET, "moved context");
}

int main() {
    try {
        test_h2o_exact();
        test_keyformer();
    } catch (const std::exception &ex) {
        std::fprintf(stderr, "cxx_consumer: %s\n", ex.what());
        return 1;
    }
    if (failures) {
        std::fprintf(stderr, "cxx_consumer: %d check(s) failed\n", failures);
        return 1;
    }
    std::printf("cxx_consumer: ok\n");
    return 0;
}
