/*
 * keyformer.h - Keyformer KV-cache eviction (MLSys 2024) for C and C++ inference engines.
 *
 * The engine keeps computing attention as it always does. For each sequence it tells the library
 * which KV cells its new tokens landed in (keyformer_add_cells), shows it each layer's attention
 * probabilities for the ubatch (keyformer_observe), asks which cells to free (keyformer_plan),
 * frees them in its own cache and confirms (keyformer_forget). The cache then stays within a fixed
 * budget of tokens.
 *
 * Conventions
 *  - Every function returns a keyformer_status; KEYFORMER_OK is 0. On an error the library's state
 *    is unchanged and keyformer_last_error(ctx) explains what went wrong.
 *  - Ownership: the library never keeps a pointer the caller passed in past the call; the caller
 *    keeps ownership of every buffer. Strings the library returns are owned by the library.
 *  - Thread safety: calls on different contexts, or on different sequences of one context, may run
 *    concurrently; calls on one sequence are serialised by the library. keyformer_last_error is
 *    per thread: it returns the message of the calling thread's latest failed call, which other
 *    threads' failures never replace.
 *  - Params structs start with a `size` field the caller sets to sizeof(the struct) before any call,
 *    so that the library can grow them compatibly.
 *  - Host limits: the library embeds the Go runtime. It cannot be unloaded (dlclose is a no-op);
 *    do not fork() after loading it unless the child only calls exec; signal handlers the host
 *    installs must use SA_ONSTACK; Go programs import the Go packages instead of this library
 *    (two Go runtimes in one process are unsupported); glibc only.
 */
#ifndef KEYFORMER_H
#define KEYFORMER_H

#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#if defined(_WIN32)
#define KEYFORMER_API __declspec(dllimport)
#elif defined(__GNUC__)
#define KEYFORMER_API __attribute__((visibility("default")))
#else
#define KEYFORMER_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The API this header describes. A host checks keyformer_api_version() >= KEYFORMER_API_VERSION
 * at start-up (later versions only append: struct fields, guarded by `size`, and functions); the
 * version string is informational. Version 2 added the observation schedule (keyformer_params'
 * observe_* and evict_slack fields, keyformer_wants_attention). Version 3 added the mirrors of a
 * host's own llama.cpp cache edits (keyformer_llama_seq_rm, _seq_add, _seq_cp, _seq_keep, _clear)
 * and keyformer_llama_sync. Version 4 added KEYFORMER_POLICY_KEYDIFF with keyformer_observe_keys
 * and keyformer_keys, and the ranking options (keyformer_params' rank_* fields). Version 5 added
 * KEYFORMER_POLICY_PEAK. Version 6 added keyformer_params' observe_prompt_rows. */
#define KEYFORMER_API_VERSION 6
#define KEYFORMER_VERSION_MAJOR 0
#define KEYFORMER_VERSION_MINOR 1
#define KEYFORMER_VERSION_PATCH 0

/* Status codes. */
typedef int32_t keyformer_status;
#define KEYFORMER_OK 0
#define KEYFORMER_ERR_INVALID_ARGUMENT 1  /* NULL pointer, bad size, out-of-range value */
#define KEYFORMER_ERR_INVALID_HANDLE 2    /* unknown or freed context */
#define KEYFORMER_ERR_INVALID_ATTENTION 3 /* NaN, +Inf, or a probability outside [0, 1] */
#define KEYFORMER_ERR_BUFFER_TOO_SMALL 4  /* the output buffer is too small; the needed size is set */
#define KEYFORMER_ERR_INVALID_STATE 5     /* a saved state that is malformed or does not match */
#define KEYFORMER_ERR_UNSUPPORTED 6       /* the engine cannot do what is needed */
#define KEYFORMER_ERR_INTERNAL 7          /* a bug in the library (a recovered panic) */

/* Eviction policies. */
typedef int32_t keyformer_policy;
#define KEYFORMER_POLICY_FULL 0      /* never evict (still scores, so observing costs the same) */
#define KEYFORMER_POLICY_KEYFORMER 1 /* Gumbel-softmax key tokens + recent window */
#define KEYFORMER_POLICY_H2O 2       /* accumulated attention (heavy hitters) + recent window */
#define KEYFORMER_POLICY_TOVA 3      /* attention of the newest query only */
#define KEYFORMER_POLICY_STREAMING 4 /* first n_sinks tokens + the most recent ones */
#define KEYFORMER_POLICY_WINDOW 5    /* the most recent tokens only */
#define KEYFORMER_POLICY_KEYDIFF 6   /* tokens whose keys differ most from the mean key (reads keys,
                                        not attention: keyformer_observe_keys; flash attention may
                                        stay on) + recent window */
