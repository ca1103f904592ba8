//go:build linux || darwin

#include "textflag.h"

// bool askFilter(struct ggml_tensor *t /* R0 */, bool ask /* R1 */, askFilterTable *f /* R2 */)
// with the AAPCS64 calling convention, a leaf on the caller's (C) stack. Its Go twin and
// reference loop are askFilterGo (askfilter.go). Only the temporaries R9-R15 are used (never
// R27, the assembler's scratch register, which C expects preserved); a forwarded call jumps to
// f->callback with f->userData in R2, so the callback answers the caller itself. ask's bits
// above its low byte are unspecified.
TEXT ·askFilter(SB), NOSPLIT|NOFRAME, $0-0
	CBZ  R0, forward
	AND  $0xff, R1, R9
	CBZ  R9, forward
	MOVD 16(R2), R10 // f->offName
	ADD  R10, R0, R11
	MOVD 0(R11), R12 // name[0:8]
	MOVD 8(R11), R13 // name[8:16]
	MOVD 24(R2), R14 // f->n
	ADD  $32, R2, R15 // f->prefixes

loop:
	CBZ  R14, no
	MOVD 8(R15), R9
	AND  R12, R9, R9
	MOVD 0(R15), R10
	CMP  R9, R10
	BNE  next
	MOVD 24(R15), R9
	AND  R13, R9, R9
	MOVD 16(R15), R10
	CMP  R9, R10
	BEQ  forward

next:
	ADD $32, R15, R15
	SUB $1, R14, R14
	B   loop

no:
	MOVD ZR, R0
	RET

forward:
	MOVD 0(R2), R9 // f->callback
	MOVD 8(R2), R2 // f->userData
	JMP  (R9)

GLOBL ·askFilterABI0(SB), NOPTR|RODATA, $8
DATA ·askFilterABI0(SB)/8, $·askFilter(SB)
