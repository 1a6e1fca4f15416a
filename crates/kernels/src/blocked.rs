//! Blocked matrix products for AVX-512 CPUs with operands packed ahead of time, in f32 or in
//! bfloat16 with f32 accumulation (AVX512-BF16's `vdpbf16ps`).
//!
//! Why our own: the `gemm` crate's AVX-512 kernels need a nightly compiler, so on stable Rust
//! it runs 256-bit FMAs, half of what an AVX-512 core does (see docs/performance.md); and
//! packing weights once at load, not on every call, matters for the small-spatial layers.
//!
//! One `MR` x `NR` micro-kernel shape serves both precisions: 12 broadcast rows of A times 32
//! columns of B (two 16-lane vectors), 24 accumulators. In f32 a packed lane holds one `k`
//! value; in bf16 it holds a pair of consecutive `k` values, which `vdpbf16ps` multiplies and
//! adds in one go (32 multiply-adds per instruction where an f32 FMA does 16). Only the GEMM
//! operands are rounded to bf16; accumulation, activations, norms and softmax stay f32, which
//! keeps the drift against f32 small. Rows and columns are padded to whole panels (and `k` to
//! even in bf16) with zeros. Weights are packed once; activations per call.

use rayon::prelude::*;

use crate::SendPtr;

use crate::conv::ConvShape;

/// Rows of A per micro-kernel call (broadcast operand).
pub const MR: usize = 12;
/// Columns of B per micro-kernel call: two 16-lane vectors.
pub const NR: usize = 32;
/// Most packed `k` steps per cache block: a 192 x NR panel of B is 24 KiB (L1), the matching
/// block of A stays in L2. Depths are cut into equal blocks of at most this, so a 320-deep
/// product runs as two blocks of 160 rather than 128 + 128 + 64 (each block reloads C).
const KC: usize = 192;

/// Operand precision of a packed product (accumulation is f32 in both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// f32 operands, AVX-512 FMA.
    F32,
    /// bf16 operands (rounded to nearest even when packed), AVX512-BF16 dot products.
    Bf16,
}

impl Precision {
    /// `k` values per packed 32-bit lane.
    fn per_lane(self) -> usize {
        match self {
            Precision::F32 => 1,
            Precision::Bf16 => 2,
        }
    }
}

/// Whether this CPU runs the kernels of `p` (AVX-512, plus the BF16 extension for bf16).
pub fn available(p: Precision) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        crate::simd::has_avx512()
            && (p == Precision::F32 || std::arch::is_x86_feature_detected!("avx512bf16"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = p;
        false
    }
}

/// f32 to bf16 bits, rounding to nearest even (NaN stays NaN).
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1));
    if x.is_nan() {
        0x7FC0
    } else {
        (rounded >> 16) as u16
    }
}

/// The f32 value of bf16 bits.
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    to_bf16(lo) as u32 | (to_bf16(hi) as u32) << 16
}

/// The broadcast operand: an `m` x `k` matrix in panels of `MR` rows, `[panel][k step][MR]`.
#[derive(Debug, Clone)]
pub struct PackedA {
    pub(crate) prec: Precision,
    pub(crate) m: usize,
    pub(crate) kp: usize,
    pub(crate) data: Vec<u32>,
}

impl PackedA {
    /// Packs element `(i, k)` = `src[i·rs + k·cs]`.
    pub fn pack(prec: Precision, src: &[f32], m: usize, k: usize, rs: usize, cs: usize) -> Self {
        Self::pack_with(prec, src, m, k, rs, cs, m * k > 1 << 16)
    }

    /// [`PackedA::pack`] on the calling thread only (inside tasks that already run in parallel).
    pub fn pack_serial(
        prec: Precision,
        src: &[f32],
        m: usize,
        k: usize,
        rs: usize,
        cs: usize,
    ) -> Self {
        Self::pack_with(prec, src, m, k, rs, cs, false)
    }