#define KEYFORMER_POLICY_PEAK 7      /* the largest attention any query paid a token, in any
                                        layer (scores do not grow with age) + recent window; over
                                        a pass in which the model repeats the text it read,
                                        KVzip's importance */

/* Granularity: one token set per sequence (scores summed over layers and heads; what engines
 * that free whole cells need), or one per layer and KV head. */
typedef int32_t keyformer_granularity;
#define KEYFORMER_GRANULARITY_SHARED 0
#define KEYFORMER_GRANULARITY_PER_HEAD 1

/* Opaque context: the eviction state of every sequence of one engine context. */
typedef struct keyformer_context keyformer_context;

/* Configuration of a context. Set `size`, call keyformer_default_params, then change fields. */
typedef struct keyformer_params {
    uint32_t size;                     /* sizeof(keyformer_params), set by the caller */
    keyformer_policy policy;           /* default KEYFORMER_POLICY_KEYDIFF (KEYFORMER_POLICY_KEYFORMER
                                          for a size of API version 3 or older) */
    keyformer_granularity granularity; /* default KEYFORMER_GRANULARITY_SHARED */
    int32_t n_layer;                   /* model layers (required, no default) */
    int32_t n_head;                    /* query heads (required) */
    int32_t n_head_kv;                 /* KV heads; n_head must be a multiple (required) */
    int32_t budget_tokens;             /* budget in tokens, or 0 to use budget_fraction */
    float budget_fraction;             /* budget as a fraction of the prompt, in (0, 1]; default 0.5 */
    int32_t window_tokens;             /* recent window in tokens, or 0 to use window_fraction */
    float window_fraction;             /* window as a fraction of the budget, in [0, 1); default 0.3 */
    int32_t n_sinks;                   /* tokens StreamingLLM always keeps; default 4 */
    float tau_init;                    /* temperature for the prompt, in [0.01, 100]; default 1 */
    float tau_end;                     /* temperature at token n_new_tokens, in [0.01, 100]; default 2 */
    int32_t n_new_tokens;              /* planned generation length T; default 256 */
    int32_t noise;                     /* 1: Gumbel noise (Keyformer); 0: none; default 1 */
    uint64_t seed;                     /* noise seed; default 0 */
    /* Since API version 2: the observation schedule. Reading fewer layers, or fewer generated
     * tokens, makes observing cheaper; keyformer_wants_attention says what to show. A host built
     * against version 1 passes a smaller size and keeps version 1's behaviour: every layer of
     * every token is read and every plan evicts (stride 1, stride 1, slack 0). */
    int32_t observe_layer_stride;  /* read layers 0, k, 2k, ...; 0 or 1: every layer; default 2 */
    int32_t n_observe_layers;      /* entries of observe_layers; 0: use the stride */
    const int32_t *observe_layers; /* the layers read, each once (copied by keyformer_context_new) */
    int32_t observe_decode_stride; /* read every k-th generated token; prompt chunks always; default 8 */
    int32_t evict_slack;           /* cells a sequence may hold past its budget before the plan
                                      brings it back to the budget at once; default 16 */
    /* Since API version 4: how the scoring policies (keyformer, h2o, tova, keydiff) rank tokens.
     * 0 everywhere is the published methods' ranking (and what a smaller size gets). */
    int32_t rank_mean_attention; /* 1: attention per query that saw the token, not summed (not for
                                    keydiff); default 0 */
    int32_t rank_span;           /* rank a token by the best score within this many tokens either
                                    side (a fact is kept whole); 0: off; default 0 */
    int32_t rank_keep_sinks;     /* 1: never evict the first n_sinks tokens; default 0 */
    /* Since API version 6. Scoring a prompt chunk's attention costs a pass over every cell for
     * each of its rows; reading its last rows only scores less (and a host that copies the
     * attention off a GPU may copy less). 64 bits wide so that the struct grows and a version 4
     * or 5 host's size tells it apart. */
    int64_t observe_prompt_rows; /* read the last k rows of a ubatch's attention for a sequence
                                    (a prompt chunk; a generated token is one row); 0: every
                                    row; default 0 */
} keyformer_params;

