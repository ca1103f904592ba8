//go:build !purego

#include "textflag.h"

// NEON kernels of GumbelScores (all the passes of rowKernels, gumbel.go),
// AddScaled and Argmin: the same algorithms, with the same float32
// operations in the same order, as gumbel_amd64.s and the Go twins
// (gumbel_generic.go, generic.go), on 4-lane vectors, two per loop
// iteration (the kernels get multiples of 8 cells).
//
// Go's arm64 assembler has no vector floating-point instructions, nor vector
// MUL, SSHR, SCVTF, CMEQ (register), UMAX, TBL with numbered registers, ...:
// every vector instruction inside the computation is therefore encoded with
// WORD, through one macro per mnemonic below whose comment gives the
// instruction (registers are given as numbers, in the operand order of the
// ARM syntax, destination first; the encodings were checked against GNU as).
// Loads, stores, DUP and moves to general registers use the assembler's own
// mnemonics.

// Three-register instructions: OP Vd.4S, Vn.4S, Vm.4S (16B for the bitwise).
#define N_FADD(d, n, m)  WORD $(0x4E20D400|((m)<<16)|((n)<<5)|(d)) // FADD  Vd.4S, Vn.4S, Vm.4S
#define N_FSUB(d, n, m)  WORD $(0x4EA0D400|((m)<<16)|((n)<<5)|(d)) // FSUB  Vd.4S, Vn.4S, Vm.4S
#define N_FMUL(d, n, m)  WORD $(0x6E20DC00|((m)<<16)|((n)<<5)|(d)) // FMUL  Vd.4S, Vn.4S, Vm.4S
#define N_FDIV(d, n, m)  WORD $(0x6E20FC00|((m)<<16)|((n)<<5)|(d)) // FDIV  Vd.4S, Vn.4S, Vm.4S
#define N_FMAX(d, n, m)  WORD $(0x4E20F400|((m)<<16)|((n)<<5)|(d)) // FMAX  Vd.4S, Vn.4S, Vm.4S
#define N_FMIN(d, n, m)  WORD $(0x4EA0F400|((m)<<16)|((n)<<5)|(d)) // FMIN  Vd.4S, Vn.4S, Vm.4S
#define N_FMLA(d, n, m)  WORD $(0x4E20CC00|((m)<<16)|((n)<<5)|(d)) // FMLA  Vd.4S, Vn.4S, Vm.4S: d += n*m, fused
#define N_FMLS(d, n, m)  WORD $(0x4EA0CC00|((m)<<16)|((n)<<5)|(d)) // FMLS  Vd.4S, Vn.4S, Vm.4S: d -= n*m, fused
#define N_FCMEQ(d, n, m) WORD $(0x4E20E400|((m)<<16)|((n)<<5)|(d)) // FCMEQ Vd.4S, Vn.4S, Vm.4S
#define N_FCMGT(d, n, m) WORD $(0x6EA0E400|((m)<<16)|((n)<<5)|(d)) // FCMGT Vd.4S, Vn.4S, Vm.4S: n > m
#define N_FADDP(d, n, m) WORD $(0x6E20D400|((m)<<16)|((n)<<5)|(d)) // FADDP Vd.4S, Vn.4S, Vm.4S
#define N_MUL(d, n, m)   WORD $(0x4EA09C00|((m)<<16)|((n)<<5)|(d)) // MUL   Vd.4S, Vn.4S, Vm.4S
#define N_ADD(d, n, m)   WORD $(0x4EA08400|((m)<<16)|((n)<<5)|(d)) // ADD   Vd.4S, Vn.4S, Vm.4S
#define N_SUB(d, n, m)   WORD $(0x6EA08400|((m)<<16)|((n)<<5)|(d)) // SUB   Vd.4S, Vn.4S, Vm.4S
#define N_CMEQ(d, n, m)  WORD $(0x6EA08C00|((m)<<16)|((n)<<5)|(d)) // CMEQ  Vd.4S, Vn.4S, Vm.4S
#define N_UMAX(d, n, m)  WORD $(0x6EA06400|((m)<<16)|((n)<<5)|(d)) // UMAX  Vd.4S, Vn.4S, Vm.4S
#define N_EOR(d, n, m)   WORD $(0x6E201C00|((m)<<16)|((n)<<5)|(d)) // EOR   Vd.16B, Vn.16B, Vm.16B
#define N_AND(d, n, m)   WORD $(0x4E201C00|((m)<<16)|((n)<<5)|(d)) // AND   Vd.16B, Vn.16B, Vm.16B
#define N_ORR(d, n, m)   WORD $(0x4EA01C00|((m)<<16)|((n)<<5)|(d)) // ORR   Vd.16B, Vn.16B, Vm.16B
#define N_BIT(d, n, m)   WORD $(0x6EA01C00|((m)<<16)|((n)<<5)|(d)) // BIT   Vd.16B, Vn.16B, Vm.16B: d = m ? n : d
#define N_BIF(d, n, m)   WORD $(0x6EE01C00|((m)<<16)|((n)<<5)|(d)) // BIF   Vd.16B, Vn.16B, Vm.16B: d = m ? d : n
#define N_MOVV(d, n)     N_ORR(d, n, n)                              // MOV   Vd.16B, Vn.16B