    fn pack_with(
        prec: Precision,
        src: &[f32],
        m: usize,
        k: usize,
        rs: usize,
        cs: usize,
        parallel: bool,
    ) -> Self {
        let kp = k.div_ceil(prec.per_lane());
        let panels = m.div_ceil(MR);
        let mut data = vec![0u32; panels * kp * MR];
        let one = |(p, panel): (usize, &mut [u32])| match prec {
            Precision::F32 => pack_a_panel_f32(src, m, k, rs, cs, p, panel),
            Precision::Bf16 => pack_a_panel(src, m, k, rs, cs, p, panel),
        };
        if parallel {
            data.par_chunks_mut(kp * MR).enumerate().for_each(one);
        } else {
            data.chunks_mut(kp * MR).enumerate().for_each(one);
        }
        Self { prec, m, kp, data }
    }

    /// Operand precision.
    pub fn precision(&self) -> Precision {
        self.prec
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.m
    }

    /// The same operand with f32 lanes (depth `k`): itself when already f32, else the bf16
    /// values widened exactly. Lets a layer packed in bf16 derive other f32 forms (Winograd
    /// weights) without keeping the original tensor.
    ///
    /// # Panics
    /// When `k` does not match the packed depth.
    pub fn to_f32(&self, k: usize) -> std::borrow::Cow<'_, PackedA> {
        assert_eq!(self.kp, k.div_ceil(self.prec.per_lane()), "packed depth");
        if self.prec == Precision::F32 {
            return std::borrow::Cow::Borrowed(self);
        }
        let panels = self.m.div_ceil(MR);
        let mut data = vec![0u32; panels * k * MR];
        data.par_chunks_mut(k * MR)
            .zip(self.data.par_chunks(self.kp * MR))
            .for_each(|(dst, src)| {
                for q in 0..k {
                    let shift = 16 * (q % 2);
                    for r in 0..MR {
                        let half = (src[(q / 2) * MR + r] >> shift) as u16;
                        dst[q * MR + r] = from_bf16(half).to_bits();
                    }
                }
            });
        std::borrow::Cow::Owned(PackedA {
            prec: Precision::F32,
            m: self.m,
            kp: k,
            data,
        })
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    pub(crate) fn panel(&self, p: usize) -> &[u32] {
        &self.data[p * self.kp * MR..][..self.kp * MR]
    }
}

crate::multiversion! {
    fn pack_a_panel_f32(src: &[f32], m: usize, k: usize, rs: usize, cs: usize, p: usize, panel: &mut [u32]) {
        for r in 0..MR {
            let i = p * MR + r;
            if i >= m {
                break;
            }
            let row = &src[i * rs..];
            for q in 0..k {
                panel[q * MR + r] = row[q * cs].to_bits();
            }
        }
    }
}

crate::multiversion! {
    fn pack_a_panel(src: &[f32], m: usize, k: usize, rs: usize, cs: usize, p: usize, panel: &mut [u32]) {
        let kp = k.div_ceil(2);
        for r in 0..MR {
            let i = p * MR + r;
            if i >= m {
                break;
            }
            let row = &src[i * rs..];
            for q in 0..kp {
                let lo = row[2 * q * cs];
                let hi = if 2 * q + 1 < k { row[(2 * q + 1) * cs] } else { 0.0 };
                panel[q * MR + r] = pair(lo, hi);
            }
        }
    }
}

/// The vector operand: a `k` x `n` matrix in panels of `NR` columns, `[panel][k step][NR]`.
#[derive(Debug, Clone)]
pub struct PackedB {
    pub(crate) prec: Precision,
    pub(crate) n: usize,
    pub(crate) kp: usize,
    pub(crate) data: Vec<u32>,
}

impl PackedB {
    /// An empty buffer for [`PackedB::repack`].
    pub fn new(prec: Precision) -> Self {
        Self {
            prec,
            n: 0,
            kp: 0,
            data: Vec::new(),
        }
    }

