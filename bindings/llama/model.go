//go:build linux || darwin

package llama

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"
)

// Model is a loaded llama_model with its vocabulary and shape.
type Model struct {
	lib   *Lib
	ptr   uintptr
	vocab uintptr

	NLayer    int // llama_model_n_layer
	NHead     int // query heads (llama_model_n_head)
	NHeadKV   int // KV heads (llama_model_n_head_kv)
	NEmbd     int // llama_model_n_embd
	NCtxTrain int // llama_model_n_ctx_train
	NVocab    int // llama_vocab_n_tokens
}

// LoadModel loads a GGUF model (llama_model_load_from_file). params nil means
// llama_model_default_params().
func (l *Lib) LoadModel(path string, params *ModelParams) (*Model, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("llama: model: %w", err)
	}
	p := l.ModelDefaultParams()
	if params != nil {
		p = *params
	}
	ptr := l.ModelLoadFromFile(path, p)
	if ptr == 0 {
		return nil, fmt.Errorf("llama: llama_model_load_from_file(%q) failed (see the llama.cpp log)", path)
	}
	m := &Model{lib: l, ptr: ptr, vocab: l.ModelGetVocab(ptr)}
	m.NLayer = int(l.ModelNLayer(ptr))
	m.NHead = int(l.ModelNHead(ptr))
	m.NHeadKV = int(l.ModelNHeadKV(ptr))
	m.NEmbd = int(l.ModelNEmbd(ptr))
	m.NCtxTrain = int(l.ModelNCtxTrain(ptr))
	m.NVocab = int(l.VocabNTokens(m.vocab))
	return m, nil
}

// Size returns the bytes of the model's tensors (llama_model_size): the weights a decode step
// reads, which bound its speed together with the KV cache it reads.
func (m *Model) Size() int64 { return int64(m.lib.ModelSize(m.ptr)) }

// Lib returns the runtime the model was loaded with.
func (m *Model) Lib() *Lib { return m.lib }

// Ptr returns the llama_model pointer.
func (m *Model) Ptr() uintptr { return m.ptr }

// Vocab returns the llama_vocab pointer.
func (m *Model) Vocab() uintptr { return m.vocab }

// Free frees the model (llama_model_free). Free its contexts first.
func (m *Model) Free() {
	if m != nil && m.ptr != 0 {
		m.lib.ModelFree(m.ptr)
		m.ptr, m.vocab = 0, 0
	}
}

// SlidingWindow returns llama_model_n_swa (0 for models without sliding-window attention, and
// where the symbol is missing).
func (m *Model) SlidingWindow() int {
	if m.lib.ModelNSWA == nil {
		return 0
	}
	return int(m.lib.ModelNSWA(m.ptr))
}

// BOS and EOS return the vocabulary's special tokens (-1 if none).
func (m *Model) BOS() int32 { return m.lib.VocabBOS(m.vocab) }

// EOS returns the end-of-sentence token (-1 if none).
func (m *Model) EOS() int32 { return m.lib.VocabEOS(m.vocab) }

// IsEOG reports whether tok ends generation (EOS, EOT, ...).
func (m *Model) IsEOG(tok int32) bool { return m.lib.VocabIsEOG(m.vocab, tok) }

// Tokenize converts text to tokens. addSpecial adds BOS/EOS where the model wants them;
// parseSpecial turns special-token text (e.g. "<|im_start|>") into those tokens.
func (m *Model) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	if len(text) > 1<<30 {
		return nil, errors.New("llama: Tokenize: text too long")
	}
	src := []byte(text + "\x00") // stable, NUL-terminated copy (llama reads text_len bytes)
	buf := make([]int32, len(text)+8)
	for range 2 {
		n := m.lib.Tokenize(m.vocab, &src[0], int32(len(text)), &buf[0], int32(len(buf)), addSpecial, parseSpecial)
		runtime.KeepAlive(src)
		switch {
		case n >= 0:
			return buf[:n:n], nil
		case n == -1<<31:
			return nil, errors.New("llama: Tokenize: overflow")
		default:
			buf = make([]int32, -n)
		}
	}
	return nil, errors.New("llama: Tokenize: buffer size changed between calls")
}

// TokenPiece returns the text of one token (llama_token_to_piece); special renders special
// tokens as their text.
func (m *Model) TokenPiece(tok int32, special bool) string {
	buf := make([]byte, 64)
	for range 2 {
		n := m.lib.TokenToPiece(m.vocab, tok, &buf[0], int32(len(buf)), 0, special)
		if n >= 0 {
			return string(buf[:n])
		}
		buf = make([]byte, -n)
	}
	return ""
}

// Detokenize converts tokens back to text (llama_detokenize). removeSpecial drops BOS/EOS where
// the model adds them; unparseSpecial renders special tokens as text.
func (m *Model) Detokenize(toks []int32, removeSpecial, unparseSpecial bool) string {
	if len(toks) == 0 {
		return ""
	}
	buf := make([]byte, 8*len(toks)+16)
	for range 2 {
		n := m.lib.Detokenize(m.vocab, &toks[0], int32(len(toks)), &buf[0], int32(len(buf)), removeSpecial, unparseSpecial)
		if n >= 0 {
			return string(buf[:n])
		}
		buf = make([]byte, -n)
	}
	return ""
}

// ChatMessage is one turn of a chat.
type ChatMessage struct {
	Role    string // "system", "user", "assistant"
	Content string
}

// chatMessageC mirrors struct llama_chat_message.
type chatMessageC struct {
	role    *byte
	content *byte
}

// ChatTemplate returns the model's default chat template ("" if it has none).
func (m *Model) ChatTemplate() string { return goString(m.lib.ModelChatTemplate(m.ptr, nil)) }

// ApplyChatTemplate formats msgs with a chat template (llama_chat_apply_template: llama.cpp's
// built-in list of templates, not a Jinja engine). tmpl "" uses the model's own template (and
// llama.cpp's chatml when the model has none). addAssistant ends the prompt with the assistant
// turn's opening.
func (m *Model) ApplyChatTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	var tp *byte
	var tmplBuf []byte
	if tmpl == "" {
		tp = m.lib.ModelChatTemplate(m.ptr, nil) // owned by the model
	} else {
		tmplBuf = append([]byte(tmpl), 0)
		tp = &tmplBuf[0]
	}
	cmsgs := make([]chatMessageC, max(len(msgs), 1))
	strs := make([][]byte, 0, 2*len(msgs))
	total := 0
	for i, msg := range msgs {
		r := append([]byte(msg.Role), 0)
		c := append([]byte(msg.Content), 0)
		strs = append(strs, r, c)
		cmsgs[i] = chatMessageC{&r[0], &c[0]}
		total += len(msg.Role) + len(msg.Content)
	}
	buf := make([]byte, 2*total+256)
	for range 2 {
		n := m.lib.ChatApplyTemplate(tp, unsafe.Pointer(&cmsgs[0]), uintptr(len(msgs)), addAssistant, &buf[0], int32(len(buf)))
		runtime.KeepAlive(cmsgs)
		runtime.KeepAlive(strs)
		runtime.KeepAlive(tmplBuf)
		switch {
		case n < 0:
			return "", fmt.Errorf("llama: chat template not supported by llama_chat_apply_template (%d)", n)
		case int(n) <= len(buf):
			return string(buf[:n]), nil
		default:
			buf = make([]byte, n+1)
		}
	}
	return "", errors.New("llama: ApplyChatTemplate: size changed between calls")
}