// Two-register and shift instructions.
#define N_FNEG(d, n)      WORD $(0x6EA0F800|((n)<<5)|(d))              // FNEG  Vd.4S, Vn.4S
#define N_SCVTF(d, n)     WORD $(0x4E21D800|((n)<<5)|(d))              // SCVTF Vd.4S, Vn.4S
#define N_FCMGT0(d, n)    WORD $(0x4EA0C800|((n)<<5)|(d))              // FCMGT Vd.4S, Vn.4S, #0.0
#define N_SSHR(d, n, sh)  WORD $(0x4F000400|((64-(sh))<<16)|((n)<<5)|(d)) // SSHR  Vd.4S, Vn.4S, #sh
#define N_USHR(d, n, sh)  WORD $(0x6F000400|((64-(sh))<<16)|((n)<<5)|(d)) // USHR  Vd.4S, Vn.4S, #sh
#define N_SHL(d, n, sh)   WORD $(0x4F005400|((32+(sh))<<16)|((n)<<5)|(d)) // SHL   Vd.4S, Vn.4S, #sh
#define N_FMAXV(d, n)     WORD $(0x6E30F800|((n)<<5)|(d))              // FMAXV Sd, Vn.4S
#define N_FMINV(d, n)     WORD $(0x6EB0F800|((n)<<5)|(d))              // FMINV Sd, Vn.4S
#define N_UMAXV(d, n)     WORD $(0x6EB0A800|((n)<<5)|(d))              // UMAXV Sd, Vn.4S
#define N_UMINV(d, n)     WORD $(0x6EB1A800|((n)<<5)|(d))              // UMINV Sd, Vn.4S
#define N_FADDPS(d, n)    WORD $(0x7E30D800|((n)<<5)|(d))              // FADDP Sd, Vn.2S

#define N_TBL2(d, n, m)  WORD $(0x4E002000|((m)<<16)|((n)<<5)|(d))  // TBL   Vd.16B, {Vn.16B, Vn+1.16B}, Vm.16B

// DUPC(val, V) sets the 4 lanes of V to the 32-bit constant val.
#define DUPC(val, V) \
	MOVW $val, R10 \
	VDUP R10, V.S4

