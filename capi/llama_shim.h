/* llama_shim.h: the C side of the llama.cpp integration (llama_shim.c), shared with llama.go. */
#ifndef KF_LLAMA_SHIM_H
#define KF_LLAMA_SHIM_H

#include <stdint.h>

/* The size of the name buffers below: ggml's GGML_MAX_NAME of the pinned ggml.h (llama.go checks
 * that it equals bindings/llama's MaxName). */
#define KF_NAME_MAX 64

/* What the eval callback compares graph nodes with, handed over by Go at attach from
 * bindings/llama (internals.go): node names, op numbers resolved at bind, and the offsets of the
 * two struct ggml_tensor fields the callback reads. The C side holds no llama.cpp knowledge. */
struct kf_graph {
    uint32_t off_name;  /* offset of char name[KF_NAME_MAX] in struct ggml_tensor */
    uint32_t off_op;    /* offset of enum ggml_op op (4 bytes) */
    int32_t op_positions; /* the op of the positions node (ROPE) */
    int32_t op_cells;     /* the op of the cells node (SET_ROWS) */
    int32_t op_keys[2];   /* the ops of the keys nodes (RESHAPE, VIEW) */
    uint32_t attention_len;       /* strlen(attention) */
    char attention[KF_NAME_MAX];  /* the attention nodes' prefix, "kq_soft_max-" */
    uint32_t positions_len;       /* strlen(positions) + 1: compared with its NUL, an exact match */
    char positions[KF_NAME_MAX];  /* "Kcur-0" */
    uint32_t cells_len;           /* strlen(cells) */
    char cells[KF_NAME_MAX];      /* the cells node's prefix, "cache_k_l0 (" */
    int32_t read_keys;            /* 1: the policy reads keys (nodes of an op_keys named keys...) */
    uint32_t keys_len;            /* strlen(keys) */
    char keys[KF_NAME_MAX];       /* the keys nodes' prefix, "Kcur-" */
};

/* Marks handle h attached, comparing nodes with *g (copied), or, with g NULL, not attached;
 * creates or keeps its slot. */
void kf_llama_set_attached(uintptr_t h, const struct kf_graph *g);

#endif