    /// Packs element `(k, j)` = `src[k·rs + j·cs]`.
    pub fn pack(prec: Precision, src: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Self {
        let mut b = Self::new(prec);
        b.repack(src, k, n, rs, cs);
        b
    }

    /// Packs into this buffer, reusing its allocation (per-tile packing in convolutions).
    pub fn repack(&mut self, src: &[f32], k: usize, n: usize, rs: usize, cs: usize) {
        let kp = k.div_ceil(self.prec.per_lane());
        let panels = n.div_ceil(NR);
        self.data.clear();
        self.data.resize(panels * kp * NR, 0);
        self.n = n;
        self.kp = kp;
        let prec = self.prec;
        let one = |(p, panel): (usize, &mut [u32])| match prec {
            Precision::F32 => pack_b_panel_f32(src, k, n, rs, cs, p, panel),
            Precision::Bf16 => pack_b_panel(src, k, n, rs, cs, p, panel),
        };
        if k * n > 1 << 20 {
            self.data.par_chunks_mut(kp * NR).enumerate().for_each(one);
        } else {
            self.data.chunks_mut(kp * NR).enumerate().for_each(one);
        }
    }

    /// Operand precision.
    pub fn precision(&self) -> Precision {
        self.prec
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    fn panel(&self, p: usize) -> &[u32] {
        &self.data[p * self.kp * NR..][..self.kp * NR]
    }
}

crate::multiversion! {
    fn pack_b_panel_f32(src: &[f32], k: usize, n: usize, rs: usize, cs: usize, p: usize, panel: &mut [u32]) {
        let j0 = p * NR;
        let cols = NR.min(n - j0);
        for q in 0..k {
            let out = &mut panel[q * NR..][..NR];
            let row = &src[q * rs..];
            if cs == 1 {
                for (o, x) in out.iter_mut().zip(&row[j0..j0 + cols]) {
                    *o = x.to_bits();
                }
            } else {
                for (c, o) in out.iter_mut().enumerate().take(cols) {
                    *o = row[(j0 + c) * cs].to_bits();
                }
            }
        }
    }
}

crate::multiversion! {
    fn pack_b_panel(src: &[f32], k: usize, n: usize, rs: usize, cs: usize, p: usize, panel: &mut [u32]) {
        let kp = k.div_ceil(2);
        let j0 = p * NR;
        let cols = NR.min(n - j0);
        for q in 0..kp {
            let out = &mut panel[q * NR..][..NR];
            let lo = &src[2 * q * rs..];
            if 2 * q + 1 < k {
                let hi = &src[(2 * q + 1) * rs..];
                if cs == 1 {
                    let (lo, hi) = (&lo[j0..j0 + cols], &hi[j0..j0 + cols]);
                    for ((o, l), h) in out.iter_mut().zip(lo).zip(hi) {
                        *o = pair(*l, *h);
                    }
                } else {
                    for (c, o) in out.iter_mut().enumerate().take(cols) {
                        *o = pair(lo[(j0 + c) * cs], hi[(j0 + c) * cs]);
                    }
                }
            } else {
                for (c, o) in out.iter_mut().enumerate().take(cols) {
                    *o = pair(lo[(j0 + c) * cs], 0.0);
                }
            }
        }
    }
}

/// Single-threaded `c (+)= a·b` over all panels, into a raw destination with row stride `rs`.
///
/// # Safety
/// `c` must address `a.rows()` rows of `b.cols()` writable f32 at stride `rs`, written by no
/// one else meanwhile; the operands must share precision and depth and be [`available`].
pub(crate) unsafe fn gemm_serial(
    a: &PackedA,
    b: &PackedB,
    c: *mut f32,
    rs: usize,
    accumulate: bool,
) {
    debug_assert_eq!(a.kp, b.kp);
    debug_assert_eq!(a.prec, b.prec);
    gemm_block(
        a,
        b,
        c,
        rs,
        accumulate,
        0..a.m.div_ceil(MR),
        0..b.n.div_ceil(NR),
    );
}

/// `c[i·rs + j] (+)= Σ_k a(i,k)·b(k,j)` for the A panels `pa` and B panels `pb` given.
///
/// # Safety
/// `c` must address `a.rows()` rows of `b.cols()` writable f32 at stride `rs`, not accessed by
/// anyone else for the duration except other calls on disjoint panel ranges.
pub(crate) unsafe fn gemm_block(
    a: &PackedA,
    b: &PackedB,
    c: *mut f32,
    rs: usize,
    accumulate: bool,
    pa: std::ops::Range<usize>,
    pb: std::ops::Range<usize>,
) {
    let kp = a.kp;
    let block = kp.div_ceil(kp.div_ceil(KC).max(1)).max(1);
    let mut k0 = 0;
    while k0 < kp {
        let kc = block.min(kp - k0);
        let acc = accumulate || k0 > 0;
        for jb in pb.clone() {
            let bp = &b.panel(jb)[k0 * NR..][..kc * NR];
            let cols = NR.min(b.n - jb * NR);
            for ib in pa.clone() {
                let ap = &a.panel(ib)[k0 * MR..][..kc * MR];
                let rows = MR.min(a.m - ib * MR);
                let kernel = match a.prec {
                    Precision::F32 => kernel_f32,
                    Precision::Bf16 => kernel,
                };
                kernel(
                    kc,
                    ap.as_ptr(),
                    bp.as_ptr(),
                    c.add(ib * MR * rs + jb * NR),
                    rs,
                    rows,
                    cols,
                    acc,
                );
            }
        }
        k0 += kc;
    }
}

/// The `MR` x `NR` micro-kernel: 24 accumulators, two B vectors and one broadcast per pair.
///
/// # Safety
/// AVX512-BF16 must be available; `a` holds `kc·MR` pairs, `b` `kc·NR`; `c` addresses `rows`
/// rows of `cols` f32 at stride `rs`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    rs: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR) as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16) as *const _));
        let ap = a.add(p * MR);
        for (i, row) in acc.iter_mut().enumerate() {
            let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(i) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], av, b0);
            row[1] = _mm512_dpbf16_ps(row[1], av, b1);
        }
    }
    store(&acc, c, rs, rows, cols, accumulate);
}

