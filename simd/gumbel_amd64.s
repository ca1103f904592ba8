//go:build !purego

#include "textflag.h"

// AVX2+FMA kernels of GumbelScores (the passes of rowKernels, gumbel.go),
// AddScaled and Argmin. gumbel_generic.go and generic.go hold the Go twins,
// which perform the same float32 operations.
//
// One vector is 8 float32 lanes. One vector through all of GumbelScores is a
// ~100-cycle dependency chain, more than the out-of-order window hides, so
// the work is split into short loops (gumbel.go hands them chunks of at most
// 1024 cells, which stay in L1): hash, log2 u, then p/E and its log2 (the
// division of the next vector overlapping the log of this one), then exp2.
// The loops keep their constants in registers (with memory operands the
// loads were the bottleneck).

// The log2 of the kernels: x = 2^e * m with m in [sqrt(1/2), sqrt(2)); the
// mantissa bits of m split [sqrt(1/2), sqrt(2)) into 8 intervals, the top 3
// of them select c = 1/invc[i] near m and log2(c) = logc[i] (VPERMPS), so
// that log2 x = e + logc[i] + log2(1+f) with f = m*invc[i] - 1, |f| < 0.057,
// and log2(1+f) = f*P(f), P of degree 3 (see log2Table1/2 in gumbel_generic.go).
// Interval 4 holds m = 1 and has c = 1, logc = 0: there f = m-1 exactly.

// Register use of the LOG2T loops.
#define RMANT Y8  // mantissa mask 0x7fffff
#define RBIAS Y9  // log2Bias
#define RINVC Y10 // invc table
#define RLOGC Y11 // logc table
#define RC0   Y12 // P
#define RC1   Y13
#define RC2   Y14
#define RC3   Y15

#define LOG2TCONST \
	VMOVDQU mant<>(SB), RMANT \
	VMOVDQU bias<>(SB), RBIAS \
	VMOVUPS invcTab<>(SB), RINVC \
	VMOVUPS logcTab<>(SB), RLOGC \
	VMOVUPS log2c0<>(SB), RC0 \
	VMOVUPS log2c1<>(SB), RC1 \
	VMOVUPS log2c2<>(SB), RC2 \
	VMOVUPS log2c3<>(SB), RC3

// LOG2T1(t, e, i, p): the first half of the log2 of x, from
// t = bits(x) - bias (bias = log2Bias + k<<23 gives log2(x) - k): on return
// t = f, e = e + logc[i] (the base), i = t>>20 (the interval is its low 3
// bits, e = 0 and interval 4 iff i = 4).
#define LOG2T1(t, e, i, p) \
	VPSRAD      $23, t, e \
	VCVTDQ2PS   e, e \
	VPSRLD      $20, t, i \
	VPAND       RMANT, t, t \
	VPADDD      RBIAS, t, t \ // m
	VPERMPS     RLOGC, i, p \
	VADDPS      p, e, e \
	VPERMPS     RINVC, i, p \
	VFMSUB213PS oneF<>(SB), p, t // f = m*invc - 1

// LOG2T2(f, e, p): p = e + f*P(f).
#define LOG2T2(f, e, p) \
	VMOVAPS     RC3, p \
	VFMADD213PS RC2, f, p \
	VFMADD213PS RC1, f, p \
	VFMADD213PS RC0, f, p \
	VFMADD213PS e, f, p

// HASH(x, r0, r1): r0 = v = (lowbias32(x)>>7)|1, so that u = v*2^-25.
#define HASH(x, r0, r1) \
	VPSRLD  $16, x, r1 \
	VPXOR   r1, x, r0 \
	VPMULLD hashC1<>(SB), r0, r0 \
	VPSRLD  $15, r0, r1 \
	VPXOR   r1, r0, r0 \
	VPMULLD hashC2<>(SB), r0, r0 \
	VPSRLD  $16, r0, r1 \
	VPXOR   r1, r0, r0 \
	VPSRLD  $7, r0, r0 \
	VPOR    oneI<>(SB), r0, r0