// The log2 of the kernels (see gumbel_amd64.s and log2Table1/log2Table2 in
// gumbel_generic.go): x = 2^e * m, m in [sqrt(1/2), sqrt(2)), the top 3
// mantissa bits select invc and logc (TBL on byte indices 4i..4i+3),
// f = m*invc - 1, log2 x = e + logc + f*P(f).
//
// LOG2CONST loads the constants of LOG2T1/LOG2T2: V16-V17 = invc table,
// V18-V19 = logc table, V20-V23 = P, V24 = mantissa mask, V25 = log2Bias,
// V26 = -1.0, V27 = 7, V28 = 0x04040404, V29 = 0x03020100.
#define LOG2CONST \
	MOVD  $invcTab<>(SB), R10 \
	VLD1  (R10), [V16.S4, V17.S4] \
	MOVD  $logcTab<>(SB), R10 \
	VLD1  (R10), [V18.S4, V19.S4] \
	DUPC(0x3fb8aa38, V20) \
	DUPC(0xbf38aa30, V21) \
	DUPC(0x3ef6b296, V22) \
	DUPC(0xbeb9248d, V23) \
	DUPC(0x007fffff, V24) \
	DUPC(0x3f3504f3, V25) \
	DUPC(0xbf800000, V26) \
	DUPC(7, V27) \
	DUPC(0x04040404, V28) \
	DUPC(0x03020100, V29)

// LOG2T1(t, e, i, p, lc, f): from t = bits(x) - bias (bias = log2Bias +
// k<<23 gives log2(x) - k), f = m*invc - 1, e = e + logc (the base),
// i = t>>20 (the interval is its low 3 bits; i = 4 iff e = 0 and interval
// 4). Clobbers t, p, lc.
#define LOG2T1(t, e, i, p, lc, f) \
	N_SSHR(e, t, 23) \
	N_SCVTF(e, e) \
	N_USHR(i, t, 20) \
	N_AND(p, i, 27) \
	N_MUL(p, p, 28) \
	N_ADD(p, p, 29) \ // byte indices of lane i&7
	N_TBL2(lc, 18, p) \
	N_TBL2(p, 16, p) \
	N_AND(t, t, 24) \
	N_ADD(t, t, 25) \ // m
	N_FADD(e, e, lc) \
	N_MOVV(f, 26) \
	N_FMLA(f, t, p) // -1 + m*invc, fused

// LOG2T2(f, e, p, q): e = e + f*P(f) (Horner, as LOG2T2 of gumbel_amd64.s).
#define LOG2T2(f, e, p, q) \
	N_MOVV(p, 22) \
	N_FMLA(p, f, 23) \
	N_MOVV(q, 21) \
	N_FMLA(q, f, p) \
	N_MOVV(p, 20) \
	N_FMLA(p, f, q) \
	N_FMLA(e, f, p)

// NOISE1: one vector of noise: V2 = log2 u for the hash inputs V15, stored
// at (R0)+16; V15 += 4a (V14). V30/V31 = hash multipliers, V9 = 1,
// V10 = 0, V11 = 25<<23, V12 = 2^25, V13 = log2Bias + 25<<23. As in
// log2UOfV: where the exponent of u is 0, w = u-1 is taken exactly and
// f = w*invc + (invc-1).
#define NOISE1 \
	N_USHR(1, 15, 16) \ // lowbias32
	N_EOR(0, 15, 1) \
	N_MUL(0, 0, 30) \
	N_USHR(1, 0, 15) \
	N_EOR(0, 0, 1) \
	N_MUL(0, 0, 31) \
	N_USHR(1, 0, 16) \
	N_EOR(0, 0, 1) \
	N_USHR(0, 0, 7) \ // v = (h>>7)|1, u = v*2^-25
	N_ORR(0, 0, 9) \
	N_SUB(1, 0, 12) \ // exact u-1 = (v-2^25)*2^-25
	N_SCVTF(1, 1) \
	N_SUB(1, 1, 11) \
	N_SCVTF(0, 0) \ // float32(v), rounded when v >= 2^24
	N_SUB(0, 0, 13) \
	N_SSHR(2, 0, 23) \ // exponent of u
	N_CMEQ(3, 2, 10) \
	N_SCVTF(2, 2) \
	N_USHR(4, 0, 20) \
	N_AND(4, 4, 27) \
	N_MUL(4, 4, 28) \
	N_ADD(4, 4, 29) \
	N_TBL2(5, 18, 4) \ // logc
	N_TBL2(4, 16, 4) \ // invc
	N_AND(0, 0, 24) \
	N_ADD(0, 0, 25) \ // m
	N_FADD(0, 0, 26) \ // w = m-1
	N_BIT(0, 1, 3) \ // exact where the exponent is 0
	N_FADD(2, 2, 5) \ // e + logc
	N_FADD(6, 4, 26) \ // invc-1
	N_FMLA(6, 0, 4) \ // f = w*invc + invc-1, fused
	LOG2T2(6, 2, 4, 5) \
	VST1.P [V2.S4], 16(R0) \
	N_ADD(15, 15, 14)