/// The f32 micro-kernel: as [`kernel`] with one `k` per lane and FMAs.
///
/// # Safety
/// AVX-512F must be available; otherwise as [`kernel`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_f32(
    kc: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    rs: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    let a = a as *const f32;
    let b = b as *const f32;
    for p in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(p * NR));
        let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
        let ap = a.add(p * MR);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(i));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    store(&acc, c, rs, rows, cols, accumulate);
}

/// Writes (or adds) the accumulators into `rows` x `cols` of `c`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw")]
#[inline]
unsafe fn store(
    acc: &[[std::arch::x86_64::__m512; 2]; MR],
    c: *mut f32,
    rs: usize,
    rows: usize,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    let m0: __mmask16 = if cols >= 16 {
        0xFFFF
    } else {
        ((1u32 << cols) - 1) as u16
    };
    let m1: __mmask16 = if cols >= 32 {
        0xFFFF
    } else if cols <= 16 {
        0
    } else {
        ((1u32 << (cols - 16)) - 1) as u16
    };
    for (i, row) in acc.iter().enumerate().take(rows) {
        let cr = c.add(i * rs);
        let (mut v0, mut v1) = (row[0], row[1]);
        if accumulate {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr.add(16)));
        }
        _mm512_mask_storeu_ps(cr, m0, v0);
        _mm512_mask_storeu_ps(cr.add(16), m1, v1);
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    _: usize,
    _: *const u32,
    _: *const u32,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
) {
    unreachable!("blocked kernels are only dispatched where available() is true")
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel_f32(
    _: usize,
    _: *const u32,
    _: *const u32,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
) {
    unreachable!("blocked kernels are only dispatched where available() is true")
}

/// Splits `m_panels` x `n_panels` into about `want` rectangular tasks. Every task streams all
/// of A's rows it covers and all of B's columns it covers, so the side that is cut is the one
/// with more panels: a 77-token prompt times a 4096-wide weight is cut along the weight, or
/// each task would read all 16 MB of it.
fn split(m_panels: usize, n_panels: usize, want: usize) -> (usize, usize) {
    if m_panels * MR >= n_panels * NR {
        let mc = want.min(m_panels).max(1);
        (mc, want.div_ceil(mc).min(n_panels).max(1))
    } else {
        let nc = want.min(n_panels).max(1);
        (want.div_ceil(nc).min(m_panels).max(1), nc)
    }
}

/// `c (+)= a·b` (`c` row-major with row stride `rs`), spread over rayon's pool.
///
/// # Panics
/// When the bf16 kernels are not [`available`], the inner sizes differ or `c` is too short.
pub fn gemm(a: &PackedA, b: &PackedB, c: &mut [f32], rs: usize, accumulate: bool) {
    assert!(available(a.prec), "{:?} packed GEMM needs AVX-512", a.prec);
    assert_eq!(a.prec, b.prec, "operand precisions differ");
    assert_eq!(a.kp, b.kp, "inner dimensions differ");
    if a.m == 0 || b.n == 0 {
        return;
    }
    assert!((a.m - 1) * rs + b.n <= c.len(), "destination too short");
    let (mp, np) = (a.m.div_ceil(MR), b.n.div_ceil(NR));
    let (mc, nc) = split(mp, np, 2 * crate::threads());
    let dst = SendPtr(c.as_mut_ptr());
    (0..mc * nc).into_par_iter().for_each(|t| {
        let (ti, tj) = (t / nc, t % nc);
        let pa = ti * mp / mc..(ti + 1) * mp / mc;
        let pb = tj * np / nc..(tj + 1) * np / nc;
        // SAFETY: tasks cover disjoint panel rectangles of `c`, checked in bounds above.
        unsafe { gemm_block(a, b, dst.get(), rs, accumulate, pa, pb) };
    });
}

/// [`crate::conv::conv2d`] with `weight` packed once as [`PackedA`] (`cout` x `cin·k·k`, in
/// the precision the product should use) and patches packed per tile.
///
/// # Panics
/// As [`crate::conv::conv2d`], and when the weight's precision is not [`available`].
pub fn conv2d(
    input: &[f32],
    weight: &PackedA,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    s: ConvShape,
) -> Vec<f32> {
    assert!(
        available(weight.prec),
        "{:?} packed convolution needs AVX-512",
        weight.prec
    );
    assert!(s.is_valid(), "invalid convolution shape {s:?}");
    let (oh, ow) = (s.out_h(), s.out_w());
    let npix = oh * ow;
    let kk = s.cin * s.k * s.k;
    crate::conv::assert_operands(s, input, bias, residual);
    assert_eq!(weight.m, s.cout, "weight rows");
    assert_eq!(
        weight.kp,
        kk.div_ceil(weight.prec.per_lane()),
        "weight depth"
    );
    let mut out = vec![0f32; s.batch * s.cout * npix];
    let accumulate = bias.is_some() || residual.is_some();
    // Tiles of whole output rows, ~384 pixels; when there are too few for the pool, each tile
    // is also split over output channels.
    let want = 2 * crate::threads();
    let mut rows_per_tile = (crate::conv::TILE_PIXELS / ow).clamp(1, oh);
    if s.batch * oh.div_ceil(rows_per_tile) < want && npix >= want * 4 * NR {
        // A mid-sized map (32x32) would give fewer tiles than tasks: cut it into `want`
        // tiles of at least four panels each instead.
        rows_per_tile = oh.div_ceil(want.div_ceil(s.batch)).max(1);
    }
    let tiles = oh.div_ceil(rows_per_tile);
    let tasks = s.batch * tiles;
    let mp = s.cout.div_ceil(MR);
    let direct = s.k == 1 && s.stride == 1 && s.pad == 0;
    let dst = SendPtr(out.as_mut_ptr());
    // Packs tile `task`'s patches; runs channel panels `pa` of it.
    let pack = |task: usize, col: &mut Vec<f32>, packed: &mut PackedB| {
        let b = task / tiles;
        let y0 = (task % tiles) * rows_per_tile;
        let y1 = (y0 + rows_per_tile).min(oh);
        let tp = (y1 - y0) * ow;
        let img = &input[b * s.cin * s.h * s.w..][..s.cin * s.h * s.w];
        if direct {
            packed.repack(&img[y0 * ow..], kk, tp, npix, 1);
        } else {
            col.resize(kk * tp, 0.0);
            crate::conv::im2col(img, s, y0, y1, col);
            packed.repack(col, kk, tp, tp, 1);
        }
        (b, y0, tp)
    };
    let run = |(b, y0, tp): (usize, usize, usize), packed: &PackedB, pa: std::ops::Range<usize>| {
        // SAFETY: (image b, rows from y0, channel panels pa) is written by this call alone.
        unsafe {
            let base = dst.get().add(b * s.cout * npix + y0 * ow);
            if accumulate {
                let co = pa.start * MR..(pa.end * MR).min(s.cout);
                crate::conv::prefill_tile(base, bias, residual, s, b, y0 * ow, tp, co);
            }
            gemm_block(
                weight,
                packed,
                base,
                npix,
                accumulate,
                pa,
                0..tp.div_ceil(NR),
            );
        }
    };
    if tasks >= want && weight.prec == Precision::F32 {
        // Enough tiles, f32: each thread builds its tile's patches one depth block at a time,
        // straight into the packed layout (no patch matrix), and multiplies it while it is in
        // L2.
        let block = weight.kp.div_ceil(weight.kp.div_ceil(KC).max(1)).max(1);
        (0..tasks)
            .into_par_iter()
            .for_each_init(Vec::new, |buf: &mut Vec<f32>, t| {
                let b = t / tiles;
                let y0 = (t % tiles) * rows_per_tile;
                let y1 = (y0 + rows_per_tile).min(oh);
                let tp = (y1 - y0) * ow;
                let np = tp.div_ceil(NR);
                let img = &input[b * s.cin * s.h * s.w..][..s.cin * s.h * s.w];
                // SAFETY: task t alone writes rows y0..y1 of every channel of image b; the packed
                // blocks hold kc x NR per panel as the micro-kernel reads them.
                unsafe {
                    let base = dst.get().add(b * s.cout * npix + y0 * ow);
                    if accumulate {
                        crate::conv::prefill_tile(
                            base,
                            bias,
                            residual,
                            s,
                            b,
                            y0 * ow,
                            tp,
                            0..s.cout,
                        );
                    }
                    let mut k0 = 0;
                    while k0 < weight.kp {
                        let kc = block.min(weight.kp - k0);
                        buf.clear();
                        buf.resize(np * kc * NR, 0.0);
                        pack_patches_f32(img, s, y0, y1, k0, kc, buf);
                        for jb in 0..np {
                            let bp = buf.as_ptr().add(jb * kc * NR) as *const u32;
                            let cols = NR.min(tp - jb * NR);
                            for ib in 0..mp {
                                let ap = weight.panel(ib)[k0 * MR..].as_ptr();
                                let rows = MR.min(s.cout - ib * MR);
                                kernel_f32(
                                    kc,
                                    ap,
                                    bp,
                                    base.add(ib * MR * npix + jb * NR),
                                    npix,
                                    rows,
                                    cols,
                                    accumulate || k0 > 0,
                                );
                            }
                        }
                        k0 += kc;
                    }
                }
            });
    } else if tasks >= want {
        // Enough tiles: each thread packs and multiplies whole tiles.
        (0..tasks).into_par_iter().for_each_init(
            || (Vec::new(), PackedB::new(weight.prec)),
            |(col, packed), t| {
                let tile = pack(t, col, packed);
                run(tile, packed, 0..mp);
            },
        );
    } else {
        // Few large-channel tiles (small feature maps): pack each once, split its channels.
        let (mut col, mut packed) = (Vec::new(), PackedB::new(weight.prec));
        let mc = want.min(mp);
        for t in 0..tasks {
            let tile = pack(t, &mut col, &mut packed);
            let packed = &packed;
            (0..mc)
                .into_par_iter()
                .for_each(|i| run(tile, packed, i * mp / mc..(i + 1) * mp / mc));
        }
    }
    out
}

crate::multiversion! {
    /// Packs depth rows `k0..k0 + kc` of the patch matrix of output rows `y0..y1` of one image
    /// straight from the input: element `(k, j)` goes to `[(j / NR)·kc + k - k0]·NR + j % NR`.
    /// `out` must be zeroed (padding taps and lanes past the tile stay zero).
    fn pack_patches_f32(img: &[f32], s: ConvShape, y0: usize, y1: usize, k0: usize, kc: usize, out: &mut [f32]) {
        let ow = s.out_w();
        let taps = s.k * s.k;
        let plane = s.h * s.w;
        for q in k0..k0 + kc {
            let (ci, r) = (q / taps, q % taps);
            if ci >= s.cin {
                break;
            }
            let (ky, kx) = (r / s.k, r % s.k);
            let chan = &img[ci * plane..][..plane];
            let lane_base = (q - k0) * NR;
            for (t, y) in (y0..y1).enumerate() {
                let iy = (y * s.stride + ky) as isize - s.pad as isize;
                if iy < 0 || iy >= s.h as isize {
                    continue;
                }
                let src = &chan[iy as usize * s.w..][..s.w];
                if s.stride == 1 {
                    let lo = s.pad.saturating_sub(kx).min(ow);
                    let hi = (s.w + s.pad).saturating_sub(kx).min(ow).max(lo);
                    let mut x = lo;
                    while x < hi {
                        let j = t * ow + x;
                        let (panel, lane) = (j / NR, j % NR);
                        let n = (NR - lane).min(hi - x);
                        let d = &mut out[panel * kc * NR + lane_base + lane..][..n];
                        let off = x + kx - s.pad;
                        d.copy_from_slice(&src[off..off + n]);
                        x += n;
                    }
                } else {
                    for x in 0..ow {
                        let ix = (x * s.stride + kx) as isize - s.pad as isize;
                        if ix >= 0 && ix < s.w as isize {
                            let j = t * ow + x;
                            out[(j / NR) * kc * NR + lane_base + j % NR] = src[ix as usize];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_data as data;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        assert_eq!(
            from_bf16(to_bf16(1.0 + 1.0 / 512.0)),
            1.0,
            "ties go to even"
        );
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 512.0)), 1.0 + 4.0 / 512.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    }

    /// The product of the bf16-rounded operands, in f64: what the kernel must reproduce up to
    /// f32 accumulation order.
    fn rounded_product(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f64> {
        let r = |x: f32| from_bf16(to_bf16(x)) as f64;
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| r(a[i * k + p]) * r(b[p * n + j])).sum();
            }
        }
        out
    }

    #[test]
    fn gemm_matches_the_rounded_operands_product() {
        if !available(Precision::Bf16) {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        // Odd sizes cover partial panels in every direction and an odd k; k > 2·KC covers
        // the cache blocking. Tolerance 1e-4 absolute: f32 accumulation of ≤ 600 products.
        for (m, n, k) in [(1, 1, 1), (13, 33, 7), (25, 70, 600), (12, 32, 2)] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let pa = PackedA::pack(Precision::Bf16, &a, m, k, k, 1);
            let pb = PackedB::pack(Precision::Bf16, &b, k, n, n, 1);
            let want = rounded_product(&a, &b, m, n, k);
            let mut c = vec![0.5f32; m * (n + 3)];
            gemm(&pa, &pb, &mut c, n + 3, true);
            for i in 0..m {
                for j in 0..n {
                    let g = c[i * (n + 3) + j] as f64;
                    assert!(
                        (g - 0.5 - want[i * n + j]).abs() < 1e-4,
                        "({m},{n},{k}) [{i},{j}] {g}"
                    );
                }
                for j in n..n + 3 {
                    assert_eq!(c[i * (n + 3) + j], 0.5, "columns past n untouched");
                }
            }
        }
    }

    #[test]
    fn f32_gemm_and_conv_match_the_reference() {
        if !available(Precision::F32) {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        // Tolerance 1e-4 absolute: f32 sums of ≤ 600 products of magnitude ≤ 1.
        for (m, n, k) in [(1, 1, 1), (13, 33, 7), (25, 70, 600)] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let pa = PackedA::pack(Precision::F32, &a, m, k, 1, m);
            let pb = PackedB::pack(Precision::F32, &b, k, n, 1, k);
            let mut c = vec![0f32; m * n];
            gemm(&pa, &pb, &mut c, n, false);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|p| a[p * m + i] as f64 * b[j * k + p] as f64)
                        .sum();
                    assert!((c[i * n + j] as f64 - want).abs() < 1e-4);
                }
            }
        }
        // Small maps (shared packing, channel split) and large ones (fused per-tile packing,
        // several depth blocks: 150 channels x 9 taps > 2·KC), stride 1 and 2.
        for s in [
            ConvShape {
                batch: 2,
                cin: 5,
                h: 9,
                w: 11,
                cout: 13,
                k: 3,
                stride: 1,
                pad: 1,
            },
            ConvShape {
                batch: 1,
                cin: 150,
                h: 40,
                w: 45,
                cout: 14,
                k: 3,
                stride: 1,
                pad: 1,
            },
            ConvShape {
                batch: 2,
                cin: 7,
                h: 70,
                w: 33,
                cout: 5,
                k: 3,
                stride: 2,
                pad: 1,
            },
            ConvShape {
                batch: 1,
                cin: 9,
                h: 64,
                w: 50,
                cout: 3,
                k: 1,
                stride: 1,
                pad: 0,
            },
        ] {
            let kk = s.cin * s.k * s.k;
            let input = data(s.batch * s.cin * s.h * s.w, 3);
            let w = data(s.cout * kk, 4);
            let bias = data(s.cout, 5);
            let res = data(s.batch * s.cout * s.out_h() * s.out_w(), 6);
            let packed = PackedA::pack(Precision::F32, &w, s.cout, kk, kk, 1);
            let got = conv2d(&input, &packed, Some(&bias), Some(&res), s);
            let want = crate::conv::conv2d(&input, &w, Some(&bias), Some(&res), s);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-3, "{s:?}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn conv_stays_within_bf16_rounding_of_f32() {
        if !available(Precision::Bf16) {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for s in [
            ConvShape {
                batch: 2,
                cin: 5,
                h: 9,
                w: 11,
                cout: 13,
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
                cin: 33,
                h: 4,
                w: 4,
                cout: 40,
                k: 1,
                stride: 1,
                pad: 0,
            },
        ] {
            let input = data(s.batch * s.cin * s.h * s.w, 3);
            let w = data(s.cout * s.cin * s.k * s.k, 4);
            let bias = data(s.cout, 5);
            let res = data(s.batch * s.cout * s.out_h() * s.out_w(), 6);
            let kk = s.cin * s.k * s.k;
            let packed = PackedA::pack(Precision::Bf16, &w, s.cout, kk, kk, 1);
            let got = conv2d(&input, &packed, Some(&bias), Some(&res), s);
            let want = crate::conv::conv2d(&input, &w, Some(&bias), Some(&res), s);
            // Each operand carries ≤ 2^-9 relative rounding, so a sum of n products of
            // magnitude ≤ 1 may move by ~n·2^-8 in the worst case, ~√n·2^-8 typically.
            let n = (s.cin * s.k * s.k) as f32;
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < n.sqrt() * 4.0 / 256.0, "{s:?}: {g} vs {w}");
            }
        }
    }
}
