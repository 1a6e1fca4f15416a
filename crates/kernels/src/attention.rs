//! Multi-head scaled dot-product attention computed one block of queries at a time.
//!
//! Heads are read in place from `[batch, tokens, heads·head_dim]` projections through strides
//! (no split/transpose copies), and only a `block x keys` score tile exists at any time (at
//! 64x64 latents a full score tensor is 5 heads x 4096² floats = 335 MB, streamed through
//! memory twice by a separate softmax). Each tile is scored by a GEMM, turned into
//! probabilities in cache, and multiplied into the output columns of its head.

use rayon::prelude::*;

use crate::SendPtr;

use crate::blocked::{self, PackedA, PackedB, Precision};
use crate::gemm::{gemm_raw, sgemm, MatRef, Par};
use crate::simd;

/// Shape of one attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    /// Batch size.
    pub batch: usize,
    /// Query tokens.
    pub lq: usize,
    /// Key/value tokens.
    pub lk: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
}

impl AttnShape {
    /// Multiply-adds x 2 of both products.
    pub fn flops(&self) -> f64 {
        4.0 * (self.batch * self.heads * self.lq * self.lk * self.head_dim) as f64
    }
}

/// Query rows per task.
const BLOCK: usize = 64;

/// `softmax(scale · q·kᵀ [+ causal mask]) · v` per head; `q` is `[batch, lq, heads·head_dim]`,
/// `k` and `v` are `[batch, lk, heads·head_dim]`, the result has `q`'s shape. With `causal`,
/// query `i` sees keys `0..=i` (CLIP's text mask).
///
/// # Panics
/// When lengths disagree with the shape.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
    scale: f32,
    causal: bool,
) -> Vec<f32> {
    let hd = s.heads * s.head_dim;
    assert_eq!(q.len(), s.batch * s.lq * hd, "q length");
    assert_eq!(k.len(), s.batch * s.lk * hd, "k length");
    assert_eq!(v.len(), s.batch * s.lk * hd, "v length");
    let mut out = vec![0f32; q.len()];
    if s.lq == 0 || s.lk == 0 || hd == 0 {
        return out;
    }
    // Packing each head's K and V pays off from a few thousand score elements per head; a
    // 77-token prompt runs faster on the plain path.
    if blocked::available(Precision::F32) && s.lq * s.lk >= 1 << 16 {
        attention_blocked(q, k, v, s, scale, causal, &mut out);
    } else {
        attention_generic(q, k, v, s, scale, causal, &mut out);
    }
    out
}

/// The portable path: scores and outputs through the `gemm` crate, reading heads by stride.
fn attention_generic(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
    scale: f32,
    causal: bool,
    out: &mut [f32],
) {
    let hd = s.heads * s.head_dim;
    let blocks = s.lq.div_ceil(BLOCK);
    let tasks = s.batch * s.heads * blocks;
    let ptr = SendPtr(out.as_mut_ptr());
    let d = s.head_dim;
    let run = |task: usize, scores: &mut Vec<f32>, par: Par| {
        let blk = task % blocks;
        let h = (task / blocks) % s.heads;
        let b = task / (blocks * s.heads);
        let q0 = blk * BLOCK;
        let rows = BLOCK.min(s.lq - q0);
        scores.resize(rows * s.lk, 0.0);
        let kbase = b * s.lk * hd + h * d;
        sgemm(
            rows,
            s.lk,
            d,
            MatRef {
                data: &q[(b * s.lq + q0) * hd + h * d..],
                rs: hd,
                cs: 1,
            },
            MatRef {
                data: &k[kbase..],
                rs: 1,
                cs: hd,
            },
            scores,
            s.lk,
            false,
            scale,
            par,
        );
        for (i, row) in scores.chunks_mut(s.lk).enumerate() {
            if causal {
                let qi = q0 + i;
                if qi + 1 < s.lk {
                    row[qi + 1..].fill(f32::NEG_INFINITY);
                }
            }
            let m = simd::max(row);
            let sum = simd::exp_sub_sum_scaled(row, m, 1.0);
            simd::scale(row, 1.0 / sum);
        }
        // SAFETY: this task alone writes rows q0..q0+rows, columns h·d..(h+1)·d of image b.
        unsafe {
            gemm_raw(
                rows,
                d,
                s.lk,
                MatRef {
                    data: scores,
                    rs: s.lk,
                    cs: 1,
                },
                MatRef {
                    data: &v[kbase..],
                    rs: hd,
                    cs: 1,
                },
                ptr.get().add((b * s.lq + q0) * hd + h * d),
                hd,
                false,
                1.0,
                par,
            );
        }
    };
    if tasks >= crate::threads() {
        (0..tasks)
            .into_par_iter()
            .for_each_init(Vec::new, |sc, t| run(t, sc, Par::Serial));
    } else {
        let mut sc = Vec::new();
        for t in 0..tasks {
            run(t, &mut sc, Par::Pool);
        }
    }
}