// ---------------------------------------------------------------------------

// func noiseKernel(dst *float32, n int, j0, a, b uint32)
// dst[j] = log2(u_j) (<= 0) for columns j0+j, n a multiple of 8.
TEXT ·noiseKernel(SB), NOSPLIT, $0-28
	MOVD  dst+0(FP), R0
	MOVD  n+8(FP), R1
	MOVWU j0+16(FP), R2
	MOVWU a+20(FP), R3
	MOVWU b+24(FP), R4
	LOG2CONST
	DUPC(0x7feb352d, V30)
	DUPC(0x846ca68b, V31)
	DUPC(1, V9)
	VEOR  V10.B16, V10.B16, V10.B16
	DUPC(0x0c800000, V11) // 25<<23
	DUPC(0x02000000, V12) // 2^25
	DUPC(0x4bb504f3, V13) // log2Bias + 25<<23
	// V15 = (j0+i)*a + b for lanes i = 0..3; V14 = 4*a
	MOVD  $iota<>(SB), R5
	VLD1  (R5), [V15.S4]
	VDUP  R2, V0.S4
	N_ADD(15, 15, 0)
	VDUP  R3, V14.S4
	N_MUL(15, 15, 14)
	VDUP  R4, V0.S4
	N_ADD(15, 15, 0)
	LSL   $2, R3, R3
	VDUP  R3, V14.S4

nloop:
	CMP $8, R1
	BLT ndone
	NOISE1
	NOISE1
	SUB $8, R1, R1
	B   nloop

ndone:
	RET

// PROB1(noise): one vector of pass 1b for probabilities: q = log2(r) - k,
// r = p*2^64/E (E = -log2 u at (R0)) or p*2^64, -Inf where !(p > 0);
// stored at (R0)+16. V30 = bias, V31 = 0, V13 = max bits, V12 = qmax,
// V11 = -Inf, V10 = -2^-64, V9 = 2^64.
#define PROB1(div) \
	VLD1.P 16(R1), [V1.S4] \
	N_FADD(1, 1, 31) \ // p+0: -0 becomes +0
	N_UMAX(13, 13, 1) \
	div \
	N_FCMGT0(7, 1) \ // live: p > 0
	N_SUB(0, 0, 30) \
	LOG2T1(0, 2, 3, 4, 5, 6) \
	LOG2T2(6, 2, 4, 5) \
	N_BIF(2, 11, 7) \
	N_FMAX(12, 12, 2) \
	VST1.P [V2.S4], 16(R0)

#define PDIV \
	VLD1 (R0), [V0.S4] \
	N_FMUL(0, 0, 10) \ // E*2^-64
	N_FDIV(0, 1, 0)

#define PPLAIN N_FMUL(0, 1, 9)