/* One layer's attention for one ubatch of one sequence: n_rows query tokens x n_heads query heads x
 * n_cols KV columns. Element (r, h, j) is data[r * row_stride + h * head_stride + j]. Rows hold
 * probabilities (0 = masked or free cell) or, with logits = 1, pre-softmax logits (-INFINITY =
 * masked). For llama.cpp's kq_soft_max tensor: row_stride = n_kv, head_stride = n_kv * n_tokens. */
typedef struct keyformer_attention {
    uint32_t size;        /* sizeof(keyformer_attention), set by the caller */
    int32_t n_rows;
    int32_t n_heads;      /* must equal the context's n_head */
    int32_t n_cols;
    int64_t row_stride;   /* in elements */
    int64_t head_stride;  /* in elements */
    const float *data;    /* read during the call only */
    const int32_t *cells; /* n_cols cell ids, or NULL when column j is cell j; -1 = ignore column */
    int32_t logits;       /* 0: probabilities, 1: logits */
} keyformer_attention;

/* One layer's keys for one ubatch of one sequence (KEYFORMER_POLICY_KEYDIFF): n_rows tokens x
 * n_heads KV heads x head_dim values, best before the positional rotation (RoPE; rotated keys
 * are accepted, but tokens read early then look typical and are evicted first). Element
 * (r, h, d) is data[r * row_stride + h * head_stride + d]. For llama.cpp's Kcur-<layer> tensor
 * before its ROPE (op RESHAPE): head_stride = head_dim, row_stride = head_dim * n_head_kv. */
typedef struct keyformer_keys {
    uint32_t size;       /* sizeof(keyformer_keys), set by the caller */
    int32_t n_rows;
    int32_t n_heads;     /* must equal the context's n_head_kv */
    int32_t head_dim;
    int64_t row_stride;  /* in elements */
    int64_t head_stride; /* in elements */
    const float *data;   /* read during the call only */
} keyformer_keys;

/* A cell to free: the whole cell (layer = head = -1) or, with per-head granularity, the cell's
 * entry for one layer and KV head. */
typedef struct keyformer_eviction {
    int32_t cell;
    int32_t layer;
    int32_t head;
} keyformer_eviction;

/* The API version of the loaded library (compare with KEYFORMER_API_VERSION). Thread-safe. */
KEYFORMER_API int32_t keyformer_api_version(void);

/* The library version, "MAJOR.MINOR.PATCH"; a static string. Thread-safe. */
KEYFORMER_API const char *keyformer_version(void);

/* A static, never-freed name for a status ("ok", "invalid argument", ...). Thread-safe. */
KEYFORMER_API const char *keyformer_status_string(keyformer_status status);

/* The message of the calling thread's latest failed call on ctx, or "" if none. With ctx NULL (or
 * unknown), the message of the calling thread's latest failed keyformer_context_new or call with an
 * invalid handle. The string is owned by the library and stays valid until the same thread's next
 * failed call on the same context (NULL: its next such failure), or until ctx is freed; failures on
 * other threads never free it. Thread-safe. */
