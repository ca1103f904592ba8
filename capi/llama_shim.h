/* llama_shim.h: the C side of the llama.cpp integration (llama_shim.c), shared with llama.go. */
#ifndef KF_LLAMA_SHIM_H
#define KF_LLAMA_SHIM_H

#include <stdint.h>

/* Marks handle h attached (1) or not (0) for the eval callback; creates or keeps its slot. */
void kf_llama_set_attached(uintptr_t h, int attached);

#endif