// func gumbelProbKernel(dst, src *float32, n int, noise bool, bias int32) (qmax float32, maxBits uint32)
// dst[j] = log2(p_j*2^64/E_j) - k, k = (bias-log2Bias)>>23, E_j = -log2 u_j
// read from dst (or 1 without noise), -Inf where !(p_j > 0); n a multiple
// of 8.
TEXT ·gumbelProbKernel(SB), NOSPLIT, $0-40
	MOVD  dst+0(FP), R0
	MOVD  src+8(FP), R1
	MOVD  n+16(FP), R2
	MOVBU noise+24(FP), R3
	MOVWU bias+28(FP), R4
	LOG2CONST
	VDUP  R4, V30.S4
	VEOR  V31.B16, V31.B16, V31.B16 // zero
	DUPC(0xff800000, V11)           // -Inf
	DUPC(0x9f800000, V10)           // -2^-64
	DUPC(0x5f800000, V9)            // 2^64
	VMOV  V11.B16, V12.B16          // qmax
	VEOR  V13.B16, V13.B16, V13.B16 // unsigned max of the bits of p+0
	CBZ   R3, pplain

pnoise:
	CMP  $8, R2
	BLT  pdone
	PROB1(PDIV)
	PROB1(PDIV)
	SUB  $8, R2, R2
	B    pnoise

pplain:
	CMP  $8, R2
	BLT  pdone
	PROB1(PPLAIN)
	PROB1(PPLAIN)
	SUB  $8, R2, R2
	B    pplain

pdone:
	N_FMAXV(12, 12)
	FMOVS F12, qmax+32(FP)
	N_UMAXV(13, 13)
	VMOV  V13.S[0], R4
	MOVW  R4, maxBits+36(FP)
	RET

// LOGIT1: one vector of pass 1b for logits, V2 = log2 E:
// q = (l-lmax)*log2(e) - log2 E, -Inf where l = -Inf; stored at (R0)+16.
// V30 = lmax, V9 = log2(e), V11 = -Inf, V12 = qmax.
#define LOGIT1 \
	VLD1.P 16(R1), [V1.S4] \
	N_FSUB(3, 1, 30) \ // l - lmax
	N_FMLS(2, 3, 9) \ // log2 E - (l-lmax)*log2(e), fused
	N_FNEG(2, 2) \
	N_FCMEQ(4, 1, 11) \ // l = -Inf
	N_BIT(2, 11, 4) \
	N_FMAX(12, 12, 2) \
	VST1.P [V2.S4], 16(R0)

#define LOG2E1 \
	VLD1 (R0), [V0.S4] \
	N_FNEG(0, 0) \ // E = -log2 u
	N_SUB(0, 0, 25) \
	LOG2T1(0, 2, 3, 4, 5, 6) \
	LOG2T2(6, 2, 4, 5)

// func gumbelLogitsKernel(dst, src *float32, n int, noise bool, lmax float32) (qmax float32)
// dst[j] = (l_j-lmax)*log2(e) - log2(E_j), E_j = -log2 u_j read from dst
// (no log2 term without noise), -Inf where l_j = -Inf; n a multiple of 8.
TEXT ·gumbelLogitsKernel(SB), NOSPLIT, $0-36
	MOVD  dst+0(FP), R0
	MOVD  src+8(FP), R1
	MOVD  n+16(FP), R2
	MOVBU noise+24(FP), R3
	FMOVS lmax+28(FP), F30
	VDUP  V30.S[0], V30.S4
	LOG2CONST
	DUPC(0xff800000, V11) // -Inf
	DUPC(0x3fb8aa3b, V9)  // log2(e)
	VMOV V11.B16, V12.B16 // qmax
	CBZ  R3, lplain

lnoise:
	CMP  $8, R2
	BLT  ldone
	LOG2E1
	LOGIT1
	LOG2E1
	LOGIT1
	SUB  $8, R2, R2
	B    lnoise

lplain:
	VEOR V2.B16, V2.B16, V2.B16 // log2 E = 0
	CMP  $8, R2
	BLT  ldone
	LOGIT1
	VEOR V2.B16, V2.B16, V2.B16
	LOGIT1
	SUB  $8, R2, R2
	B    lplain