KEYFORMER_API const char *keyformer_last_error(const keyformer_context *ctx);

/* Fills *params with the defaults; params->size must be set. n_layer, n_head and n_head_kv stay 0
 * and must be set. Thread-safe. */
KEYFORMER_API keyformer_status keyformer_default_params(keyformer_params *params);

/* Validates *params and creates a context in *out (set to NULL on failure). Free it with
 * keyformer_context_free. Errors name the invalid field (keyformer_last_error(NULL)). Thread-safe. */
KEYFORMER_API keyformer_status keyformer_context_new(const keyformer_params *params, keyformer_context **out);

/* Frees ctx and every sequence state in it; ctx must not be used afterwards (it is then an unknown
 * handle). Also drops its llama.cpp binding and chained callback (keyformer_llama_attach / _chain):
 * free the llama_context first, or never decode with it afterwards. Not concurrently with other
 * calls on ctx. */
KEYFORMER_API keyformer_status keyformer_context_free(keyformer_context *ctx);

/* Declares the prompt length of sequence seq: the length a fractional budget refers to and after
 * which tokens count as generated. Without it, the prompt is what was added before the first plan.
 * Call it before the first plan (needed when a long prompt is fed in chunks with evictions between). */
KEYFORMER_API keyformer_status keyformer_set_prompt_length(keyformer_context *ctx, int32_t seq, int32_t n_prompt);

/* Records n new tokens of sequence seq: cells[i] now holds position positions[i]. Positions must
 * increase and come after every position the sequence holds; cells must not be held already.
 * Add a ubatch's cells before observing its attention. Sequence ids are in [0, 65536). */
KEYFORMER_API keyformer_status keyformer_add_cells(keyformer_context *ctx, int32_t seq, const int32_t *cells,
                                                   const int32_t *positions, int32_t n);

/* Sets *wanted to 1 if the schedule reads layer's attention (its keys, for
 * KEYFORMER_POLICY_KEYDIFF) for the ubatch that just added n_new tokens to sequence seq (call
 * after keyformer_add_cells), else to 0: a host that shows only what is wanted skips reading
 * (and, where it can, materialising) the rest. Always 0 for the streaming and window policies,
 * which read neither. */
KEYFORMER_API keyformer_status keyformer_wants_attention(keyformer_context *ctx, int32_t seq, int32_t layer,
                                                         int32_t n_new, int32_t *wanted);

/* Scores sequence seq's cells with layer's attention for one ubatch and accumulates the scores.
 * Invalid values (NaN, +Inf, probabilities outside [0, 1], with 1/64 of tolerance above 1 for
 * rounding) give KEYFORMER_ERR_INVALID_ATTENTION.
 * Call once per layer per ubatch; the library may use several threads inside the call. */
KEYFORMER_API keyformer_status keyformer_observe(keyformer_context *ctx, int32_t seq, int32_t layer,
                                                 const keyformer_attention *attention);

/* Scores the newest keys->n_rows tokens of sequence seq (the ubatch's, added with
 * keyformer_add_cells) with their keys of layer: KEYFORMER_POLICY_KEYDIFF only (others return
 * KEYFORMER_ERR_INVALID_ARGUMENT). Ask keyformer_wants_attention first, as for attention. NaN or
 * infinite keys return KEYFORMER_ERR_INVALID_ATTENTION and change nothing. */
KEYFORMER_API keyformer_status keyformer_observe_keys(keyformer_context *ctx, int32_t seq, int32_t layer,
                                                      const keyformer_keys *keys);

/* Writes to out[0..capacity) the evictions that bring sequence seq back to its budget (the
 * lowest-scoring tokens outside the recent window, listed in position order) and sets *n_out to
 * their number. If capacity is too small, writes nothing, sets *n_out to the number needed and
 * returns KEYFORMER_ERR_BUFFER_TOO_SMALL (out may be NULL with capacity 0, to ask for the number).
 * Changes no state except resolving a fractional budget on the first call. Free the cells in the
 * engine, then call keyformer_forget. */