/// The AVX-512 path: each head's `Kᵀ` and `V` are packed once and shared by all its query
/// blocks; each block packs its queries, scores them, and packs its probabilities.
fn attention_blocked(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
    scale: f32,
    causal: bool,
    out: &mut [f32],
) {
    let hd = s.heads * s.head_dim;
    let d = s.head_dim;
    let groups = s.batch * s.heads;
    let f32p = Precision::F32;
    let base = |g: usize| (g / s.heads) * s.lk * hd + (g % s.heads) * d;
    let kt: Vec<PackedB> = (0..groups)
        .into_par_iter()
        .map(|g| PackedB::pack(f32p, &k[base(g)..], d, s.lk, 1, hd))
        .collect();
    let vp: Vec<PackedB> = (0..groups)
        .into_par_iter()
        .map(|g| PackedB::pack(f32p, &v[base(g)..], s.lk, d, hd, 1))
        .collect();
    // 48 query rows (four 12-row panels) keep a 4096-key score tile at 768 KiB, inside L2
    // through its passes.
    const ROWS: usize = 48;
    let blocks = s.lq.div_ceil(ROWS);
    let ptr = SendPtr(out.as_mut_ptr());
    (0..groups * blocks)
        .into_par_iter()
        .for_each_init(Vec::new, |scores: &mut Vec<f32>, task| {
            let (g, blk) = (task / blocks, task % blocks);
            let (b, h) = (g / s.heads, g % s.heads);
            let q0 = blk * ROWS;
            let rows = ROWS.min(s.lq - q0);
            let qa = PackedA::pack_serial(f32p, &q[(b * s.lq + q0) * hd + h * d..], rows, d, hd, 1);
            scores.resize(rows * s.lk, 0.0);
            // SAFETY: `scores` holds rows x lk; operands are F32 packs of depth d.
            unsafe { blocked::gemm_serial(&qa, &kt[g], scores.as_mut_ptr(), s.lk, false) };
            // Unnormalised probabilities; each output row is divided by its sum afterwards
            // (d values instead of lk).
            let mut inv = [0f32; ROWS];
            for (i, row) in scores.chunks_mut(s.lk).enumerate() {
                if causal {
                    let qi = q0 + i;
                    if qi + 1 < s.lk {
                        row[qi + 1..].fill(f32::NEG_INFINITY);
                    }
                }
                let m = simd::max(row);
                inv[i] = 1.0 / simd::exp_sub_sum_scaled(row, m, scale);
            }
            let pa = PackedA::pack_serial(f32p, scores, rows, s.lk, s.lk, 1);
            // SAFETY: this task alone writes rows q0..q0+rows, columns h·d..(h+1)·d of image b.
            unsafe {
                let o = ptr.get().add((b * s.lq + q0) * hd + h * d);
                blocked::gemm_serial(&pa, &vp[g], o, hd, false);
                for (i, f) in inv.iter().enumerate().take(rows) {
                    simd::scale(std::slice::from_raw_parts_mut(o.add(i * hd), d), *f);
                }
            };
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(q: &[f32], k: &[f32], v: &[f32], s: AttnShape, scale: f64, causal: bool) -> Vec<f64> {
        let hd = s.heads * s.head_dim;
        let mut out = vec![0f64; q.len()];
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.lq {
                    let mut sc: Vec<f64> = (0..s.lk)
                        .map(|j| {
                            if causal && j > i {
                                return f64::NEG_INFINITY;
                            }
                            (0..s.head_dim)
                                .map(|c| {
                                    q[(b * s.lq + i) * hd + h * s.head_dim + c] as f64
                                        * k[(b * s.lk + j) * hd + h * s.head_dim + c] as f64
                                })
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    sc.iter_mut().for_each(|x| *x = (*x - m).exp());
                    let z: f64 = sc.iter().sum();
                    for c in 0..s.head_dim {
                        out[(b * s.lq + i) * hd + h * s.head_dim + c] = (0..s.lk)
                            .map(|j| sc[j] / z * v[(b * s.lk + j) * hd + h * s.head_dim + c] as f64)
                            .sum();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition() {
        // Tolerance 2e-5: f32 sums of ≤ 150 products of magnitude ≤ 1 and a ~1-ulp exp.
        for (s, causal) in [
            (
                AttnShape {
                    batch: 2,
                    lq: 70,
                    lk: 70,
                    heads: 3,
                    head_dim: 8,
                },
                true,
            ),
            (
                AttnShape {
                    batch: 2,
                    lq: 130,
                    lk: 77,
                    heads: 2,
                    head_dim: 5,
                },
                false,
            ),
            (
                AttnShape {
                    batch: 1,
                    lq: 3,
                    lk: 150,
                    heads: 1,
                    head_dim: 16,
                },
                false,
            ),
        ] {
            let hd = s.heads * s.head_dim;
            let gen = |n: usize, m: usize| -> Vec<f32> {
                (0..n).map(|i| ((i * m) % 97) as f32 / 48.0 - 1.0).collect()
            };
            let q = gen(s.batch * s.lq * hd, 31);
            let k = gen(s.batch * s.lk * hd, 17);
            let v = gen(s.batch * s.lk * hd, 53);
            let scale = 1.0 / (s.head_dim as f32).sqrt();
            let want = naive(&q, &k, &v, s, scale as f64, causal);
            // Both paths, whichever this CPU dispatches to.
            let mut generic = vec![0f32; q.len()];
            attention_generic(&q, &k, &v, s, scale, causal, &mut generic);
            let mut outs = vec![attention(&q, &k, &v, s, scale, causal), generic];
            if blocked::available(Precision::F32) {
                let mut b = vec![0f32; q.len()];
                attention_blocked(&q, &k, &v, s, scale, causal, &mut b);
                outs.push(b);
            }
            for got in outs {
                for (g, w) in got.iter().zip(&want) {
                    assert!((*g as f64 - w).abs() < 2e-5, "{s:?}: {g} vs {w}");
                }
            }
        }
    }
}