ldone:
	N_FMAXV(12, 12)
	FMOVS F12, qmax+32(FP)
	RET

// func logitsMaxKernel(src *float32, n int) (lmax float32, bad bool)
// n is a multiple of 8. bad reports a NaN or +Inf.
TEXT ·logitsMaxKernel(SB), NOSPLIT, $0-21
	MOVD src+0(FP), R1
	MOVD n+8(FP), R2
	DUPC(0xff800000, V0) // max
	DUPC(0x7f800000, V2) // +Inf
	VMOV V0.B16, V3.B16
	DUPC(0xffffffff, V1) // all lanes l < +Inf so far

lmloop:
	CMP  $8, R2
	BLT  lmdone
	VLD1.P 32(R1), [V4.S4, V5.S4]
	N_FMAX(0, 0, 4)
	N_FMAX(3, 3, 5)
	N_FCMGT(6, 2, 4) // +Inf > l: false for NaN and +Inf
	N_FCMGT(7, 2, 5)
	N_AND(1, 1, 6)
	N_AND(1, 1, 7)
	SUB  $8, R2, R2
	B    lmloop

lmdone:
	N_FMAX(0, 0, 3)
	N_FMAXV(0, 0)
	FMOVS F0, lmax+16(FP)
	N_UMINV(1, 1)
	VMOV V1.S[0], R3
	CMPW $0, R3
	CSET EQ, R4
	MOVB R4, bad+20(FP)
	RET

// func expKernel(dst *float32, n int, invTau, c float32) (sum float32)
// dst[j] = 2^(dst[j]*invTau + c) in place (see exp2Poly); n a multiple of 8.
TEXT ·expKernel(SB), NOSPLIT, $0-28
	MOVD  dst+0(FP), R0
	MOVD  n+8(FP), R1
	MOVD  R0, R2
	FMOVS invTau+16(FP), F22
	VDUP  V22.S[0], V22.S4
	FMOVS c+20(FP), F23
	VDUP  V23.S[0], V23.S4
	DUPC(0x3f800001, V16) // exp2Coef
	DUPC(0x3f317214, V17)
	DUPC(0x3e75fc8c, V18)
	DUPC(0x3d635b72, V19)
	DUPC(0x3c1e8629, V20)
	DUPC(0x3aae0473, V21)
	DUPC(0xc2fe0000, V24) // -127
	DUPC(0x4b40007f, V25) // 1.5*2^23 + 127
	VEOR V26.B16, V26.B16, V26.B16 // sums
	VEOR V27.B16, V27.B16, V27.B16

eloop:
	CMP  $8, R1
	BLT  edone
	VLD1.P 32(R2), [V0.S4, V1.S4]
	N_MOVV(2, 23) // x = c + q*invTau
	N_MOVV(3, 23)
	N_FMLA(2, 0, 22)
	N_FMLA(3, 1, 22)
	N_FMAX(2, 2, 24) // x >= -127
	N_FMAX(3, 3, 24)
	N_FADD(4, 2, 25) // 1.5*2^23 + 127 + round(x)
	N_FADD(5, 3, 25)
	N_FSUB(6, 4, 25)
	N_FSUB(7, 5, 25)
	N_FSUB(2, 2, 6) // f = x - round(x)
	N_FSUB(3, 3, 7)
	N_SHL(4, 4, 23) // 2^round(x), 0 for -127
	N_SHL(5, 5, 23)
	N_MOVV(8, 20) // Horner: p = c5; p = p*f + c_i
	N_MOVV(9, 20)
	N_FMLA(8, 2, 21)
	N_FMLA(9, 3, 21)
	N_MOVV(10, 19)
	N_MOVV(11, 19)
	N_FMLA(10, 8, 2)
	N_FMLA(11, 9, 3)
	N_MOVV(8, 18)
	N_MOVV(9, 18)
	N_FMLA(8, 10, 2)
	N_FMLA(9, 11, 3)
	N_MOVV(10, 17)
	N_MOVV(11, 17)
	N_FMLA(10, 8, 2)
	N_FMLA(11, 9, 3)
	N_MOVV(8, 16)
	N_MOVV(9, 16)
	N_FMLA(8, 10, 2)
	N_FMLA(9, 11, 3)
	N_FMUL(0, 8, 4)
	N_FMUL(1, 9, 5)
	N_FADD(26, 26, 0)
	N_FADD(27, 27, 1)
	VST1.P [V0.S4, V1.S4], 32(R0)
	SUB  $8, R1, R1
	B    eloop