// HASHINIT(j0, a, b) sets Y15 to the hash inputs (j0+i)*a+b of lanes
// i = 0..7 and Y14 to 8*a.
#define HASHINIT(j0, a, b) \
	MOVL         j0, AX \
	VMOVD        AX, X15 \
	VPBROADCASTD X15, Y15 \
	VPADDD       iota<>(SB), Y15, Y15 \
	MOVL         a, BX \
	VMOVD        BX, X14 \
	VPBROADCASTD X14, Y14 \
	VPMULLD      Y14, Y15, Y15 \
	MOVL         b, AX \
	VMOVD        AX, X14 \
	VPBROADCASTD X14, Y14 \
	VPADDD       Y14, Y15, Y15 \
	SHLL         $3, BX \
	VMOVD        BX, X14 \
	VPBROADCASTD X14, Y14

// HMAXPS(y, x, t): x[0] = max of the 8 lanes of y (x is the low half of y).
#define HMAXPS(y, x, t) \
	VEXTRACTF128 $1, y, t \
	VMAXPS       t, x, x \
	VPERMILPS    $0x4e, x, t \
	VMAXPS       t, x, x \
	VPERMILPS    $0xb1, x, t \
	VMAXPS       t, x, x

// func noiseKernel(dst *float32, n int, j0, a, b uint32)
// Pass 1a: dst[j] = log2(u_j) (<= 0) for columns j0+j, n a multiple of 8
// (see noiseLog2U): first v_j = (h_j>>7)|1 into dst, then the log2 of
// u_j = v_j*2^-25 (see log2UOfV: float32(v) is rounded when v >= 2^24,
// so where e = 0, u in [sqrt(1/2), 1) and log2 u needs relative accuracy,
// w = u-1 is taken exactly as float32(v-2^25)*2^-25 and f = w*invc + invc-1).
TEXT ·noiseKernel(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	ADDQ CX, DI
	NEGQ CX      // (DI)(CX*1) walks dst; CX counts up to 0
	MOVQ CX, DX
	HASHINIT(j0+16(FP), a+20(FP), b+24(FP))

hloop:
	HASH(Y15, Y0, Y1)
	VMOVDQU Y0, (DI)(CX*1)
	VPADDD  Y14, Y15, Y15
	ADDQ    $32, CX
	JNZ     hloop

	LOG2TCONST
	VMOVUPS oneF<>(SB), Y6
	MOVQ    DX, CX

lloop:
	VMOVDQU     (DI)(CX*1), Y1
	VCVTDQ2PS   Y1, Y0
	VPSUBD      bias25<>(SB), Y0, Y0 // exponent of u = v*2^-25
	VPSUBD      two25I<>(SB), Y1, Y1
	VCVTDQ2PS   Y1, Y1
	VPSUBD      exp25<>(SB), Y1, Y1 // exact u-1 = (v-2^25)*2^-25, never 0
	VPSRAD      $23, Y0, Y2
	VPCMPEQD    zero<>(SB), Y2, Y3 // exponent 0: u in [sqrt(1/2), 1)
	VCVTDQ2PS   Y2, Y2
	VPSRLD      $20, Y0, Y5
	VPAND       RMANT, Y0, Y0
	VPADDD      RBIAS, Y0, Y0 // m
	VSUBPS      Y6, Y0, Y0 // w = m-1
	VBLENDVPS   Y3, Y1, Y0, Y0 // exact where the exponent is 0
	VPERMPS     RLOGC, Y5, Y4
	VADDPS      Y4, Y2, Y2 // e + logc
	VPERMPS     RINVC, Y5, Y4
	VSUBPS      Y6, Y4, Y5 // invc-1
	VFMADD213PS Y5, Y4, Y0 // f = w*invc + invc-1
	LOG2T2(Y0, Y2, Y4)
	VMOVUPS   Y4, (DI)(CX*1)
	ADDQ      $32, CX
	JNZ       lloop

	VZEROUPPER
	RET

// PSTAGE1N(off): Y0 = p*2^64/E, Y1 = !(p > 0) for the vector at off(SI),
// E = -log2 u from off(DI); folds the bits of p+0 into Y6.
#define PSTAGE1N(off) \
	VMOVUPS off(DI)(CX*1), Y2 \
	VMULPS  negTwoM64<>(SB), Y2, Y2 \
	VXORPS  Y1, Y1, Y1 \
	VADDPS  off(SI)(CX*1), Y1, Y1 \
	VPMAXUD Y1, Y6, Y6 \
	VDIVPS  Y2, Y1, Y0 \
	VCMPPS  $0x1a, zero<>(SB), Y1, Y1 // NGT_UQ: !(p > 0)

// PSTAGE1P(off): PSTAGE1N without noise: Y0 = p*2^64.
#define PSTAGE1P(off) \
	VXORPS  Y1, Y1, Y1 \
	VADDPS  off(SI)(CX*1), Y1, Y1 \
	VPMAXUD Y1, Y6, Y6 \
	VMULPS  two64<>(SB), Y1, Y0 \
	VCMPPS  $0x1a, zero<>(SB), Y1, Y1

// PSTAGE2(off): q = log2(Y0) - k (bias at 0(SP)), -Inf where Y1; max into
// Y7, stored at off(DI).
#define PSTAGE2(off) \
	VPSUBD    0(SP), Y0, Y2 \
	LOG2T1(Y2, Y3, Y4, Y5) \
	LOG2T2(Y2, Y3, Y5) \
	VBLENDVPS Y1, negInf<>(SB), Y5, Y5 \
	VMAXPS    Y5, Y7, Y7 \
	VMOVUPS   Y5, off(DI)(CX*1)

// func gumbelProbKernel(dst, src *float32, n int, noise bool, bias int32) (qmax float32, maxBits uint32)
// Pass 1b for probabilities, n a multiple of 8: with noise, dst holds
// log2 u_j (noiseKernel) on entry. dst[j] = log2(p_j*2^64/E_j) - k with
// E_j = -log2 u_j (or 1 without noise), k = (bias-log2Bias)>>23, or -Inf
// where !(p_j > 0). The scaling by 2^64 keeps p/E normal for denormal p.
// Returns max q_j and the unsigned max of the bits of p_j+0 (-0 becomes +0)
// for the validation.
//
// The loop is software-pipelined: iteration i does the division of vector
// i+1 (PSTAGE1*) and the log of vector i (PSTAGE2), so that the 11-cycle
// VDIVPS is off the critical path. Y0 = p*2^64/E and Y1 = !(p > 0) of the
// next vector carry over; the bias lives in the frame.
TEXT ·gumbelProbKernel(SB), NOSPLIT, $32-40
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	SHLQ         $2, CX
	ADDQ         CX, DI
	ADDQ         CX, SI
	NEGQ         CX // (SI)(CX*1), (DI)(CX*1) walk src, dst; CX counts up to 0
	LOG2TCONST
	VMOVUPS      negInf<>(SB), Y7 // qmax
	VPXOR        Y6, Y6, Y6       // max bits
	MOVL         bias+28(FP), AX
	VMOVD        AX, X5
	VPBROADCASTD X5, Y5
	VMOVDQU      Y5, 0(SP)
	MOVBLZX      noise+24(FP), AX
	TESTB        AL, AL
	JZ           plain
	PSTAGE1N(0)
	ADDQ         $32, CX
	JZ           last

nloop:
	PSTAGE2(-32)
	PSTAGE1N(0)
	ADDQ $32, CX
	JNZ  nloop
	JMP  last

plain:
	PSTAGE1P(0)
	ADDQ $32, CX
	JZ   last

ploop:
	PSTAGE2(-32)
	PSTAGE1P(0)
	ADDQ $32, CX
	JNZ  ploop

last:
	PSTAGE2(-32)
	HMAXPS(Y7, X7, X0)
	VMOVSS       X7, qmax+32(FP)
	VEXTRACTI128 $1, Y6, X0
	VPMAXUD      X0, X6, X6
	VPSHUFD      $0x4e, X6, X0
	VPMAXUD      X0, X6, X6
	VPSHUFD      $0xb1, X6, X0
	VPMAXUD      X0, X6, X6
	VMOVD        X6, AX
	MOVL         AX, maxBits+36(FP)
	VZEROUPPER
	RET

// LSTORE: logits: q = (l-lmax)*log2(e) - Y4 (log2 E), -Inf where
// l = -Inf, l at (SI)(CX*1); max into Y7, stored at (DI)(CX*1).
#define LSTORE \
	VMOVUPS     (SI)(CX*1), Y1 \
	VSUBPS      Y6, Y1, Y0 \
	VFMSUB132PS log2e<>(SB), Y4, Y0 \ // (l-lmax)*log2(e) - log2 E
	VCMPPS      $0, negInf<>(SB), Y1, Y1 \ // EQ_OQ: l = -Inf
	VBLENDVPS   Y1, negInf<>(SB), Y0, Y0 \
	VMAXPS      Y0, Y7, Y7 \
	VMOVUPS     Y0, (DI)(CX*1)

// func gumbelLogitsKernel(dst, src *float32, n int, noise bool, lmax float32) (qmax float32)
// Pass 1b for logits, n a multiple of 8, lmax finite: with noise, dst
// holds log2 u_j on entry. dst[j] = (l_j-lmax)*log2(e) - log2(E_j) (no
// log2 term without noise), -Inf where l_j = -Inf.
TEXT ·gumbelLogitsKernel(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	SHLQ         $2, CX
	ADDQ         CX, DI
	ADDQ         CX, SI
	NEGQ         CX
	LOG2TCONST
	VMOVUPS      negInf<>(SB), Y7 // qmax
	VBROADCASTSS lmax+28(FP), Y6
	MOVBLZX      noise+24(FP), AX
	TESTB        AL, AL
	JZ           lplain

lnoise:
	VMOVUPS (DI)(CX*1), Y0
	VXORPS  negZero<>(SB), Y0, Y0 // E = -log2 u
	VPSUBD  RBIAS, Y0, Y0
	LOG2T1(Y0, Y2, Y3, Y4)
	LOG2T2(Y0, Y2, Y4)
	LSTORE
	ADDQ    $32, CX
	JNZ     lnoise
	JMP     ldone

lplain:
	VXORPS Y4, Y4, Y4 // log2 E = 0
	LSTORE
	ADDQ   $32, CX
	JNZ    lplain

ldone:
	HMAXPS(Y7, X7, X0)
	VMOVSS X7, qmax+32(FP)
	VZEROUPPER
	RET

// func logitsMaxKernel(src *float32, n int) (lmax float32, bad bool)
// n is a multiple of 8. bad reports a NaN or +Inf.
TEXT ·logitsMaxKernel(SB), NOSPLIT, $0-21
	MOVQ    src+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS negInf<>(SB), Y0
	VMOVUPS posInf<>(SB), Y2
	VXORPS  Y1, Y1, Y1

lmloop:
	CMPQ    CX, $8
	JB      lmdone
	VMOVUPS (SI), Y3
	VMAXPS  Y3, Y0, Y0
	VCMPPS  $0x15, Y2, Y3, Y4 // NLT_UQ: !(l < +Inf)
	VORPS   Y4, Y1, Y1
	ADDQ    $32, SI
	SUBQ    $8, CX
	JMP     lmloop

lmdone:
	HMAXPS(Y0, X0, X3)
	VMOVSS    X0, lmax+16(FP)
	VMOVMSKPS Y1, AX
	TESTL     AX, AX
	SETNE     bad+20(FP)
	VZEROUPPER
	RET

// EXP2(x, s, t): s = 2^(x*invTau + c) (see exp2Poly); x is clobbered.
// Y15 = invTau, Y14 = c, Y13 = -127, Y12 = 1.5*2^23 + 127, Y9-Y6 = exp2Coef
// c1-c4. x*invTau + c is clamped to >= -127, where 2^round(x) is 0.
#define EXP2(x, s, t) \
	VFMADD213PS Y14, Y15, x \
	VMAXPS      Y13, x, x \
	VADDPS      Y12, x, s \ // s = 1.5*2^23 + 127 + round(x)
	VSUBPS      Y12, s, t \
	VSUBPS      t, x, x \ // f = x - round(x) in [-0.5, 0.5]
	VPSLLD      $23, s, s \ // 2^round(x)
	VMOVAPS     exp2c5<>(SB), t \
	VFMADD213PS Y6, x, t \
	VFMADD213PS Y7, x, t \
	VFMADD213PS Y8, x, t \
	VFMADD213PS Y9, x, t \
	VFMADD213PS exp2c0<>(SB), x, t \
	VMULPS      t, s, s

// func expKernel(dst *float32, n int, invTau, c float32) (sum float32)
// Pass 2: dst[j] = 2^(dst[j]*invTau + c) in place; n a multiple of 8.
TEXT ·expKernel(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         n+8(FP), CX
	SHLQ         $2, CX
	ADDQ         CX, DI
	NEGQ         CX
	VBROADCASTSS invTau+16(FP), Y15
	VBROADCASTSS c+20(FP), Y14
	VMOVUPS      m127<>(SB), Y13
	VMOVUPS      expMagic<>(SB), Y12
	VMOVUPS      exp2c1<>(SB), Y9
	VMOVUPS      exp2c2<>(SB), Y8
	VMOVUPS      exp2c3<>(SB), Y7
	VMOVUPS      exp2c4<>(SB), Y6
	VXORPS       Y11, Y11, Y11
	VXORPS       Y10, Y10, Y10
	TESTQ        $32, CX
	JZ           eloop2
	VMOVUPS      (DI)(CX*1), Y0 // an odd number of vectors: one first
	EXP2(Y0, Y1, Y2)
	VMOVUPS      Y1, (DI)(CX*1)
	VMOVAPS      Y1, Y11
	ADDQ         $32, CX
	JZ           edone

eloop2:
	VMOVUPS (DI)(CX*1), Y0
	VMOVUPS 32(DI)(CX*1), Y3
	EXP2(Y0, Y1, Y2)
	EXP2(Y3, Y4, Y5)
	VMOVUPS Y1, (DI)(CX*1)
	VMOVUPS Y4, 32(DI)(CX*1)
	VADDPS  Y1, Y11, Y11
	VADDPS  Y4, Y10, Y10
	ADDQ    $64, CX
	JNZ     eloop2

edone:
	VADDPS       Y10, Y11, Y11
	VEXTRACTF128 $1, Y11, X0
	VADDPS       X0, X11, X11
	VPERMILPS    $0x4e, X11, X0
	VADDPS       X0, X11, X11
	VPERMILPS    $0xb1, X11, X0
	VADDPS       X0, X11, X11
	VMOVSS       X11, sum+24(FP)
	VZEROUPPER
	RET

// func addScaledKernel(acc, x *float32, n int, a float32)
// acc[j] = fma(a, x[j], acc[j]) for j < n; the last n%8 with masked moves.
TEXT ·addScaledKernel(SB), NOSPLIT, $0-28
	MOVQ         acc+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS a+24(FP), Y15

aloop4:
	CMPQ        CX, $32
	JB          aloop1
	VMOVUPS     (SI), Y0
	VMOVUPS     32(SI), Y1
	VMOVUPS     64(SI), Y2
	VMOVUPS     96(SI), Y3
	VFMADD213PS (DI), Y15, Y0
	VFMADD213PS 32(DI), Y15, Y1
	VFMADD213PS 64(DI), Y15, Y2
	VFMADD213PS 96(DI), Y15, Y3
	VMOVUPS     Y0, (DI)
	VMOVUPS     Y1, 32(DI)
	VMOVUPS     Y2, 64(DI)
	VMOVUPS     Y3, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         aloop4

aloop1:
	CMPQ        CX, $8
	JB          atail
	VMOVUPS     (SI), Y0
	VFMADD213PS (DI), Y15, Y0
	VMOVUPS     Y0, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         aloop1

atail:
	TESTQ       CX, CX
	JZ          adone
	LEAQ        tailMask<>+32(SB), AX
	SHLQ        $2, CX
	SUBQ        CX, AX
	VMOVDQU     (AX), Y4             // first n%8 lanes set
	VMASKMOVPS  (SI), Y4, Y0
	VMASKMOVPS  (DI), Y4, Y1
	VFMADD213PS Y1, Y15, Y0
	VMASKMOVPS  Y0, Y4, (DI)

adone:
	VZEROUPPER
	RET

// func argminKernel(x *float32, n int) int
// n >= 8. First the minimum value (4 accumulators; the last vector is
// re-read overlapping), then the first index holding it.
TEXT ·argminKernel(SB), NOSPLIT, $0-24
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	LEAQ    -32(SI)(CX*4), DX    // last full vector
	VMOVUPS (DX), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	MOVQ    SI, AX

mloop4:
	LEAQ   128(AX), BX
	CMPQ   BX, DX
	JA     mloop1
	VMINPS (AX), Y0, Y0
	VMINPS 32(AX), Y1, Y1
	VMINPS 64(AX), Y2, Y2
	VMINPS 96(AX), Y3, Y3
	MOVQ   BX, AX
	JMP    mloop4

mloop1:
	CMPQ   AX, DX
	JAE    mreduce
	VMINPS (AX), Y0, Y0
	ADDQ   $32, AX
	JMP    mloop1

mreduce:
	VMINPS       Y1, Y0, Y0
	VMINPS       Y3, Y2, Y2
	VMINPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMINPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMINPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMINPS       X1, X0, X0
	VBROADCASTSS X0, Y0

	// find the first index i with x[i] == min
	MOVQ SI, AX

floop4:
	LEAQ      128(AX), BX
	CMPQ      BX, DX
	JA        floop1
	VCMPPS    $0, (AX), Y0, Y1
	VCMPPS    $0, 32(AX), Y0, Y2
	VCMPPS    $0, 64(AX), Y0, Y3
	VCMPPS    $0, 96(AX), Y0, Y4
	VORPS     Y1, Y2, Y5
	VORPS     Y3, Y4, Y6
	VORPS     Y5, Y6, Y5
	VPTEST    Y5, Y5
	JNZ       ffound4
	MOVQ      BX, AX
	JMP       floop4

ffound4:
	VMOVMSKPS Y1, R8
	VMOVMSKPS Y2, R9
	VMOVMSKPS Y3, R10
	VMOVMSKPS Y4, R11
	SHLQ      $8, R9
	SHLQ      $16, R10
	SHLQ      $24, R11
	ORQ       R9, R8
	ORQ       R10, R8
	ORQ       R11, R8
	JMP       fdone

floop1:
	CMPQ      AX, DX
	JA        flast
	VCMPPS    $0, (AX), Y0, Y1
	VMOVMSKPS Y1, R8
	TESTL     R8, R8
	JNZ       fdone
	ADDQ      $32, AX
	JMP       floop1

flast:
	MOVQ      DX, AX
	VCMPPS    $0, (AX), Y0, Y1
	VMOVMSKPS Y1, R8

fdone:
	BSFQ R8, R8
	SUBQ SI, AX
	SHRQ $2, AX
	ADDQ R8, AX
	MOVQ AX, ret+16(FP)
	VZEROUPPER
	RET

// Constants, broadcast to 8 lanes. SPLAT8(name, v) is the 32-byte name<> holding v in every
// lane. The loops use most of them as memory operands or load them into registers once; AVX2 has
// no broadcasting memory operand, so a 4-byte constant would cost a register or an extra
// instruction per use inside the loops.
#define SPLAT8(name, v) \
	DATA name<>+0(SB)/4, v; DATA name<>+4(SB)/4, v; DATA name<>+8(SB)/4, v; DATA name<>+12(SB)/4, v; \
	DATA name<>+16(SB)/4, v; DATA name<>+20(SB)/4, v; DATA name<>+24(SB)/4, v; DATA name<>+28(SB)/4, v; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

SPLAT8(hashC1, $0x7feb352d)
SPLAT8(hashC2, $0x846ca68b)
SPLAT8(oneI, $0x00000001)
SPLAT8(two25I, $0x02000000)
SPLAT8(exp25, $0x0c800000)
SPLAT8(bias25, $0x4bb504f3)
SPLAT8(bias, $0x3f3504f3)
SPLAT8(mant, $0x007fffff)
SPLAT8(oneF, $0x3f800000)
SPLAT8(negTwoM64, $0x9f800000)
SPLAT8(two64, $0x5f800000)
SPLAT8(negInf, $0xff800000)
SPLAT8(posInf, $0x7f800000)
SPLAT8(negZero, $0x80000000)
SPLAT8(zero, $0x00000000)
SPLAT8(log2e, $0x3fb8aa3b)
SPLAT8(m127, $0xc2fe0000)
SPLAT8(expMagic, $0x4b40007f)
SPLAT8(log2c0, $0x3fb8aa38)
SPLAT8(log2c1, $0xbf38aa30)
SPLAT8(log2c2, $0x3ef6b296)
SPLAT8(log2c3, $0xbeb9248d)
SPLAT8(exp2c0, $0x3f800001)
SPLAT8(exp2c1, $0x3f317214)
SPLAT8(exp2c2, $0x3e75fc8c)
SPLAT8(exp2c3, $0x3d635b72)
SPLAT8(exp2c4, $0x3c1e8629)
SPLAT8(exp2c5, $0x3aae0473)

// The log2 tables: invc[i] = float32(1/c_i), logc[i] = float32(-log2(invc[i])).
DATA invcTab<>+0(SB)/4, $0x3fad5ba2 // 1.35435891
DATA invcTab<>+4(SB)/4, $0x3f9fd42f // 1.24866283
DATA invcTab<>+8(SB)/4, $0x3f94422f // 1.15826976
DATA invcTab<>+12(SB)/4, $0x3f8a4016 // 1.08008075
DATA invcTab<>+16(SB)/4, $0x3f800000 // 1
DATA invcTab<>+20(SB)/4, $0x3f685d85 // 0.907676995
DATA invcTab<>+24(SB)/4, $0x3f50b00c // 0.815186262
DATA invcTab<>+28(SB)/4, $0x3f3d63a6 // 0.739801764
GLOBL invcTab<>(SB), RODATA|NOPTR, $32

DATA logcTab<>+0(SB)/4, $0xbee00e6f // -0.43761012
DATA logcTab<>+4(SB)/4, $0xbea4095e // -0.320383966
DATA logcTab<>+8(SB)/4, $0xbe590f01 // -0.211971298
DATA logcTab<>+12(SB)/4, $0xbde39cef // -0.111139171
DATA logcTab<>+16(SB)/4, $0x00000000 // 0
DATA logcTab<>+20(SB)/4, $0x3e0f1a64 // 0.13974911
DATA logcTab<>+24(SB)/4, $0x3e96efcf // 0.294798344
DATA logcTab<>+28(SB)/4, $0x3ede9cb6 // 0.43478936
GLOBL logcTab<>(SB), RODATA|NOPTR, $32

DATA iota<>+0(SB)/4, $0
DATA iota<>+4(SB)/4, $1
DATA iota<>+8(SB)/4, $2
DATA iota<>+12(SB)/4, $3
DATA iota<>+16(SB)/4, $4
DATA iota<>+20(SB)/4, $5
DATA iota<>+24(SB)/4, $6
DATA iota<>+28(SB)/4, $7
GLOBL iota<>(SB), RODATA|NOPTR, $32

DATA tailMask<>+0(SB)/4, $0xffffffff
DATA tailMask<>+4(SB)/4, $0xffffffff
DATA tailMask<>+8(SB)/4, $0xffffffff
DATA tailMask<>+12(SB)/4, $0xffffffff
DATA tailMask<>+16(SB)/4, $0xffffffff
DATA tailMask<>+20(SB)/4, $0xffffffff
DATA tailMask<>+24(SB)/4, $0xffffffff
DATA tailMask<>+28(SB)/4, $0xffffffff
DATA tailMask<>+32(SB)/4, $0x00000000
DATA tailMask<>+36(SB)/4, $0x00000000
DATA tailMask<>+40(SB)/4, $0x00000000
DATA tailMask<>+44(SB)/4, $0x00000000
DATA tailMask<>+48(SB)/4, $0x00000000
DATA tailMask<>+52(SB)/4, $0x00000000
DATA tailMask<>+56(SB)/4, $0x00000000
DATA tailMask<>+60(SB)/4, $0x00000000
GLOBL tailMask<>(SB), RODATA|NOPTR, $64
