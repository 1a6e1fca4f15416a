//! 2D convolution (NCHW, square kernel, stride, symmetric zero padding) as tiled im2col + GEMM.
//!
//! The output is cut into tiles of whole rows; each tile's patch matrix (`cin·k·k` x pixels,
//! a few hundred KiB) is built with row copies and multiplied by the weight matrix straight
//! into the NCHW output, whose tile was first filled with bias (+ residual) so the GEMM adds
//! onto it. Compared with candle's generic path there is no NHWC copy of the input, no weight
//! re-layout per call, no output transpose and no separate bias or residual pass.

use rayon::prelude::*;

use crate::SendPtr;

use crate::gemm::{gemm_raw, MatRef, Par};

/// Shape and geometry of one convolution call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side (the kernel is `k`x`k`).
    pub k: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub pad: usize,
}

impl ConvShape {
    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
    /// Multiply-adds x 2.
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.cout * self.out_h() * self.out_w() * self.cin * self.k * self.k)
            as f64
    }
    /// Whether the geometry is valid (non-empty, kernel fits the padded input).
    pub fn is_valid(&self) -> bool {
        self.batch > 0
            && self.cin > 0
            && self.cout > 0
            && self.k > 0
            && self.stride > 0
            && self.h + 2 * self.pad >= self.k
            && self.w + 2 * self.pad >= self.k
    }
}

/// Checks the activation operands of a convolution of shape `s`: the input, a bias of `[cout]`
/// or `[batch, cout]` and a residual shaped like the output.
///
/// # Panics
/// When a length does not match; the public convolutions document this.
pub(crate) fn assert_operands(
    s: ConvShape,
    input: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
) {
    assert_eq!(input.len(), s.batch * s.cin * s.h * s.w, "input length");
    if let Some(b) = bias {
        assert!(
            b.len() == s.cout || b.len() == s.batch * s.cout,
            "bias length"
        );
    }
    if let Some(r) = residual {
        let out = s.batch * s.cout * s.out_h() * s.out_w();
        assert_eq!(r.len(), out, "residual length");
    }
}

/// Pixels per tile the GEMM sees: wide enough for its blocking, small enough that the patch
/// matrix of a 1280-channel 3x3 layer stays within a few MiB.
pub(crate) const TILE_PIXELS: usize = 384;

/// Convolves `input` (`[batch, cin, h, w]`) with `weight` (`[cout, cin, k, k]`), adding `bias`
/// (`[cout]`, or `[batch, cout]` for a per-image bias such as a UNet's time embedding) and
/// `residual` (`[batch, cout, out_h, out_w]`) when given.
///
/// # Panics
/// When a slice's length does not match `shape`; callers check shapes first.
pub fn conv2d(
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    s: ConvShape,
) -> Vec<f32> {
    assert!(s.is_valid(), "invalid convolution shape {s:?}");
    let (oh, ow) = (s.out_h(), s.out_w());
    let npix = oh * ow;
    let kk = s.cin * s.k * s.k;
    assert_operands(s, input, bias, residual);
    assert_eq!(weight.len(), s.cout * kk, "weight length");
    let mut out = vec![0f32; s.batch * s.cout * npix];
    let rows_per_tile = (TILE_PIXELS / ow).clamp(1, oh);
    let tiles_per_image = oh.div_ceil(rows_per_tile);
    let tasks = s.batch * tiles_per_image;
    let direct = s.k == 1 && s.stride == 1 && s.pad == 0;
    let ptr = SendPtr(out.as_mut_ptr());
    let run = |task: usize, col: &mut Vec<f32>, par: Par| {
        let b = task / tiles_per_image;
        let y0 = (task % tiles_per_image) * rows_per_tile;
        let y1 = (y0 + rows_per_tile).min(oh);
        let tp = (y1 - y0) * ow;
        let img = &input[b * s.cin * s.h * s.w..][..s.cin * s.h * s.w];
        let rhs = if direct {
            MatRef {
                data: &img[y0 * ow..],
                rs: npix,
                cs: 1,
            }
        } else {
            col.resize(kk * tp, 0.0);
            im2col(img, s, y0, y1, col);
            MatRef {
                data: col,
                rs: tp,
                cs: 1,
            }
        };
        let base = b * s.cout * npix + y0 * ow;
        // SAFETY: this task alone writes rows y0..y1 of every output channel of image b; the
        // tile is within `out` (base + (cout-1)·npix + tp ≤ len).
        unsafe {
            let dst = ptr.get().add(base);
            let prefill = bias.is_some() || residual.is_some();
            if prefill {
                prefill_tile(dst, bias, residual, s, b, y0 * ow, tp, 0..s.cout);
            }
            gemm_raw(
                s.cout,
                tp,
                kk,
                MatRef {
                    data: weight,
                    rs: kk,
                    cs: 1,
                },
                rhs,
                dst,
                npix,
                prefill,
                1.0,
                par,
            );
        }
    };
    if tasks >= 2 * crate::threads() {
        (0..tasks)
            .into_par_iter()
            .for_each_init(Vec::new, |col, t| run(t, col, Par::Serial));
    } else {
        let mut col = Vec::new();
        for t in 0..tasks {
            run(t, &mut col, Par::Pool);
        }
    }
    out
}