KEYFORMER_API keyformer_status keyformer_plan(keyformer_context *ctx, int32_t seq, keyformer_eviction *out,
                                              int32_t capacity, int32_t *n_out);

/* Removes freed cells (or per-head entries) from sequence seq. All are checked first: on an error
 * nothing changes. Also use it when the engine removes cells of its own accord. */
KEYFORMER_API keyformer_status keyformer_forget(keyformer_context *ctx, int32_t seq, const keyformer_eviction *evictions,
                                                int32_t n);

/* Sets *n_out to the number of tokens sequence seq holds (0 for a sequence never used). */
KEYFORMER_API keyformer_status keyformer_seq_length(keyformer_context *ctx, int32_t seq, int32_t *n_out);

/* Forgets sequence seq entirely (its cells, scores and noise stream restart from scratch). */
KEYFORMER_API keyformer_status keyformer_seq_reset(keyformer_context *ctx, int32_t seq);

/* Sets *size_out to the number of bytes keyformer_state_save needs for sequence seq now. */
KEYFORMER_API keyformer_status keyformer_state_size(keyformer_context *ctx, int32_t seq, size_t *size_out);

/* Writes sequence seq's state to buf[0..capacity) and sets *written. If capacity is too small, sets
 * *written to the size needed and returns KEYFORMER_ERR_BUFFER_TOO_SMALL (buf may be NULL with
 * capacity 0). */
KEYFORMER_API keyformer_status keyformer_state_save(keyformer_context *ctx, int32_t seq, uint8_t *buf, size_t capacity,
                                                    size_t *written);

/* Replaces sequence seq's state with one saved from a context with the same policy, granularity and
 * model shape. Malformed data gives KEYFORMER_ERR_INVALID_STATE and changes nothing. */
KEYFORMER_API keyformer_status keyformer_state_load(keyformer_context *ctx, int32_t seq, const uint8_t *buf, size_t size);

/* ---- Use with llama.cpp ------------------------------------------------------------------------
 *
 * These functions drive the whole loop above for a llama.cpp context (the ABI of the llama.cpp
 * release build/scripts/pins.env pins): the library's eval callback reads, during each llama_decode, where the new tokens landed
 * and every layer's attention (kq_soft_max-<layer>); keyformer_llama_apply then frees the planned
 * cells with llama_memory_seq_rm. This header needs no llama.cpp header and the library has no
 * link-time dependency on llama.cpp: it finds the llama_* / ggml_* functions in the host process at
 * run time (keyformer_llama_attach). A host adds:
 *
 *     cparams.flash_attn_type   = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // no attention matrix otherwise
 *     cparams.cb_eval           = keyformer_llama_eval_callback;
 *     cparams.cb_eval_user_data = kf;                              // the keyformer_context
 *     lctx = llama_init_from_model(model, cparams);
 *     keyformer_llama_attach(kf, lctx, NULL);
 *     keyformer_set_prompt_length(kf, 0, n_prompt);                // when the prompt comes in chunks
 *     ... llama_decode(lctx, batch); keyformer_llama_apply(kf, 0, &n_evicted); ...  // every decode
 *
 * Requirements and limits: a context with shared granularity; flash attention disabled (except for
 * KEYFORMER_POLICY_KEYDIFF, which reads keys); a memory that can remove single positions (not
 * sliding-window, recurrent or hybrid models); room for every ubatch before the following apply
 * frees cells. Both of llama.cpp's cache layouts work, told apart at attach: one unified cache
 * (n_seq_max = 1, or kv_unified = true), whose n_ctx must hold every sequence's budget plus one
 * n_ubatch, and one KV stream per sequence (n_seq_max > 1 with kv_unified = false, llama.cpp's
 * default then: llama_n_ctx_seq cells per stream, a multiple of 256), where a token attends to its
 * own stream only, so attention costs shrink with the budget; there each stream must hold its
 * sequence's budget, evict_slack and the tokens of that sequence one decode adds (size n_ctx =
 * n_seq_max x that). Survivors keep
 * their positions: the next token still goes at llama_memory_seq_pos_max + 1 (llama_batch_get_one
 * does that). The llama.cpp context must be freed before the keyformer context, or at least never
 * decode after it. Each attention tensor answered true ends a compute chunk of llama.cpp's graph
 * (a worker-thread sync per layer per ubatch); the other asks are answered in C in a few ns. */

