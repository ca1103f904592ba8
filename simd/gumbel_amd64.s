//go:build !purego

#include "textflag.h"

// AVX2+FMA kernels of GumbelScores, AddScaled and Argmin; see
// gumbel_generic.go and generic.go for the Go twins and the reference loops.
// Vectors of 8 float32; the loops that carry most of the work process two
// vectors per iteration. Go-side wrappers (dispatch_amd64.go) pass whole
// vectors only (n a multiple of 8) except to addScaledKernel and argminKernel.

// Register use of the two-vector loops: vector A in Y0-Y5, vector B in
// Y6-Y11; Y12 = unsigned max of the input bits (probabilities) or lmax
// (logits), Y13 = max q, Y14 = 8*a, Y15 = hash inputs of vector A. The
// per-vector work is split in stages and the stages of A and B alternate, so
// that the out-of-order core always has two independent dependency chains
// at hand (one vector is a ~100-cycle chain).

// ESTRIN7(f, e, t1, p, t2, t3): p = f*P(f) + e, P the degree-7 log2Coef
// polynomial, by Estrin's scheme (latency 4 FMAs instead of 8).
#define ESTRIN7(f, e, t1, p, t2, t3) \
	VMULPS      f, f, t1 \
	VMOVAPS     log2c1<>(SB), p \
	VFMADD213PS log2c0<>(SB), f, p \
	VMOVAPS     log2c3<>(SB), t2 \
	VFMADD213PS log2c2<>(SB), f, t2 \
	VFMADD231PS t2, t1, p \
	VMOVAPS     log2c5<>(SB), t2 \
	VFMADD213PS log2c4<>(SB), f, t2 \
	VMOVAPS     log2c7<>(SB), t3 \
	VFMADD213PS log2c6<>(SB), f, t3 \
	VFMADD231PS t3, t1, t2 \
	VMULPS      t1, t1, t1 \
	VFMADD231PS t2, t1, p \
	VFMADD213PS e, f, p

// DECOMP(bconst, x, e): x = 2^e * m, m in [sqrt(1/2), sqrt(2)); on return
// x = f = m-1 and e = float32(e) - (bconst-log2Bias)/2^23. x > 0 normal.
#define DECOMP(bconst, x, e) \
	VPSUBD    bconst, x, x \
	VPSRAD    $23, x, e \
	VCVTDQ2PS e, e \
	VPAND     mant<>(SB), x, x \
	VPADDD    bias<>(SB), x, x \
	VSUBPS    oneF<>(SB), x, x

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

// DECOMPU(r0, r1, r2, r3): from v in r0, r0 = f and r2 = e with u = 2^e*(1+f)
// (see noiseLog2U): float32(v) is rounded when v >= 2^24, so where e = 0
// f = u-1 is taken exactly as float32(v-2^25)*2^-25.
#define DECOMPU(r0, r1, r2, r3) \
	VPSUBD    two25I<>(SB), r0, r1 \
	VCVTDQ2PS r1, r1 \
	VMULPS    twoM25<>(SB), r1, r1 \
	VCVTDQ2PS r0, r0 \
	VPSUBD    bias25<>(SB), r0, r0 \
	VPSRAD    $23, r0, r2 \
	VPAND     mant<>(SB), r0, r0 \
	VPADDD    bias<>(SB), r0, r0 \
	VSUBPS    oneF<>(SB), r0, r0 \
	VPCMPEQD  zero<>(SB), r2, r3 \
	VBLENDVPS r3, r1, r0, r0 \
	VCVTDQ2PS r2, r2

// PDIV(off, r0, r1, r3): r0 = p*2^64/E from r3 = log2 u and p at off(SI);
// folds the bits of p+0 (-0 becomes +0) into Y12.
#define PDIV(off, r0, r1, r3) \
	VMULPS  negTwoM64<>(SB), r3, r3 \
	VXORPS  r1, r1, r1 \
	VADDPS  off(SI), r1, r1 \
	VPMAXUD r1, Y12, Y12 \
	VDIVPS  r3, r1, r0

// PPLAIN(off, r0, r1): r0 = p*2^64 (no noise); folds p+0 into Y12.
#define PPLAIN(off, r0, r1) \
	VXORPS  r1, r1, r1 \
	VADDPS  off(SI), r1, r1 \
	VPMAXUD r1, Y12, Y12 \
	VMULPS  two64<>(SB), r1, r0

