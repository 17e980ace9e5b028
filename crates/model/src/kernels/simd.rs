//! Vectorisable scalar math for the kernels: `exp`, the normal CDF, sums and dot products,
//! written so that LLVM turns the loops that call them into SIMD code. The kernels compile each
//! hot loop twice, for AVX2+FMA (selected at run time) and for the baseline target; `FMA`
//! picks fused multiply-adds, which are a slow library call without the instruction.

/// `a·b + c`, fused when `FMA`.
#[inline(always)]
pub fn fmadd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Whether the AVX2+FMA versions of the kernels can run.
#[inline]
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn $name(args) -> R` that runs `$imp::<true>(args)` compiled with AVX2+FMA when
/// the CPU has them (checked at run time), else `$imp::<false>(args)`. `$imp` must be
/// `#[inline(always)]`, so that its body is compiled inside the AVX2 wrapper.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? = $imp:ident) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn wide($($a: $t),*) $(-> $r)? {
                    $imp::<true>($($a),*)
                }
                if $crate::kernels::simd::avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { wide($($a),*) };
                }
            }
            $imp::<false>($($a),*)
        }
    };
}
pub(crate) use multiversion;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_LO: f32 = -87.336_54;
const EXP_HI: f32 = 88.722_83;

/// eˣ (Cephes `expf`: range reduction by ln 2 and a degree-6 polynomial; ≤ 2 ulp), exactly 0
/// below −87.34 and +∞ above 88.72.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    let xc = x.clamp(EXP_LO, EXP_HI);
    let n = fmadd::<FMA>(xc, LOG2E, 0.5).floor();
    let r = fmadd::<FMA>(n, -LN2_HI, xc);
    let r = fmadd::<FMA>(n, -LN2_LO, r);
    let mut p = 1.987_569_2e-4;
    p = fmadd::<FMA>(p, r, 1.398_199_9e-3);
    p = fmadd::<FMA>(p, r, 8.333_452e-3);
    p = fmadd::<FMA>(p, r, 4.166_579_6e-2);
    p = fmadd::<FMA>(p, r, 0.166_666_65);
    p = fmadd::<FMA>(p, r, 0.5);
    let y = fmadd::<FMA>(p, r * r, r) + 1.0;
    let out = y * pow2(n);
    let out = if x < EXP_LO { 0.0 } else { out };
    if x > EXP_HI { f32::INFINITY } else { out }
}

/// 2ⁿ for an integer-valued n ∈ [−126, 128] (128 gives +∞), built from its exponent bits.
/// Why not `n as i32`: Rust's saturating float-to-int cast (NaN → 0) does not vectorise, and
/// LLVM unpacked every lane to a scalar `cvttss2si` with a NaN check, which was most of the
/// time of `exp` in the GELU and softmax loops. Adding 2²³ puts the integer n + 127 in the low
/// mantissa bits (exactly, as it is below 2²³), and the shift moves it into the exponent field
/// (the bits above it shift out).
#[inline(always)]
pub fn pow2(n: f32) -> f32 {
    const SHIFTED_BIAS: f32 = 127.0 + 8_388_608.0;
    f32::from_bits((n + SHIFTED_BIAS).to_bits() << 23)
}

/// The standard normal CDF Φ(x) = erfc(−x/√2)/2, from the Chebyshev fit of erfc in Numerical
/// Recipes (`erfcc`, fractional error < 1.2e-7 in exact arithmetic), so that Φ keeps its
/// relative accuracy in the left tail (where GELU's output is x·Φ(x)). In f32, measured against
/// f64: relative error ≤ 1.1e-6 on [−3, 3] and ≤ 2e-5 out to ±9 (the rounding of the
/// exponent −z²; tested in `kernels::tests`).
#[inline(always)]
pub fn normal_cdf<const FMA: bool>(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / fmadd::<FMA>(0.5, z, 1.0);
    let mut p = 0.170_872_77;
    p = fmadd::<FMA>(p, t, -0.822_152_23);
    p = fmadd::<FMA>(p, t, 1.488_515_9);
    p = fmadd::<FMA>(p, t, -1.135_204);
    p = fmadd::<FMA>(p, t, 0.278_868_07);
    p = fmadd::<FMA>(p, t, -0.186_288_06);
    p = fmadd::<FMA>(p, t, 0.096_784_18);
    p = fmadd::<FMA>(p, t, 0.374_091_96);
    p = fmadd::<FMA>(p, t, 1.000_023_7);
    p = fmadd::<FMA>(p, t, -1.265_512_2);
    let half_erfc = 0.5 * t * exp::<FMA>(fmadd::<FMA>(-z, z, p));
    if x < 0.0 { half_erfc } else { 1.0 - half_erfc }
}

/// Σ x, in 8 interleaved partial sums (vectorisable).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b, in 8 interleaved partial sums (vectorisable).
#[inline(always)]
pub fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] = fmadd::<FMA>(x[i], y[i], acc[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}