/* Forward declarations: the llama.cpp / ggml types these functions take (never dereferenced by
 * the host through this header). */
struct ggml_tensor;
struct llama_context;

/* The eval callback, with exactly ggml_backend_sched_eval_callback's signature. Set
 *     cparams.cb_eval = keyformer_llama_eval_callback; cparams.cb_eval_user_data = kf;
 * (kf: the keyformer_context) before llama_init_from_model. llama.cpp calls it on the thread that
 * called llama_decode. Asked (ask = true) about a node, it answers true for the attention tensors
 * (kq_soft_max-<layer>) and for the nodes the chained host callback wants (keyformer_llama_chain);
 * it reads the ubatch's positions and cells from the inputs of two nodes while answering false.
 * Called with a computed tensor (ask = false), it scores attention, then forwards the tensor to the
 * host callback if that asked for it. It returns true there except where the host callback, for a
 * tensor it asked for, returns false (which stops llama.cpp's graph: llama.cpp's own semantics).
 * Errors (and recovered internal errors) met inside are kept and reported by the next
 * keyformer_llama_apply. Before keyformer_llama_attach, and for a NULL or unknown user_data, it
 * answers only for the chained host callback. Never call it yourself. */
KEYFORMER_API bool keyformer_llama_eval_callback(struct ggml_tensor *t, bool ask, void *user_data);

/* Binds ctx to the llama.cpp context lctx, created with keyformer_llama_eval_callback and
 * user_data = ctx. The llama_* / ggml_* functions are looked up in the host process:
 *  - llama_library NULL: in the global scope (RTLD_DEFAULT), i.e. a host that links libllama or
 *    loaded it with RTLD_GLOBAL; failing that, in the libllama / libggml objects the process has
 *    loaded (re-opened with RTLD_NOLOAD, found by their usual names and /proc/self/maps), which
 *    covers hosts that load it with RTLD_LOCAL (Python ctypes, most plugin loaders);
 *  - otherwise the file name or path the host loaded libllama from (re-opened with
 *    RTLD_NOW | RTLD_NOLOAD: a library that is not loaded yet is an error, never loaded a second
 *    time). dlopen matches a bare file name only against the names objects were opened by and
 *    their SONAMEs (libllama.vX.Y.Z.so in the pinned build): pass the path the host used.
 * Needs shared granularity (KEYFORMER_ERR_INVALID_ARGUMENT otherwise); missing llama.cpp symbols
 * give KEYFORMER_ERR_UNSUPPORTED. The library keeps lctx (not owned) until ctx is freed or attached
 * again; attaching again (e.g. to a new llama_context) keeps ctx's sequences: reset them with
 * keyformer_seq_reset where the new context starts empty, and chain the host callback again (the
 * chain is kept across attaches). Not concurrently with a llama_decode of lctx or other calls of
 * this section on ctx. */
KEYFORMER_API keyformer_status keyformer_llama_attach(keyformer_context *ctx, struct llama_context *lctx,
                                                      const char *llama_library);

/* Chains the host's own eval callback cb (NULL to remove it) with its user_data behind
 * keyformer_llama_eval_callback: cb is asked about every node as usual; the keyformer callback
 * answers true if either wants the tensor; a computed tensor is passed to cb (ask = false) only if
 * cb asked for it, after keyformer has read it, and cb's return value is then passed through.
 * cb runs on the thread that called llama_decode. The library keeps cb and user_data (not owned)
 * until ctx is freed or the chain is replaced. Callable before or after keyformer_llama_attach,
 * not concurrently with a llama_decode that uses ctx. */