/// Writes `bias (+ residual)` into output pixels `p0..p0+tp` of channels `co` of image `b`
/// (`dst` points at pixel `p0` of channel 0 of that image).
///
/// # Safety
/// `dst` must address those elements of the output, written by no one else meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn prefill_tile(
    dst: *mut f32,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    s: ConvShape,
    b: usize,
    p0: usize,
    tp: usize,
    co: std::ops::Range<usize>,
) {
    let npix = s.out_h() * s.out_w();
    for c in co {
        let row = std::slice::from_raw_parts_mut(dst.add(c * npix), tp);
        let b0 = bias.map_or(0.0, |bb| {
            if bb.len() == s.cout {
                bb[c]
            } else {
                bb[b * s.cout + c]
            }
        });
        match residual {
            Some(r) => {
                let src = &r[(b * s.cout + c) * npix + p0..][..tp];
                for (o, x) in row.iter_mut().zip(src) {
                    *o = x + b0;
                }
            }
            None => row.fill(b0),
        }
    }
}

/// The patch matrix of output rows `y0..y1` of one image: row `(ci·k + ky)·k + kx`, column
/// `(y - y0)·out_w + x` holds the input under kernel tap `(ky, kx)` for output pixel `(y, x)`.
pub(crate) fn im2col(img: &[f32], s: ConvShape, y0: usize, y1: usize, col: &mut [f32]) {
    let ow = s.out_w();
    let tp = (y1 - y0) * ow;
    let plane = s.h * s.w;
    for ci in 0..s.cin {
        let chan = &img[ci * plane..][..plane];
        for ky in 0..s.k {
            for kx in 0..s.k {
                let row = &mut col[((ci * s.k + ky) * s.k + kx) * tp..][..tp];
                for (t, y) in (y0..y1).enumerate() {
                    let dst = &mut row[t * ow..][..ow];
                    let iy = (y * s.stride + ky) as isize - s.pad as isize;
                    if iy < 0 || iy >= s.h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &chan[iy as usize * s.w..][..s.w];
                    if s.stride == 1 {
                        // ix = x + kx - pad must lie in 0..w.
                        let lo = s.pad.saturating_sub(kx).min(ow);
                        let hi = (s.w + s.pad).saturating_sub(kx).min(ow).max(lo);
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        let off = lo + kx - s.pad;
                        dst[lo..hi].copy_from_slice(&src[off..off + (hi - lo)]);
                    } else {
                        for (x, d) in dst.iter_mut().enumerate() {
                            let ix = (x * s.stride + kx) as isize - s.pad as isize;
                            *d = if ix >= 0 && ix < s.w as isize {
                                src[ix as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Nearest-neighbour resize of `[planes, h, w]` to `[planes, oh, ow]` with PyTorch's index
/// rule (`src = floor(dst · in / out)`), one task per plane.
pub fn upsample_nearest(
    input: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    assert_eq!(input.len(), planes * h * w, "input length");
    let mut out = vec![0f32; planes * oh * ow];
    if out.is_empty() || h == 0 || w == 0 {
        return out;
    }
    let xs: Vec<usize> = (0..ow).map(|x| (x * w / ow).min(w - 1)).collect();
    out.par_chunks_mut(oh * ow)
        .zip(input.par_chunks(h * w))
        .for_each(|(o, i)| {
            for y in 0..oh {
                let src = &i[(y * h / oh).min(h - 1) * w..][..w];
                let dst = &mut o[y * ow..][..ow];
                if ow == 2 * w {
                    for (d, v) in dst.chunks_exact_mut(2).zip(src) {
                        d[0] = *v;
                        d[1] = *v;
                    }
                } else {
                    for (d, x) in dst.iter_mut().zip(&xs) {
                        *d = src[*x];
                    }
                }
            }
        });
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct-definition convolution in f64.
    pub(crate) fn naive(
        input: &[f32],
        weight: &[f32],
        bias: Option<&[f32]>,
        residual: Option<&[f32]>,
        s: ConvShape,
    ) -> Vec<f64> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut out = vec![0f64; s.batch * s.cout * oh * ow];
        for b in 0..s.batch {
            for co in 0..s.cout {
                for y in 0..oh {
                    for x in 0..ow {
                        let mut acc = bias.map_or(0.0, |bb| {
                            bb[if bb.len() == s.cout {
                                co
                            } else {
                                b * s.cout + co
                            }] as f64
                        });
                        for ci in 0..s.cin {
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    let iy = (y * s.stride + ky) as isize - s.pad as isize;
                                    let ix = (x * s.stride + kx) as isize - s.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize
                                    {
                                        continue;
                                    }
                                    let iv = input[((b * s.cin + ci) * s.h + iy as usize) * s.w
                                        + ix as usize];
                                    let wv = weight[((co * s.cin + ci) * s.k + ky) * s.k + kx];
                                    acc += iv as f64 * wv as f64;
                                }
                            }
                        }
                        let o = ((b * s.cout + co) * oh + y) * ow + x;
                        out[o] = acc + residual.map_or(0.0, |r| r[o] as f64);
                    }
                }
            }
        }
        out
    }

    use crate::test_data as data;

    #[test]
    fn nearest_upsampling_picks_floor_of_the_scaled_index() {
        let x: Vec<f32> = (0..2 * 3 * 2).map(|v| v as f32).collect();
        let up = upsample_nearest(&x, 2, 3, 2, 6, 4);
        assert_eq!(&up[..8], &[0., 0., 1., 1., 0., 0., 1., 1.]);
        assert_eq!(up[24..28], [6., 6., 7., 7.]);
        let odd = upsample_nearest(&x, 2, 3, 2, 4, 3);
        // rows 0,0,1,2 (floor(y·3/4)); columns 0,0,1 (floor(x·2/3)).
        assert_eq!(
            &odd[..12],
            &[0., 0., 1., 0., 0., 1., 2., 2., 3., 4., 4., 5.]
        );
    }

    #[test]
    fn matches_the_definition_on_odd_shapes() {
        // Tolerance 1e-4 absolute on sums of up to 3·3·9 products of magnitude ≤ 1: f32
        // accumulation error, not an algorithmic difference.
        for s in [
            ConvShape {
                batch: 2,
                cin: 3,
                h: 7,
                w: 9,
                cout: 5,
                k: 3,
                stride: 1,
                pad: 1,
            },
            ConvShape {
                batch: 1,
                cin: 4,
                h: 9,
                w: 6,
                cout: 3,
                k: 3,
                stride: 2,
                pad: 1,
            },
            ConvShape {
                batch: 1,
                cin: 4,
                h: 8,
                w: 8,
                cout: 3,
                k: 3,
                stride: 2,
                pad: 0,
            },
            ConvShape {
                batch: 3,
                cin: 6,
                h: 5,
                w: 4,
                cout: 7,
                k: 1,
                stride: 1,
                pad: 0,
            },
            ConvShape {
                batch: 1,
                cin: 2,
                h: 3,
                w: 3,
                cout: 2,
                k: 3,
                stride: 1,
                pad: 0,
            },
            ConvShape {
                batch: 1,
                cin: 3,
                h: 40,
                w: 33,
                cout: 4,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ] {
            let input = data(s.batch * s.cin * s.h * s.w, 1);
            let weight = data(s.cout * s.cin * s.k * s.k, 2);
            let bias = data(s.cout, 3);
            let residual = data(s.batch * s.cout * s.out_h() * s.out_w(), 4);
            let per_image = data(s.batch * s.cout, 5);
            for (b, r) in [
                (None, None),
                (Some(&bias[..]), None),
                (Some(&bias[..]), Some(&residual[..])),
                (Some(&per_image[..]), Some(&residual[..])),
            ] {
                let got = conv2d(&input, &weight, b, r, s);
                let want = naive(&input, &weight, b, r, s);
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!((*g as f64 - w).abs() < 1e-4, "{s:?} at {i}: {g} vs {w}");
                }
            }
        }
    }
}
