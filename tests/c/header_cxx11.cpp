// header_cxx11: keyformer.h compiles warning-free as C++11 (-std=c++11 -Wall -Wextra -Werror) with
// C linkage for its functions.
#include "keyformer.h"

#include <type_traits>

static_assert(std::is_standard_layout<keyformer_params>::value, "keyformer_params is a C struct");
static_assert(std::is_standard_layout<keyformer_attention>::value, "keyformer_attention is a C struct");
static_assert(sizeof(keyformer_eviction) == 12, "keyformer_eviction is three int32_t");

int kf_header_cxx11();
int kf_header_cxx11() {
    keyformer_params p = keyformer_params();
    p.size = sizeof p;
    keyformer_status (*fn)(const keyformer_params *, keyformer_context **) = &keyformer_context_new;
    bool (*cb)(struct ggml_tensor *, bool, void *) = &keyformer_llama_eval_callback;
    keyformer_status (*apply)(keyformer_context *, int32_t, int32_t *) = &keyformer_llama_apply;
    return static_cast<int>(p.size) + (fn != nullptr) + (cb != nullptr) + (apply != nullptr) + KEYFORMER_API_VERSION;
}