KEYFORMER_API keyformer_status keyformer_llama_chain(keyformer_context *ctx,
                                                     bool (*cb)(struct ggml_tensor *, bool, void *),
                                                     void *user_data);

/* Optional, before a llama_decode of tokens of several sequences in a unified cache: seq_of_token[i]
 * is the sequence of the batch's token i (in batch order; n tokens). Without it every token belongs
 * to sequence 0. With a stream per sequence each token's cell names its sequence, and the
 * declaration is not used. The declaration holds for the next decode only; n = 0 clears it. Negative sequence
 * ids are an error; ids past the range are reported by keyformer_llama_apply. The array is copied.
 * Not concurrently with a llama_decode of the attached context. */
KEYFORMER_API keyformer_status keyformer_llama_set_batch(keyformer_context *ctx, const int32_t *seq_of_token,
                                                         int32_t n);

/* After every successful llama_decode of the attached context, for every sequence the decode
 * touched: reports an error met in the eval callback (its status and message), then frees the
 * cells sequence seq must lose to stay within its budget (llama_memory_seq_rm, positions kept)
 * and forgets them. *n_evicted (n_evicted may be NULL) is set to the number of cells freed, also
 * on an error after some were freed. KEYFORMER_ERR_UNSUPPORTED: the decode showed no attention
 * (flash attention on: create the context with flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED),
 * or the model's memory cannot remove single positions (sliding-window, recurrent, hybrid).
 * KEYFORMER_ERR_INVALID_ARGUMENT: not attached, or no graph ever went through the eval callback
 * with this context as user_data (cb_eval not set). Not concurrently with a llama_decode of the
 * attached context. */
KEYFORMER_API keyformer_status keyformer_llama_apply(keyformer_context *ctx, int32_t seq, int32_t *n_evicted);

/* Restores sequence seq's keyformer state (size bytes from keyformer_state_save, saved together
 * with llama_state_seq_get_data) right after the host restored llama.cpp's state of the sequence
 * with llama_state_seq_set_data: the saved cells are renamed to where llama.cpp put them (cells
 * 0, 1, ... when no other sequence of ctx holds cells) and the positions llama.cpp holds are checked
 * against the saved ones. KEYFORMER_ERR_UNSUPPORTED (nothing changes): another sequence of ctx
 * holds cells, or the cache has a stream per sequence, so llama.cpp placed the restored cells where
 * the library cannot see; restore into a unified cache whose other sequences are empty. KEYFORMER_ERR_INVALID_STATE: malformed data
 * (nothing changes) or positions that do not match llama.cpp's (the sequence is then empty). The
 * buffer is read during the call only. Not concurrently with a llama_decode of the attached
 * context. */
KEYFORMER_API keyformer_status keyformer_llama_restore(keyformer_context *ctx, int32_t seq, const uint8_t *state,
                                                       size_t size);

/* ---- Hosts that edit their own llama.cpp cache ----
 *
 * A host that edits the cache itself (prefix reuse, truncation, regeneration, context shift) calls
 * the matching function right after the llama.cpp call, with the same arguments, so that the
 * library's sequences hold what llama.cpp holds; otherwise the next keyformer_llama_apply fails
 * (tokens the library still holds where llama.cpp decoded new ones) or, worse, evicts by stale
 * positions. Positions follow llama.cpp: p0 < 0 means 0, p1 < 0 means no end, an empty range
 * changes nothing. Sequence ids are checked (0 <= id < 65536; a negative id only where llama.cpp
 * takes one). Errors: KEYFORMER_ERR_INVALID_HANDLE for a NULL or unknown ctx,
 * KEYFORMER_ERR_INVALID_ARGUMENT when ctx is not attached or for a bad id; on an error nothing
 * changes. Not concurrently with a llama_decode of the attached context. A sequence an edit leaves
 * empty starts over as a new one (its budget resolves again with the next prompt). */

