//! Element-wise maths written so LLVM vectorises it, compiled for the best instruction set the
//! CPU reports at run time (AVX-512, AVX2+FMA, or the baseline).
//!
//! The release target is plain x86-64, so without the run-time dispatch below every loop here
//! would use 128-bit SSE2 and call libm's scalar `expf`.

/// Defines `pub fn $name` that runs `$body` compiled for AVX-512, AVX2+FMA or baseline,
/// whichever the running CPU has. The body is an ordinary (safe) Rust block.
#[macro_export]
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn __mv_body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")]
                unsafe fn avx512($($arg: $ty),*) $(-> $ret)? { __mv_body($($arg),*) }
                #[target_feature(enable = "avx2,fma,f16c")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? { __mv_body($($arg),*) }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU reported every feature the function was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::simd::has_avx2() {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            __mv_body($($arg),*)
        }
    };
}

/// Whether the CPU runs the AVX-512 variants (foundation, byte/word, vector length, dq).
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the CPU runs the AVX2+FMA variants.
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `e^x` for f32 without a libm call: Cody-Waite range reduction and a degree-6 polynomial
/// (the Cephes `expf` coefficients), ~1 ulp on [-87, 88]; inputs below underflow give 0.
///
/// Branch-free so a loop of it vectorises.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_55, 88.376_26);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * C1 - n * C2;
    let r2 = r * r;
    let p = 1.987_569_1e-4f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r2 + r + 1.0;
    // 2^n through the exponent bits; n is in [-126, 127] after the clamp. Adding 1.5·2^23
    // leaves the integer n + 127 in the low mantissa bits, which the shift moves into the
    // exponent; an `as i32` cast would be scalarised (it saturates and maps NaN to 0).
    let t = n + (127.0 + 12_582_912.0);
    y * f32::from_bits(t.to_bits() << 23)
}

/// `x * sigmoid(x)`, the SiLU activation, with the vectorisable [`exp`].
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7), branch-free.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4f32;
    let p = p * t - 1.453_152_1;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_72;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

/// GELU with the exact erf form (`0.5·x·(1 + erf(x/√2))`), as diffusers' GEGLU and
/// OpenCLIP's text tower use it.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

multiversion! {
    /// GEGLU: `out[r][i] = h[r][i] · gelu(h[r][inner + i])` for rows of `2·inner` values.
    pub fn geglu(h: &[f32], inner: usize) -> Vec<f32> {
        let rows = h.len() / (2 * inner.max(1));
        let mut out = vec![0f32; rows * inner];
        for (o, r) in out.chunks_mut(inner).zip(h.chunks(2 * inner)) {
            let (v, g) = r.split_at(inner);
            for ((o, v), g) in o.iter_mut().zip(v).zip(g) {
                *o = v * gelu_erf(*g);
            }
        }
        out
    }
}

multiversion! {
    /// Applies SiLU in place.
    pub fn silu_inplace(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = silu(*x);
        }
    }
}

multiversion! {
    /// `xs[i] = exp(scale·(xs[i] - max))` and returns the sum: a softmax of `scale·xs` whose
    /// unscaled maximum is `max` (`scale > 0`).
    pub fn exp_sub_sum_scaled(xs: &mut [f32], max: f32, scale: f32) -> f32 {
        let mut acc = [0f32; 16];
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
                *x = exp((*x - max) * scale);
                *a += *x;
            }
        }
        let mut tail = 0f32;
        for x in chunks.into_remainder() {
            *x = exp((*x - max) * scale);
            tail += *x;
        }
        acc.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// Largest element (`-inf` for an empty slice).
    pub fn max(xs: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 16];
        let mut chunks = xs.chunks_exact(16);
        for c in &mut chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = if *x > *a { *x } else { *a };
            }
        }
        let mut m = f32::NEG_INFINITY;
        for x in acc.iter().chain(chunks.remainder()) {
            m = if *x > m { *x } else { m };
        }
        m
    }
}

multiversion! {
    /// Multiplies in place by a scalar.
    pub fn scale(xs: &mut [f32], s: f32) {
        for x in xs.iter_mut() {
            *x *= s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_a_few_ulp() {
        // Relative error bound 2e-7 (~2 ulp): attention and SiLU parity tolerances are 1e-4.
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp(-200.0), exp(-87.336_55));
        assert!(exp(-200.0) < 1e-37);
    }

    #[test]
    fn erf_and_geglu_match_the_definitions() {
        // erf's documented bound is 1.5e-7 absolute; f32 rounding adds ~1e-7.
        let mut worst = 0f64;
        for i in -600..600 {
            let x = i as f32 / 100.0;
            let want = libm_erf(x as f64);
            worst = worst.max((erf(x) as f64 - want).abs());
        }
        assert!(worst < 4e-7, "erf worst {worst}");
        let h = [1.0f32, -2.0, 0.5, 3.0, -1.0, 0.0];
        let out = geglu(&h, 3);
        for i in 0..3 {
            let g = h[3 + i] as f64;
            let want = h[i] as f64 * 0.5 * g * (1.0 + libm_erf(g / 2f64.sqrt()));
            assert!((out[i] as f64 - want).abs() < 1e-6);
        }
    }

    /// erf by its Taylor series (|x| ≤ 3) or its asymptotic complement, in f64.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            // 1 - erfc, erfc(x) ~ e^{-x²}/(x√π)(1 - 1/(2x²) + 3/(4x⁴)); < 1e-9 off for |x| > 3.
            let a = x.abs();
            let c = (-a * a).exp() / (a * std::f64::consts::PI.sqrt())
                * (1.0 - 1.0 / (2.0 * a * a) + 3.0 / (4.0 * a.powi(4)));
            return (1.0 - c).copysign(x);
        }
        let mut sum = 0f64;
        let mut term = x;
        let mut n = 0;
        while term.abs() > 1e-17 || n < 3 {
            sum += term / (2 * n + 1) as f64;
            n += 1;
            term *= -x * x / n as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn softmax_pieces_agree_with_scalar_maths() {
        let mut xs: Vec<f32> = (0..37).map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.0).collect();
        let m = max(&xs);
        assert_eq!(m, xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
        let want: f64 = xs.iter().map(|x| ((*x - m) as f64).exp()).sum();
        let got = exp_sub_sum_scaled(&mut xs, m, 1.0) as f64;
        assert!((got - want).abs() / want < 1e-6);
        let mut s = vec![1.0f32, -2.0, 0.0, 30.0, -30.0];
        silu_inplace(&mut s);
        for (g, x) in s.iter().zip([1.0f64, -2.0, 0.0, 30.0, -30.0]) {
            let w = x / (1.0 + (-x).exp());
            assert!((*g as f64 - w).abs() < 1e-6 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}