// PSTORE(off, q, t): q = -Inf where !(0 < p), p at off(SI); max and store.
#define PSTORE(off, q, t) \
	VXORPS    t, t, t \
	VCMPPS    $0x15, off(SI), t, t \ // NLT_UQ: !(0 < p)
	VBLENDVPS t, negInf<>(SB), q, q \
	VMAXPS    q, Y13, Y13 \
	VMOVUPS   q, off(DI)

// LSTORE(off, q, t): logits: q = (l-lmax)*log2(e) - q, or -Inf where
// l = -Inf, l at off(SI); max and store.
#define LSTORE(off, q, d, t) \
	VMOVUPS     off(SI), t \
	VSUBPS      Y12, t, d \
	VFMSUB132PS log2e<>(SB), q, d \
	VCMPPS      $0, negInf<>(SB), t, t \ // EQ_OQ
	VBLENDVPS   t, negInf<>(SB), d, d \
	VMAXPS      d, Y13, Y13 \
	VMOVUPS     d, off(DI)


// ESTRIN7R(f, e, t1, p, t2, t3): ESTRIN7 with the coefficients in registers
// Y8-Y15 (c0..c7).
#define ESTRIN7R(f, e, t1, p, t2, t3) \
	VMULPS      f, f, t1 \
	VMOVAPS     Y9, p \
	VFMADD213PS Y8, f, p \
	VMOVAPS     Y11, t2 \
	VFMADD213PS Y10, f, t2 \
	VFMADD231PS t2, t1, p \
	VMOVAPS     Y13, t2 \
	VFMADD213PS Y12, f, t2 \
	VMOVAPS     Y15, t3 \
	VFMADD213PS Y14, f, t3 \
	VFMADD231PS t3, t1, t2 \
	VMULPS      t1, t1, t1 \
	VFMADD231PS t2, t1, p \
	VFMADD213PS e, f, p

// LOADLOG2C loads the log2Coef polynomial into Y8-Y15.
#define LOADLOG2C \
	VMOVUPS log2c0<>(SB), Y8 \
	VMOVUPS log2c1<>(SB), Y9 \
	VMOVUPS log2c2<>(SB), Y10 \
	VMOVUPS log2c3<>(SB), Y11 \
	VMOVUPS log2c4<>(SB), Y12 \
	VMOVUPS log2c5<>(SB), Y13 \
	VMOVUPS log2c6<>(SB), Y14 \
	VMOVUPS log2c7<>(SB), Y15