/* After llama_memory_seq_rm(mem, seq, p0, p1) returned true: forgets the tokens of seq (of every
 * sequence when seq < 0) at positions [p0, p1). */
KEYFORMER_API keyformer_status keyformer_llama_seq_rm(keyformer_context *ctx, int32_t seq, int32_t p0, int32_t p1);

/* After llama_memory_seq_add(mem, seq, p0, p1, delta): the positions of seq in [p0, p1) move by
 * delta. As in llama.cpp, a token whose position falls below 0 is forgotten (llama.cpp frees its
 * cell), and a cell seq shares with other sequences (keyformer_llama_seq_cp) moves, or goes, in
 * all of them. KEYFORMER_ERR_UNSUPPORTED (nothing changes): the shift gives two tokens of a
 * sequence one position, which llama.cpp allows but the library cannot follow (it frees by
 * position): remove the sequence on both sides (llama_memory_seq_rm(mem, seq, -1, -1), then
 * keyformer_llama_seq_rm(ctx, seq, -1, -1)). */
KEYFORMER_API keyformer_status keyformer_llama_seq_add(keyformer_context *ctx, int32_t seq, int32_t p0, int32_t p1,
                                                       int32_t delta);

/* After llama_memory_seq_cp(mem, src, dst, p0, p1): in llama.cpp's unified cache dst now also
 * holds src's cells in [p0, p1), the same cells (with a stream per sequence llama.cpp copies src's
 * whole stream into dst's, emptied first, and dst gets src's tokens in its own stream's cells). Sequence dst gets those tokens (same cells and
 * positions) with a copy of their scores; a dst that never held a token also continues src's
 * prompt length, budget and step count. From then on each sequence scores and evicts the shared
 * cells on its own: keyformer_llama_apply of one removes the cell from that sequence only
 * (llama_memory_seq_rm of one sequence), and the cell stays for the other. Cells dst holds
 * already are skipped. KEYFORMER_ERR_UNSUPPORTED (nothing changes): dst holds a copied position in
 * another cell. src == dst changes nothing. */
KEYFORMER_API keyformer_status keyformer_llama_seq_cp(keyformer_context *ctx, int32_t src, int32_t dst, int32_t p0,
                                                      int32_t p1);

/* After llama_memory_seq_keep(mem, seq): every other sequence forgets everything (with a stream
 * per sequence llama.cpp frees nothing of the other streams, and neither does the library). */
KEYFORMER_API keyformer_status keyformer_llama_seq_keep(keyformer_context *ctx, int32_t seq);

/* After llama_memory_clear(mem, data): every sequence forgets everything. */
KEYFORMER_API keyformer_status keyformer_llama_clear(keyformer_context *ctx);

/* Resynchronises sequence seq (every sequence that holds tokens when seq < 0) with llama.cpp
 * after a failed llama_decode (llama.cpp then removes the positions of the ubatch that failed,
 * whose cells the library had already recorded, and keeps the earlier ubatches of the batch), or
 * after any edit the host did not mirror that removed a head or a tail of a sequence: reads
 * llama_memory_seq_pos_min / _pos_max and forgets the tokens outside [pos_min, pos_max] (every
 * token when llama.cpp holds none). It also drops the state kept from the decode for
 * keyformer_llama_apply (the keyformer_llama_set_batch declaration, the ubatch bookkeeping, an
 * error met in the eval callback), so that the next decode starts clean: call it instead of
 * keyformer_llama_apply after a failed decode. It sees only llama.cpp's lowest and highest
 * positions: a hole removed inside a sequence, a shift or a copy cannot be detected and must be
 * mirrored with the functions above. */
KEYFORMER_API keyformer_status keyformer_llama_sync(keyformer_context *ctx, int32_t seq);

#ifdef __cplusplus
}
#endif

#endif /* KEYFORMER_H */