edone:
	N_FADD(26, 26, 27)
	N_FADDP(26, 26, 26)
	N_FADDPS(26, 26)
	FMOVS F26, sum+24(FP)
	RET

// func addScaledKernel(acc, x *float32, n int, a float32)
// acc[j] = fma(a, x[j], acc[j]) for j < n.
TEXT ·addScaledKernel(SB), NOSPLIT, $0-28
	MOVD  acc+0(FP), R0
	MOVD  x+8(FP), R1
	MOVD  n+16(FP), R2
	FMOVS a+24(FP), F31
	VDUP  V31.S[0], V30.S4
	MOVD  R0, R3

aloop16:
	CMP   $16, R2
	BLT   aloop4
	VLD1.P 64(R1), [V0.S4, V1.S4, V2.S4, V3.S4]
	VLD1.P 64(R3), [V4.S4, V5.S4, V6.S4, V7.S4]
	VFMLA V30.S4, V0.S4, V4.S4
	VFMLA V30.S4, V1.S4, V5.S4
	VFMLA V30.S4, V2.S4, V6.S4
	VFMLA V30.S4, V3.S4, V7.S4
	VST1.P [V4.S4, V5.S4, V6.S4, V7.S4], 64(R0)
	SUB   $16, R2, R2
	B     aloop16

aloop4:
	CMP   $4, R2
	BLT   atail
	VLD1.P 16(R1), [V0.S4]
	VLD1.P 16(R3), [V4.S4]
	VFMLA V30.S4, V0.S4, V4.S4
	VST1.P [V4.S4], 16(R0)
	SUB   $4, R2, R2
	B     aloop4

atail:
	CBZ    R2, adone
	FMOVS.P 4(R1), F0
	FMOVS  (R0), F1
	FMADDS F31, F1, F0, F1 // F1 = F0*F31 + F1
	FMOVS.P F1, 4(R0)
	SUB    $1, R2, R2
	B      atail

adone:
	RET

// func argminKernel(x *float32, n int) int
// n >= 8. First the minimum value (the last vector is re-read overlapping),
// then the first index holding it.
TEXT ·argminKernel(SB), NOSPLIT, $0-24
	MOVD x+0(FP), R0
	MOVD n+8(FP), R1
	ADD  R1<<2, R0, R2
	SUB  $16, R2, R2 // last whole vector
	VLD1 (R2), [V0.S4]
	VMOV V0.B16, V1.B16
	VMOV V0.B16, V2.B16
	VMOV V0.B16, V3.B16
	MOVD R0, R3

mloop16:
	ADD  $64, R3, R4
	CMP  R2, R4
	BHI  mloop4
	VLD1.P 64(R3), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FMIN(0, 0, 4)
	N_FMIN(1, 1, 5)
	N_FMIN(2, 2, 6)
	N_FMIN(3, 3, 7)
	B    mloop16

mloop4:
	CMP  R2, R3
	BHS  mreduce
	VLD1.P 16(R3), [V4.S4]
	N_FMIN(0, 0, 4)
	B    mloop4

mreduce:
	N_FMIN(0, 0, 1)
	N_FMIN(2, 2, 3)
	N_FMIN(0, 0, 2)
	N_FMINV(0, 0)
	VDUP V0.S[0], V0.S4

	// find the first index i with x[i] == min
	MOVD R0, R3