// DECOMPUR(r0, r1, r2, r3): DECOMPU with Y6 = mantissa mask, Y7 = log2Bias.
#define DECOMPUR(r0, r1, r2, r3) \
	VPSUBD    two25I<>(SB), r0, r1 \
	VCVTDQ2PS r1, r1 \
	VMULPS    twoM25<>(SB), r1, r1 \
	VCVTDQ2PS r0, r0 \
	VPSUBD    bias25<>(SB), r0, r0 \
	VPSRAD    $23, r0, r2 \
	VPAND     Y6, r0, r0 \
	VPADDD    Y7, r0, r0 \
	VSUBPS    oneF<>(SB), r0, r0 \
	VPCMPEQD  zero<>(SB), r2, r3 \
	VBLENDVPS r3, r1, r0, r0 \
	VCVTDQ2PS r2, r2

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
// Pass 1a: dst[j] = log2(u_j) (<= 0) for columns j0+j, n a multiple of 8.
// It is kept apart from pass 1b (below) because one vector through both is
// a ~100-cycle dependency chain: with the two halves in separate loops the
// out-of-order window covers enough vectors to keep the pipes busy.
TEXT ·noiseKernel(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ n+8(FP), CX
	HASHINIT(j0+16(FP), a+20(FP), b+24(FP))
	MOVQ DI, SI
	MOVQ CX, DX

hloop:
	CMPQ    CX, $16
	JB      hloop1
	VPADDD  Y14, Y15, Y6
	HASH(Y15, Y0, Y1)
	HASH(Y6, Y6, Y7)
	VMOVDQU Y0, (DI)
	VMOVDQU Y6, 32(DI)
	VPADDD  Y14, Y15, Y15
	VPADDD  Y14, Y15, Y15
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     hloop

hloop1:
	CMPQ    CX, $8
	JB      nloop2
	HASH(Y15, Y0, Y1)
	VMOVDQU Y0, (DI)

nloop2:
	VMOVDQU mant<>(SB), Y6
	VMOVDQU bias<>(SB), Y7
	LOADLOG2C

nloop1:
	CMPQ    DX, $8
	JB      ndone
	VMOVDQU (SI), Y0
	DECOMPUR(Y0, Y1, Y2, Y3)
	ESTRIN7R(Y0, Y2, Y1, Y3, Y4, Y5)
	VMOVUPS Y3, (SI)
	ADDQ    $32, SI
	SUBQ    $8, DX
	JMP     nloop1

ndone:
	VZEROUPPER
	RET

// func gumbelProbKernel(dst, src *float32, n int, noise bool) (qmax float32, maxBits uint32)
// Pass 1b for probabilities, n a multiple of 8: with noise, dst holds
// log2 u_j (noiseKernel) on entry. dst[j] = log2(p_j*2^64/E_j) - 64 with
// E_j = -log2 u_j (or 1 without noise), -Inf where !(p_j > 0).
TEXT ·gumbelProbKernel(SB), NOSPLIT, $0-40
	MOVQ    dst+0(FP), DI
	MOVQ    src+8(FP), SI
	MOVQ    n+16(FP), CX
	VMOVUPS negInf<>(SB), Y13
	VPXOR   Y12, Y12, Y12
	MOVBLZX noise+24(FP), AX
	TESTB   AL, AL
	JZ      plain2

noise2:
	CMPQ    CX, $16
	JB      noise1
	VMOVUPS (DI), Y3
	VMOVUPS 32(DI), Y9
	PDIV(0, Y0, Y1, Y3)
	PDIV(32, Y6, Y7, Y9)
	DECOMP(bias64<>(SB), Y0, Y2)
	DECOMP(bias64<>(SB), Y6, Y8)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	ESTRIN7(Y6, Y8, Y7, Y9, Y10, Y11)
	PSTORE(0, Y3, Y1)
	PSTORE(32, Y9, Y7)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     noise2

noise1:
	CMPQ    CX, $8
	JB      done
	VMOVUPS (DI), Y3
	PDIV(0, Y0, Y1, Y3)
	DECOMP(bias64<>(SB), Y0, Y2)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	PSTORE(0, Y3, Y1)
	JMP     done

plain2:
	CMPQ CX, $16
	JB   plain1
	PPLAIN(0, Y0, Y1)
	PPLAIN(32, Y6, Y7)
	DECOMP(bias64<>(SB), Y0, Y2)
	DECOMP(bias64<>(SB), Y6, Y8)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	ESTRIN7(Y6, Y8, Y7, Y9, Y10, Y11)
	PSTORE(0, Y3, Y1)
	PSTORE(32, Y9, Y7)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JMP  plain2

plain1:
	CMPQ CX, $8
	JB   done
	PPLAIN(0, Y0, Y1)
	DECOMP(bias64<>(SB), Y0, Y2)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	PSTORE(0, Y3, Y1)

done:
	HMAXPS(Y13, X13, X0)
	VMOVSS       X13, qmax+32(FP)
	VEXTRACTI128 $1, Y12, X0
	VPMAXUD      X0, X12, X12
	VPSHUFD      $0x4e, X12, X0
	VPMAXUD      X0, X12, X12
	VPSHUFD      $0xb1, X12, X0
	VPMAXUD      X0, X12, X12
	VMOVD        X12, AX
	MOVL         AX, maxBits+36(FP)
	VZEROUPPER
	RET

// func gumbelLogitsKernel(dst, src *float32, n int, noise bool, lmax float32) (qmax float32)
// Pass 1b for logits, n a multiple of 8, lmax finite: with noise, dst
// holds log2 u_j on entry. dst[j] = (l_j-lmax)*log2(e) - log2(E_j) (no
// log2 term without noise), -Inf where l_j = -Inf.
TEXT ·gumbelLogitsKernel(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VMOVUPS      negInf<>(SB), Y13
	VBROADCASTSS lmax+28(FP), Y12
	MOVBLZX      noise+24(FP), AX
	TESTB        AL, AL
	JZ           lplain

lnoise2:
	CMPQ    CX, $16
	JB      lnoise1
	VMOVUPS negZero<>(SB), Y6
	VXORPS  (DI), Y6, Y0      // E = -log2 u
	VXORPS  32(DI), Y6, Y6
	DECOMP(bias<>(SB), Y0, Y2)
	DECOMP(bias<>(SB), Y6, Y8)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	ESTRIN7(Y6, Y8, Y7, Y9, Y10, Y11)
	LSTORE(0, Y3, Y0, Y1)
	LSTORE(32, Y9, Y6, Y7)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     lnoise2

lnoise1:
	CMPQ    CX, $8
	JB      ldone
	VMOVUPS negZero<>(SB), Y0
	VXORPS  (DI), Y0, Y0
	DECOMP(bias<>(SB), Y0, Y2)
	ESTRIN7(Y0, Y2, Y1, Y3, Y4, Y5)
	LSTORE(0, Y3, Y0, Y1)
	JMP     ldone

lplain:
	CMPQ   CX, $8
	JB     ldone
	VXORPS Y3, Y3, Y3 // log2 E = 0
	LSTORE(0, Y3, Y0, Y1)
	ADDQ   $32, SI
	ADDQ   $32, DI
	SUBQ   $8, CX
	JMP    lplain

ldone:
	HMAXPS(Y13, X13, X0)
	VMOVSS X13, qmax+32(FP)
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

// EXP2(x, s, t): s = 2^x; x is clobbered. Y15 = invTau, Y14 = c are applied
// first: x = x*invTau + c, then clamped to >= -127 (2^-127 and below give 0).
#define EXP2(x, s, t) \
	VFMADD213PS Y14, Y15, x \
	VMAXPS      Y13, x, x \
	VADDPS      Y12, x, s \ // s = 1.5*2^23 + 127 + round(x)
	VSUBPS      Y12, s, t \
	VSUBPS      t, x, x \ // f = x - round(x) in [-0.5, 0.5]
	VPSLLD      $23, s, s \ // 2^round(x)
	VMOVAPS     exp2c5<>(SB), t \
	VFMADD213PS exp2c4<>(SB), x, t \
	VFMADD213PS exp2c3<>(SB), x, t \
	VFMADD213PS exp2c2<>(SB), x, t \
	VFMADD213PS exp2c1<>(SB), x, t \
	VFMADD213PS exp2c0<>(SB), x, t \
	VMULPS      t, s, s

// func expKernel(dst *float32, n int, invTau, c float32) (sum float32)
// dst[j] = 2^(dst[j]*invTau + c) in place; n is a multiple of 8.
TEXT ·expKernel(SB), NOSPLIT, $0-28
	MOVQ         dst+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS invTau+16(FP), Y15
	VBROADCASTSS c+20(FP), Y14
	VMOVUPS      m127<>(SB), Y13
	VMOVUPS      expMagic<>(SB), Y12
	VXORPS       Y11, Y11, Y11
	VXORPS       Y10, Y10, Y10

eloop2:
	CMPQ    CX, $16
	JB      eloop1
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y3
	EXP2(Y0, Y1, Y2)
	EXP2(Y3, Y4, Y5)
	VMOVUPS Y1, (DI)
	VMOVUPS Y4, 32(DI)
	VADDPS  Y1, Y11, Y11
	VADDPS  Y4, Y10, Y10
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     eloop2

eloop1:
	CMPQ    CX, $8
	JB      edone
	VMOVUPS (DI), Y0
	EXP2(Y0, Y1, Y2)
	VMOVUPS Y1, (DI)
	VADDPS  Y1, Y11, Y11

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

// Constants, broadcast to 8 lanes.
DATA hashC1<>+0(SB)/4, $0x7feb352d
DATA hashC1<>+4(SB)/4, $0x7feb352d
DATA hashC1<>+8(SB)/4, $0x7feb352d
DATA hashC1<>+12(SB)/4, $0x7feb352d
DATA hashC1<>+16(SB)/4, $0x7feb352d
DATA hashC1<>+20(SB)/4, $0x7feb352d
DATA hashC1<>+24(SB)/4, $0x7feb352d
DATA hashC1<>+28(SB)/4, $0x7feb352d
GLOBL hashC1<>(SB), RODATA|NOPTR, $32

DATA hashC2<>+0(SB)/4, $0x846ca68b
DATA hashC2<>+4(SB)/4, $0x846ca68b
DATA hashC2<>+8(SB)/4, $0x846ca68b
DATA hashC2<>+12(SB)/4, $0x846ca68b
DATA hashC2<>+16(SB)/4, $0x846ca68b
DATA hashC2<>+20(SB)/4, $0x846ca68b
DATA hashC2<>+24(SB)/4, $0x846ca68b
DATA hashC2<>+28(SB)/4, $0x846ca68b
GLOBL hashC2<>(SB), RODATA|NOPTR, $32

DATA oneI<>+0(SB)/4, $0x00000001
DATA oneI<>+4(SB)/4, $0x00000001
DATA oneI<>+8(SB)/4, $0x00000001
DATA oneI<>+12(SB)/4, $0x00000001
DATA oneI<>+16(SB)/4, $0x00000001
DATA oneI<>+20(SB)/4, $0x00000001
DATA oneI<>+24(SB)/4, $0x00000001
DATA oneI<>+28(SB)/4, $0x00000001
GLOBL oneI<>(SB), RODATA|NOPTR, $32

DATA two25I<>+0(SB)/4, $0x02000000
DATA two25I<>+4(SB)/4, $0x02000000
DATA two25I<>+8(SB)/4, $0x02000000
DATA two25I<>+12(SB)/4, $0x02000000
DATA two25I<>+16(SB)/4, $0x02000000
DATA two25I<>+20(SB)/4, $0x02000000
DATA two25I<>+24(SB)/4, $0x02000000
DATA two25I<>+28(SB)/4, $0x02000000
GLOBL two25I<>(SB), RODATA|NOPTR, $32

DATA twoM25<>+0(SB)/4, $0x33000000
DATA twoM25<>+4(SB)/4, $0x33000000
DATA twoM25<>+8(SB)/4, $0x33000000
DATA twoM25<>+12(SB)/4, $0x33000000
DATA twoM25<>+16(SB)/4, $0x33000000
DATA twoM25<>+20(SB)/4, $0x33000000
DATA twoM25<>+24(SB)/4, $0x33000000
DATA twoM25<>+28(SB)/4, $0x33000000
GLOBL twoM25<>(SB), RODATA|NOPTR, $32

DATA bias25<>+0(SB)/4, $0x4bb504f3
DATA bias25<>+4(SB)/4, $0x4bb504f3
DATA bias25<>+8(SB)/4, $0x4bb504f3
DATA bias25<>+12(SB)/4, $0x4bb504f3
DATA bias25<>+16(SB)/4, $0x4bb504f3
DATA bias25<>+20(SB)/4, $0x4bb504f3
DATA bias25<>+24(SB)/4, $0x4bb504f3
DATA bias25<>+28(SB)/4, $0x4bb504f3
GLOBL bias25<>(SB), RODATA|NOPTR, $32

DATA bias64<>+0(SB)/4, $0x5f3504f3
DATA bias64<>+4(SB)/4, $0x5f3504f3
DATA bias64<>+8(SB)/4, $0x5f3504f3
DATA bias64<>+12(SB)/4, $0x5f3504f3
DATA bias64<>+16(SB)/4, $0x5f3504f3
DATA bias64<>+20(SB)/4, $0x5f3504f3
DATA bias64<>+24(SB)/4, $0x5f3504f3
DATA bias64<>+28(SB)/4, $0x5f3504f3
GLOBL bias64<>(SB), RODATA|NOPTR, $32

DATA bias<>+0(SB)/4, $0x3f3504f3
DATA bias<>+4(SB)/4, $0x3f3504f3
DATA bias<>+8(SB)/4, $0x3f3504f3
DATA bias<>+12(SB)/4, $0x3f3504f3
DATA bias<>+16(SB)/4, $0x3f3504f3
DATA bias<>+20(SB)/4, $0x3f3504f3
DATA bias<>+24(SB)/4, $0x3f3504f3
DATA bias<>+28(SB)/4, $0x3f3504f3
GLOBL bias<>(SB), RODATA|NOPTR, $32

DATA mant<>+0(SB)/4, $0x007fffff
DATA mant<>+4(SB)/4, $0x007fffff
DATA mant<>+8(SB)/4, $0x007fffff
DATA mant<>+12(SB)/4, $0x007fffff
DATA mant<>+16(SB)/4, $0x007fffff
DATA mant<>+20(SB)/4, $0x007fffff
DATA mant<>+24(SB)/4, $0x007fffff
DATA mant<>+28(SB)/4, $0x007fffff
GLOBL mant<>(SB), RODATA|NOPTR, $32

DATA oneF<>+0(SB)/4, $0x3f800000
DATA oneF<>+4(SB)/4, $0x3f800000
DATA oneF<>+8(SB)/4, $0x3f800000
DATA oneF<>+12(SB)/4, $0x3f800000
DATA oneF<>+16(SB)/4, $0x3f800000
DATA oneF<>+20(SB)/4, $0x3f800000
DATA oneF<>+24(SB)/4, $0x3f800000
DATA oneF<>+28(SB)/4, $0x3f800000
GLOBL oneF<>(SB), RODATA|NOPTR, $32

DATA negTwoM64<>+0(SB)/4, $0x9f800000
DATA negTwoM64<>+4(SB)/4, $0x9f800000
DATA negTwoM64<>+8(SB)/4, $0x9f800000
DATA negTwoM64<>+12(SB)/4, $0x9f800000
DATA negTwoM64<>+16(SB)/4, $0x9f800000
DATA negTwoM64<>+20(SB)/4, $0x9f800000
DATA negTwoM64<>+24(SB)/4, $0x9f800000
DATA negTwoM64<>+28(SB)/4, $0x9f800000
GLOBL negTwoM64<>(SB), RODATA|NOPTR, $32

DATA two64<>+0(SB)/4, $0x5f800000
DATA two64<>+4(SB)/4, $0x5f800000
DATA two64<>+8(SB)/4, $0x5f800000
DATA two64<>+12(SB)/4, $0x5f800000
DATA two64<>+16(SB)/4, $0x5f800000
DATA two64<>+20(SB)/4, $0x5f800000
DATA two64<>+24(SB)/4, $0x5f800000
DATA two64<>+28(SB)/4, $0x5f800000
GLOBL two64<>(SB), RODATA|NOPTR, $32

DATA negInf<>+0(SB)/4, $0xff800000
DATA negInf<>+4(SB)/4, $0xff800000
DATA negInf<>+8(SB)/4, $0xff800000
DATA negInf<>+12(SB)/4, $0xff800000
DATA negInf<>+16(SB)/4, $0xff800000
DATA negInf<>+20(SB)/4, $0xff800000
DATA negInf<>+24(SB)/4, $0xff800000
DATA negInf<>+28(SB)/4, $0xff800000
GLOBL negInf<>(SB), RODATA|NOPTR, $32

DATA posInf<>+0(SB)/4, $0x7f800000
DATA posInf<>+4(SB)/4, $0x7f800000
DATA posInf<>+8(SB)/4, $0x7f800000
DATA posInf<>+12(SB)/4, $0x7f800000
DATA posInf<>+16(SB)/4, $0x7f800000
DATA posInf<>+20(SB)/4, $0x7f800000
DATA posInf<>+24(SB)/4, $0x7f800000
DATA posInf<>+28(SB)/4, $0x7f800000
GLOBL posInf<>(SB), RODATA|NOPTR, $32

DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32

DATA m127<>+0(SB)/4, $0xc2fe0000
DATA m127<>+4(SB)/4, $0xc2fe0000
DATA m127<>+8(SB)/4, $0xc2fe0000
DATA m127<>+12(SB)/4, $0xc2fe0000
DATA m127<>+16(SB)/4, $0xc2fe0000
DATA m127<>+20(SB)/4, $0xc2fe0000
DATA m127<>+24(SB)/4, $0xc2fe0000
DATA m127<>+28(SB)/4, $0xc2fe0000
GLOBL m127<>(SB), RODATA|NOPTR, $32

DATA expMagic<>+0(SB)/4, $0x4b40007f
DATA expMagic<>+4(SB)/4, $0x4b40007f
DATA expMagic<>+8(SB)/4, $0x4b40007f
DATA expMagic<>+12(SB)/4, $0x4b40007f
DATA expMagic<>+16(SB)/4, $0x4b40007f
DATA expMagic<>+20(SB)/4, $0x4b40007f
DATA expMagic<>+24(SB)/4, $0x4b40007f
DATA expMagic<>+28(SB)/4, $0x4b40007f
GLOBL expMagic<>(SB), RODATA|NOPTR, $32

DATA log2c0<>+0(SB)/4, $0x3fb8aa3a
DATA log2c0<>+4(SB)/4, $0x3fb8aa3a
DATA log2c0<>+8(SB)/4, $0x3fb8aa3a
DATA log2c0<>+12(SB)/4, $0x3fb8aa3a
DATA log2c0<>+16(SB)/4, $0x3fb8aa3a
DATA log2c0<>+20(SB)/4, $0x3fb8aa3a
DATA log2c0<>+24(SB)/4, $0x3fb8aa3a
DATA log2c0<>+28(SB)/4, $0x3fb8aa3a
GLOBL log2c0<>(SB), RODATA|NOPTR, $32

DATA log2c1<>+0(SB)/4, $0xbf38aa94
DATA log2c1<>+4(SB)/4, $0xbf38aa94
DATA log2c1<>+8(SB)/4, $0xbf38aa94
DATA log2c1<>+12(SB)/4, $0xbf38aa94
DATA log2c1<>+16(SB)/4, $0xbf38aa94
DATA log2c1<>+20(SB)/4, $0xbf38aa94
DATA log2c1<>+24(SB)/4, $0xbf38aa94
DATA log2c1<>+28(SB)/4, $0xbf38aa94
GLOBL log2c1<>(SB), RODATA|NOPTR, $32

DATA log2c2<>+0(SB)/4, $0x3ef63b92
DATA log2c2<>+4(SB)/4, $0x3ef63b92
DATA log2c2<>+8(SB)/4, $0x3ef63b92
DATA log2c2<>+12(SB)/4, $0x3ef63b92
DATA log2c2<>+16(SB)/4, $0x3ef63b92
DATA log2c2<>+20(SB)/4, $0x3ef63b92
DATA log2c2<>+24(SB)/4, $0x3ef63b92
DATA log2c2<>+28(SB)/4, $0x3ef63b92
GLOBL log2c2<>(SB), RODATA|NOPTR, $32

DATA log2c3<>+0(SB)/4, $0xbeb87154
DATA log2c3<>+4(SB)/4, $0xbeb87154
DATA log2c3<>+8(SB)/4, $0xbeb87154
DATA log2c3<>+12(SB)/4, $0xbeb87154
DATA log2c3<>+16(SB)/4, $0xbeb87154
DATA log2c3<>+20(SB)/4, $0xbeb87154
DATA log2c3<>+24(SB)/4, $0xbeb87154
DATA log2c3<>+28(SB)/4, $0xbeb87154
GLOBL log2c3<>(SB), RODATA|NOPTR, $32

DATA log2c4<>+0(SB)/4, $0x3e92fe9a
DATA log2c4<>+4(SB)/4, $0x3e92fe9a
DATA log2c4<>+8(SB)/4, $0x3e92fe9a
DATA log2c4<>+12(SB)/4, $0x3e92fe9a
DATA log2c4<>+16(SB)/4, $0x3e92fe9a
DATA log2c4<>+20(SB)/4, $0x3e92fe9a
DATA log2c4<>+24(SB)/4, $0x3e92fe9a
DATA log2c4<>+28(SB)/4, $0x3e92fe9a
GLOBL log2c4<>(SB), RODATA|NOPTR, $32

DATA log2c5<>+0(SB)/4, $0xbe7ed994
DATA log2c5<>+4(SB)/4, $0xbe7ed994
DATA log2c5<>+8(SB)/4, $0xbe7ed994
DATA log2c5<>+12(SB)/4, $0xbe7ed994
DATA log2c5<>+16(SB)/4, $0xbe7ed994
DATA log2c5<>+20(SB)/4, $0xbe7ed994
DATA log2c5<>+24(SB)/4, $0xbe7ed994
DATA log2c5<>+28(SB)/4, $0xbe7ed994
GLOBL log2c5<>(SB), RODATA|NOPTR, $32

DATA log2c6<>+0(SB)/4, $0x3e6fa8cc
DATA log2c6<>+4(SB)/4, $0x3e6fa8cc
DATA log2c6<>+8(SB)/4, $0x3e6fa8cc
DATA log2c6<>+12(SB)/4, $0x3e6fa8cc
DATA log2c6<>+16(SB)/4, $0x3e6fa8cc
DATA log2c6<>+20(SB)/4, $0x3e6fa8cc
DATA log2c6<>+24(SB)/4, $0x3e6fa8cc
DATA log2c6<>+28(SB)/4, $0x3e6fa8cc
GLOBL log2c6<>(SB), RODATA|NOPTR, $32

DATA log2c7<>+0(SB)/4, $0xbe154fa6
DATA log2c7<>+4(SB)/4, $0xbe154fa6
DATA log2c7<>+8(SB)/4, $0xbe154fa6
DATA log2c7<>+12(SB)/4, $0xbe154fa6
DATA log2c7<>+16(SB)/4, $0xbe154fa6
DATA log2c7<>+20(SB)/4, $0xbe154fa6
DATA log2c7<>+24(SB)/4, $0xbe154fa6
DATA log2c7<>+28(SB)/4, $0xbe154fa6
GLOBL log2c7<>(SB), RODATA|NOPTR, $32

DATA exp2c0<>+0(SB)/4, $0x3f800001
DATA exp2c0<>+4(SB)/4, $0x3f800001
DATA exp2c0<>+8(SB)/4, $0x3f800001
DATA exp2c0<>+12(SB)/4, $0x3f800001
DATA exp2c0<>+16(SB)/4, $0x3f800001
DATA exp2c0<>+20(SB)/4, $0x3f800001
DATA exp2c0<>+24(SB)/4, $0x3f800001
DATA exp2c0<>+28(SB)/4, $0x3f800001
GLOBL exp2c0<>(SB), RODATA|NOPTR, $32

DATA exp2c1<>+0(SB)/4, $0x3f317214
DATA exp2c1<>+4(SB)/4, $0x3f317214
DATA exp2c1<>+8(SB)/4, $0x3f317214
DATA exp2c1<>+12(SB)/4, $0x3f317214
DATA exp2c1<>+16(SB)/4, $0x3f317214
DATA exp2c1<>+20(SB)/4, $0x3f317214
DATA exp2c1<>+24(SB)/4, $0x3f317214
DATA exp2c1<>+28(SB)/4, $0x3f317214
GLOBL exp2c1<>(SB), RODATA|NOPTR, $32

DATA exp2c2<>+0(SB)/4, $0x3e75fc8c
DATA exp2c2<>+4(SB)/4, $0x3e75fc8c
DATA exp2c2<>+8(SB)/4, $0x3e75fc8c
DATA exp2c2<>+12(SB)/4, $0x3e75fc8c
DATA exp2c2<>+16(SB)/4, $0x3e75fc8c
DATA exp2c2<>+20(SB)/4, $0x3e75fc8c
DATA exp2c2<>+24(SB)/4, $0x3e75fc8c
DATA exp2c2<>+28(SB)/4, $0x3e75fc8c
GLOBL exp2c2<>(SB), RODATA|NOPTR, $32

DATA exp2c3<>+0(SB)/4, $0x3d635b72
DATA exp2c3<>+4(SB)/4, $0x3d635b72
DATA exp2c3<>+8(SB)/4, $0x3d635b72
DATA exp2c3<>+12(SB)/4, $0x3d635b72
DATA exp2c3<>+16(SB)/4, $0x3d635b72
DATA exp2c3<>+20(SB)/4, $0x3d635b72
DATA exp2c3<>+24(SB)/4, $0x3d635b72
DATA exp2c3<>+28(SB)/4, $0x3d635b72
GLOBL exp2c3<>(SB), RODATA|NOPTR, $32

DATA exp2c4<>+0(SB)/4, $0x3c1e8629
DATA exp2c4<>+4(SB)/4, $0x3c1e8629
DATA exp2c4<>+8(SB)/4, $0x3c1e8629
DATA exp2c4<>+12(SB)/4, $0x3c1e8629
DATA exp2c4<>+16(SB)/4, $0x3c1e8629
DATA exp2c4<>+20(SB)/4, $0x3c1e8629
DATA exp2c4<>+24(SB)/4, $0x3c1e8629
DATA exp2c4<>+28(SB)/4, $0x3c1e8629
GLOBL exp2c4<>(SB), RODATA|NOPTR, $32

DATA exp2c5<>+0(SB)/4, $0x3aae0473
DATA exp2c5<>+4(SB)/4, $0x3aae0473
DATA exp2c5<>+8(SB)/4, $0x3aae0473
DATA exp2c5<>+12(SB)/4, $0x3aae0473
DATA exp2c5<>+16(SB)/4, $0x3aae0473
DATA exp2c5<>+20(SB)/4, $0x3aae0473
DATA exp2c5<>+24(SB)/4, $0x3aae0473
DATA exp2c5<>+28(SB)/4, $0x3aae0473
GLOBL exp2c5<>(SB), RODATA|NOPTR, $32

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

DATA negZero<>+0(SB)/4, $0x80000000
DATA negZero<>+4(SB)/4, $0x80000000
DATA negZero<>+8(SB)/4, $0x80000000
DATA negZero<>+12(SB)/4, $0x80000000
DATA negZero<>+16(SB)/4, $0x80000000
DATA negZero<>+20(SB)/4, $0x80000000
DATA negZero<>+24(SB)/4, $0x80000000
DATA negZero<>+28(SB)/4, $0x80000000
GLOBL negZero<>(SB), RODATA|NOPTR, $32

DATA zero<>+0(SB)/4, $0
DATA zero<>+4(SB)/4, $0
DATA zero<>+8(SB)/4, $0
DATA zero<>+12(SB)/4, $0
DATA zero<>+16(SB)/4, $0
DATA zero<>+20(SB)/4, $0
DATA zero<>+24(SB)/4, $0
DATA zero<>+28(SB)/4, $0
GLOBL zero<>(SB), RODATA|NOPTR, $32
