//go:build linux || darwin

#include "textflag.h"

// bool askFilter(struct ggml_tensor *t /* DI */, bool ask /* SI */, askFilterTable *f /* DX */)
// with the System V calling convention, a leaf on the caller's (C) stack. Its Go twin and
// reference loop are askFilterGo (askfilter.go). Only caller-saved registers are used (AX, CX,
// R8-R11); a forwarded call jumps to f->callback with f->userData in DX, so the callback
// answers the caller itself.
TEXT ·askFilter(SB), NOSPLIT|NOFRAME, $0-0
	TESTQ DI, DI
	JZ    forward
	TESTB SI, SI
	JZ    forward
	MOVQ  16(DX), AX       // f->offName
	MOVQ  0(DI)(AX*1), R8  // name[0:8]
	MOVQ  8(DI)(AX*1), R9  // name[8:16]
	MOVQ  24(DX), CX       // f->n
	LEAQ  32(DX), R10      // f->prefixes

loop:
	TESTQ CX, CX
	JZ    no
	MOVQ  R8, R11
	ANDQ  8(R10), R11
	CMPQ  R11, 0(R10)
	JNE   next
	MOVQ  R9, R11
	ANDQ  24(R10), R11
	CMPQ  R11, 16(R10)
	JEQ   forward

next:
	ADDQ $32, R10
	DECQ CX
	JMP  loop

no:
	XORL AX, AX
	RET

forward:
	MOVQ 0(DX), AX // f->callback
	MOVQ 8(DX), DX // f->userData
	JMP  AX

GLOBL ·askFilterABI0(SB), NOPTR|RODATA, $8
DATA ·askFilterABI0(SB)/8, $·askFilter(SB)