floop16:
	ADD  $64, R3, R4
	CMP  R2, R4
	BHI  floop4
	VLD1 (R3), [V4.S4, V5.S4, V6.S4, V7.S4]
	N_FCMEQ(4, 4, 0)
	N_FCMEQ(5, 5, 0)
	N_FCMEQ(6, 6, 0)
	N_FCMEQ(7, 7, 0)
	N_ORR(8, 4, 5)
	N_ORR(9, 6, 7)
	N_ORR(8, 8, 9)
	N_UMAXV(8, 8)
	VMOV V8.S[0], R5
	CBNZ R5, ffound16
	MOVD R4, R3
	B    floop16

ffound16:
	// the first vector of the four with a match
	VMOV V4.D[0], R6
	VMOV V4.D[1], R7
	ORR  R6, R7, R8
	CBNZ R8, flane
	ADD  $16, R3, R3
	VMOV V5.D[0], R6
	VMOV V5.D[1], R7
	ORR  R6, R7, R8
	CBNZ R8, flane
	ADD  $16, R3, R3
	VMOV V6.D[0], R6
	VMOV V6.D[1], R7
	ORR  R6, R7, R8
	CBNZ R8, flane
	ADD  $16, R3, R3
	VMOV V7.D[0], R6
	VMOV V7.D[1], R7
	B    flane

floop4:
	CMP  R2, R3
	BHI  flast
	VLD1 (R3), [V4.S4]
	N_FCMEQ(4, 4, 0)
	VMOV V4.D[0], R6
	VMOV V4.D[1], R7
	ORR  R6, R7, R8
	CBNZ R8, flane
	ADD  $16, R3, R3
	B    floop4

flast:
	MOVD R2, R3
	VLD1 (R3), [V4.S4]
	N_FCMEQ(4, 4, 0)
	VMOV V4.D[0], R6
	VMOV V4.D[1], R7

flane:
	// R6 = lanes 0,1 and R7 = lanes 2,3 of the match mask of the vector at R3
	SUB  R0, R3, R3
	LSR  $2, R3, R3
	CBNZ R6, flow
	ADD  $2, R3, R3
	MOVD R7, R6

flow:
	RBIT R6, R6
	CLZ  R6, R6
	ADD  R6>>5, R3, R3
	MOVD R3, ret+16(FP)
	RET

DATA iota<>+0(SB)/4, $0
DATA iota<>+4(SB)/4, $1
DATA iota<>+8(SB)/4, $2
DATA iota<>+12(SB)/4, $3
GLOBL iota<>(SB), RODATA|NOPTR, $16

// The log2 tables (see log2Invc, log2Logc in gumbel_generic.go).
DATA invcTab<>+0(SB)/4, $0x3fad5ba2
DATA invcTab<>+4(SB)/4, $0x3f9fd42f
DATA invcTab<>+8(SB)/4, $0x3f94422f
DATA invcTab<>+12(SB)/4, $0x3f8a4016
DATA invcTab<>+16(SB)/4, $0x3f800000
DATA invcTab<>+20(SB)/4, $0x3f685d85
DATA invcTab<>+24(SB)/4, $0x3f50b00c
DATA invcTab<>+28(SB)/4, $0x3f3d63a6
GLOBL invcTab<>(SB), RODATA|NOPTR, $32

DATA logcTab<>+0(SB)/4, $0xbee00e6f
DATA logcTab<>+4(SB)/4, $0xbea4095e
DATA logcTab<>+8(SB)/4, $0xbe590f01
DATA logcTab<>+12(SB)/4, $0xbde39cef
DATA logcTab<>+16(SB)/4, $0x00000000
DATA logcTab<>+20(SB)/4, $0x3e0f1a64
DATA logcTab<>+24(SB)/4, $0x3e96efcf
DATA logcTab<>+28(SB)/4, $0x3ede9cb6
GLOBL logcTab<>(SB), RODATA|NOPTR, $32
