//! Group normalisation over NCHW, optionally followed by SiLU in the same pass.
//!
//! In NCHW a group's channels are adjacent, so each (image, group) pair is one contiguous
//! run normalised by one task: statistics in a first pass (two-pass mean and variance, summed
//! in f64 as PyTorch's CPU kernel effectively does for these sizes), then scale, shift and
//! activation written in a second.

use rayon::prelude::*;

use crate::multiversion;
use crate::simd;

/// Normalises `input` (`[batch, channels, spatial…]`, `spatial` elements per channel) in
/// `groups` groups, applies the per-channel `gamma`/`beta`, then SiLU when `silu`.
///
/// # Panics
/// When lengths disagree with the shape or `channels` is not a multiple of `groups`.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    input: &[f32],
    channels: usize,
    spatial: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    silu: bool,
) -> Vec<f32> {
    assert!(
        groups > 0 && channels.is_multiple_of(groups),
        "channels must split into groups"
    );
    assert_eq!(gamma.len(), channels);
    assert_eq!(beta.len(), channels);
    let per_image = channels * spatial;
    assert!(
        per_image > 0 && input.len().is_multiple_of(per_image),
        "input length"
    );
    let cpg = channels / groups;
    let run = cpg * spatial;
    let mut out = vec![0f32; input.len()];
    out.par_chunks_mut(run)
        .zip(input.par_chunks(run))
        .enumerate()
        .for_each(|(i, (o, x))| {
            let g = i % groups;
            let (mean, var) = stats(x);
            let inv = 1.0 / (var + eps as f64).sqrt();
            for c in 0..cpg {
                let ch = g * cpg + c;
                let a = (gamma[ch] as f64 * inv) as f32;
                let b = (beta[ch] as f64 - mean * gamma[ch] as f64 * inv) as f32;
                affine(
                    &x[c * spatial..][..spatial],
                    &mut o[c * spatial..][..spatial],
                    a,
                    b,
                    silu,
                );
            }
        });
    out
}

multiversion! {
    /// Mean and (biased) variance, two passes, f64 accumulation of f32 lane sums.
    fn stats(x: &[f32]) -> (f64, f64) {
        let n = x.len() as f64;
        let mut sum = 0f64;
        for c in x.chunks(256) {
            let mut acc = [0f32; 16];
            let mut it = c.chunks_exact(16);
            for v in &mut it {
                for (a, x) in acc.iter_mut().zip(v) {
                    *a += *x;
                }
            }
            sum += acc.iter().map(|a| *a as f64).sum::<f64>()
                + it.remainder().iter().map(|a| *a as f64).sum::<f64>();
        }
        let mean = sum / n;
        let m = mean as f32;
        let mut sq = 0f64;
        for c in x.chunks(256) {
            let mut acc = [0f32; 16];
            let mut it = c.chunks_exact(16);
            for v in &mut it {
                for (a, x) in acc.iter_mut().zip(v) {
                    let d = *x - m;
                    *a += d * d;
                }
            }
            sq += acc.iter().map(|a| *a as f64).sum::<f64>()
                + it.remainder().iter().map(|a| { let d = (*a - m) as f64; d * d }).sum::<f64>();
        }
        (mean, sq / n)
    }
}

multiversion! {
    /// `o = x·a + b`, then SiLU when asked.
    fn affine(x: &[f32], o: &mut [f32], a: f32, b: f32, silu: bool) {
        if silu {
            for (o, x) in o.iter_mut().zip(x) {
                *o = simd::silu(x * a + b);
            }
        } else {
            for (o, x) in o.iter_mut().zip(x) {
                *o = x * a + b;
            }
        }
    }
}

multiversion! {
    /// Layer normalisation of each `dim`-long row: `(x - mean) / sqrt(var + eps) · gamma + beta`.
    pub fn layer_norm(input: &[f32], dim: usize, gamma: &[f32], beta: Option<&[f32]>, eps: f32) -> Vec<f32> {
        assert!(dim > 0 && input.len().is_multiple_of(dim) && gamma.len() == dim);
        let mut out = vec![0f32; input.len()];
        for (o, x) in out.chunks_mut(dim).zip(input.chunks(dim)) {
            let mean = x.iter().map(|v| *v as f64).sum::<f64>() / dim as f64;
            let m = mean as f32;
            let var = x.iter().map(|v| { let d = (*v - m) as f64; d * d }).sum::<f64>() / dim as f64;
            let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
            match beta {
                Some(bt) => for i in 0..dim { o[i] = (x[i] - m) * inv * gamma[i] + bt[i]; },
                None => for i in 0..dim { o[i] = (x[i] - m) * inv * gamma[i]; },
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_norm_matches_the_definition() {
        let (batch, channels, spatial, groups) = (2, 6, 35, 3);
        let x: Vec<f32> = (0..batch * channels * spatial)
            .map(|i| ((i * 37) % 101) as f32 * 0.05 - 2.0 + (i / 70) as f32)
            .collect();
        let gamma: Vec<f32> = (0..channels).map(|i| 0.5 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..channels).map(|i| i as f32 * -0.2).collect();
        for silu in [false, true] {
            let got = group_norm(&x, channels, spatial, groups, &gamma, &beta, 1e-5, silu);
            let cpg = channels / groups;
            for b in 0..batch {
                for g in 0..groups {
                    let start = (b * channels + g * cpg) * spatial;
                    let run = &x[start..start + cpg * spatial];
                    let mean = run.iter().map(|v| *v as f64).sum::<f64>() / run.len() as f64;
                    let var = run.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>()
                        / run.len() as f64;
                    for (j, v) in run.iter().enumerate() {
                        let ch = g * cpg + j / spatial;
                        let mut want = (*v as f64 - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64
                            + beta[ch] as f64;
                        if silu {
                            want /= 1.0 + (-want).exp();
                        }
                        let g = got[start + j] as f64;
                        assert!((g - want).abs() < 1e-5, "{g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        let x: Vec<f32> = (0..3 * 10).map(|i| (i % 7) as f32 - 3.0).collect();
        let gamma = vec![2.0f32; 10];
        let beta = vec![1.0f32; 10];
        let out = layer_norm(&x, 10, &gamma, Some(&beta), 1e-5);
        for r in 0..3 {
            let row = &x[r * 10..r * 10 + 10];
            let mean = row.iter().sum::<f32>() as f64 / 10.0;
            let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / 10.0;
            for i in 0..10 {
                let want = (row[i] as f64 - mean) / (var + 1e-5).sqrt() * 2.0 + 1.0;
                assert!((out[r * 10 + i] as f64 - want).abs() < 1e-5);
            }
        }
    }
}
