//! Winograd F(4x4, 3x3) convolution for stride-1, padding-1 3x3 layers (f32).
//!
//! Why: 3x3 convolutions are most of a VAE decode and a large share of a UNet step. Winograd's
//! minimal filtering computes each 4x4 output tile from a 6x6 input tile with 36 products per
//! channel pair instead of 144, so the GEMM work drops 4x; the transforms around it are cheap
//! element-wise passes. The price is a small extra rounding error (the transforms scale values
//! by up to ~100 before the products), measured in the tests and in `docs/performance.md`.
//!
//! Layout, per chunk of whole tile rows (a chunk is a GEMM's worth of columns that stays in
//! cache):
//! 1. the input transform `V = Bᵀ d B` of every tile and input channel is written straight into
//!    36 packed B operands (one per transformed position ξ, `cin` x tiles);
//! 2. 36 blocked GEMMs `M_ξ = U_ξ · V_ξ` with the transformed weights `U = G g Gᵀ`
//!    (`cout` x `cin` each, packed like any A operand);
//! 3. the output transform `Y = Aᵀ M A` of every tile and output channel, with bias, per-image
//!    bias and residual added as the values are stored.
//!
//! Large maps run one chunk per task on each thread; small maps (few tiles) run one chunk with
//! each stage split across threads instead.

use rayon::prelude::*;

use crate::blocked::{self, gemm_block, PackedA, PackedB, Precision, MR, NR};
use crate::conv::ConvShape;
use crate::SendPtr;

/// Transformed positions per tile (6 x 6).
pub const POSITIONS: usize = 36;

/// Whether a convolution of this geometry has a Winograd path: 3x3, stride 1, padding 1.
pub fn eligible(s: ConvShape) -> bool {
    s.k == 3 && s.stride == 1 && s.pad == 1 && s.is_valid()
}

/// The filter transform `U = G g Gᵀ` of every (output, input) channel pair, as 36 packed A
/// operands (`cout` x `cin`), one per transformed position.
#[derive(Debug, Clone)]
pub struct WinogradWeights {
    cin: usize,
    cout: usize,
    u: Vec<PackedA>,
}

impl WinogradWeights {
    /// Transforms a 3x3 convolution's weights that are already packed for the direct path
    /// (`cout` x `cin·9`, f32 or bf16), so no second copy of the original tensor is needed.
    /// The transform and the products are f32 either way; bf16 weights keep their rounding.
    ///
    /// # Panics
    /// When the packed depth is not `cin·9`.
    pub fn from_packed(direct: &PackedA, cin: usize) -> Self {
        let direct = direct.to_f32(cin * 9);
        let cout = direct.m;
        let panels = cout.div_ceil(MR);
        let per = panels * cin * MR;
        let mut u: Vec<PackedA> = (0..POSITIONS)
            .map(|_| PackedA {
                prec: Precision::F32,
                m: cout,
                kp: cin,
                data: vec![0u32; per],
            })
            .collect();
        let dst: Vec<SendPtr> = u
            .iter_mut()
            .map(|a| SendPtr(a.data.as_mut_ptr() as *mut f32))
            .collect();
        (0..panels).into_par_iter().for_each(|p| {
            let src = direct.panel(p);
            for ci in 0..cin {
                let g = &src[ci * 9 * MR..][..9 * MR];
                let mut out = [[0f32; MR]; POSITIONS];
                filter_transform(g, &mut out);
                for (xi, row) in out.iter().enumerate() {
                    // SAFETY: panel p, channel ci of position xi is written by this task alone;
                    // the offset is within the `per` elements allocated above.
                    unsafe {
                        let d = dst[xi].get().add(p * cin * MR + ci * MR);
                        std::ptr::copy_nonoverlapping(row.as_ptr(), d, MR);
                    }
                }
            }
        });
        Self { cin, cout, u }
    }

    /// Bytes held (4x the 3x3 weights: 36 values per channel pair instead of 9).
    pub fn bytes(&self) -> usize {
        self.u.iter().map(PackedA::bytes).sum()
    }
}

crate::multiversion! {
    /// `U = G g Gᵀ` for `MR` output channels at once; `g` is the packed direct layout of one
    /// input channel (9 taps x `MR` lanes), `out[a·6 + b][lane]`.
    fn filter_transform(g: &[u32], out: &mut [[f32; MR]; POSITIONS]) {
        let tap = |t: usize| -> [f32; MR] {
            let mut v = [0f32; MR];
            for (l, x) in v.iter_mut().enumerate() {
                *x = f32::from_bits(g[t * MR + l]);
            }
            v
        };
        // G: rows (1/4, 0, 0), (-1/6, -1/6, -1/6), (-1/6, 1/6, -1/6), (1/24, 1/12, 1/6),
        // (1/24, -1/12, 1/6), (0, 0, 1), applied to a 3-vector.
        let apply_g = |a: [f32; MR], b: [f32; MR], c: [f32; MR]| -> [[f32; MR]; 6] {
            let mut o = [[0f32; MR]; 6];
            for l in 0..MR {
                let (x, y, z) = (a[l], b[l], c[l]);
                o[0][l] = x * 0.25;
                o[1][l] = -(x + y + z) / 6.0;
                o[2][l] = -(x - y + z) / 6.0;
                o[3][l] = x / 24.0 + y / 12.0 + z / 6.0;
                o[4][l] = x / 24.0 - y / 12.0 + z / 6.0;
                o[5][l] = z;
            }
            o
        };
        // Columns first: cols[j][a] = Σ_i G[a][i] g[i][j].
        let mut cols = [[[0f32; MR]; 6]; 3];
        for (j, col) in cols.iter_mut().enumerate() {
            *col = apply_g(tap(j), tap(3 + j), tap(6 + j));
        }
        // Then rows: U[a][b] = Σ_j cols[j][a] G[b][j].
        for a in 0..6 {
            let row = apply_g(cols[0][a], cols[1][a], cols[2][a]);
            out[a * 6..a * 6 + 6].copy_from_slice(&row);
        }
    }
}

/// `Bᵀ d` for one 6-vector (rows (4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
/// (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)); inlined into loops over
/// tiles, where it vectorises.
#[inline(always)]
fn bt([d0, d1, d2, d3, d4, d5]: [f32; 6]) -> [f32; 6] {
    [
        4.0 * d0 - 5.0 * d2 + d4,
        -4.0 * (d1 + d2) + d3 + d4,
        4.0 * (d1 - d2) - d3 + d4,
        2.0 * (d3 - d1) - d2 + d4,
        2.0 * (d1 - d3) - d2 + d4,
        4.0 * d1 - 5.0 * d3 + d5,
    ]
}

crate::multiversion! {
    /// The input transform `V = Bᵀ d B` of one channel plane over one row of `tw` tiles (tile
    /// row `ty`): `v[ξ·tw + t]`. `pad` holds `8·(tw + 1)` values, `u` `36·tw`.
    fn input_row(chan: &[f32], s: ConvShape, ty: usize, tw: usize, pad: &mut [f32], u: &mut [f32], v: &mut [f32]) {
        let (h, w) = (s.h, s.w);
        let pw = 4 * (tw + 1);
        let (pad, phases) = pad.split_at_mut(pw);
        let (ph0, rest) = phases.split_at_mut(tw + 1);
        let (ph1, rest) = rest.split_at_mut(tw + 1);
        let (ph2, rest) = rest.split_at_mut(tw + 1);
        let ph3 = &mut rest[..tw + 1];
        // Rows first: u[r][c][t] = Σ_x Bᵀ[c][x] d[r][x] for input row r of the tile row.
        for (r, ur) in u.chunks_exact_mut(6 * tw).enumerate().take(6) {
            let iy = (4 * ty + r) as isize - 1;
            if iy < 0 || iy >= h as isize {
                ur.fill(0.0);
                continue;
            }
            let src = &chan[iy as usize * w..][..w];
            pad[0] = 0.0;
            pad[1..=w].copy_from_slice(src);
            pad[w + 1..].fill(0.0);
            // Tile t reads padded pixels 4t .. 4t + 6: split the row into its four phases
            // (a clean stride-4 pattern the compiler vectorises), so the transform below
            // reads each tap as a contiguous vector over tiles.
            for ((((q, a), b), c), d) in pad
                .chunks_exact(4)
                .zip(ph0.iter_mut())
                .zip(ph1.iter_mut())
                .zip(ph2.iter_mut())
                .zip(ph3.iter_mut())
            {
                *a = q[0];
                *b = q[1];
                *c = q[2];
                *d = q[3];
            }
            let (u0, rest) = ur.split_at_mut(tw);
            let (u1, rest) = rest.split_at_mut(tw);
            let (u2, rest) = rest.split_at_mut(tw);
            let (u3, rest) = rest.split_at_mut(tw);
            let (u4, u5) = rest.split_at_mut(tw);
            let (x0, x1, x2, x3) = (&ph0[..tw], &ph1[..tw], &ph2[..tw], &ph3[..tw]);
            let (x4, x5) = (&ph0[1..=tw], &ph1[1..=tw]);
            for t in 0..tw {
                [u0[t], u1[t], u2[t], u3[t], u4[t], u5[t]] =
                    bt([x0[t], x1[t], x2[t], x3[t], x4[t], x5[t]]);
            }
        }
        // Then columns: v[r'][c][t] = Σ_r Bᵀ[r'][r] u[r][c][t].
        for c in 0..6 {
            let a = |r: usize| &u[(r * 6 + c) * tw..][..tw];
            let (a0, a1, a2, a3, a4, a5) = (a(0), a(1), a(2), a(3), a(4), a(5));
            let mut out: [&mut [f32]; 6] = Default::default();
            // Row r' of V holds positions r'·6 .. r'·6 + 6; take column c of each.
            for (r, o) in v.chunks_exact_mut(6 * tw).take(6).enumerate() {
                out[r] = &mut o[c * tw..(c + 1) * tw];
            }
            let [o0, o1, o2, o3, o4, o5] = out;
            for t in 0..tw {
                [o0[t], o1[t], o2[t], o3[t], o4[t], o5[t]] =
                    bt([a0[t], a1[t], a2[t], a3[t], a4[t], a5[t]]);
            }
        }
    }
}

crate::multiversion! {
    /// The output transform `Y = Aᵀ M A` of one output channel over `n` tiles of a tile row:
    /// `m[ξ·xs + t]` in, `rows[r·4n + 4t + c]` (four output rows, interleaved back into pixel
    /// order) out. `s` holds `24·n` values.
    fn output_row(m: &[f32], xs: usize, n: usize, s: &mut [f32], rows: &mut [f32]) {
        // Columns first: s[r][c][t] = Σ_q Aᵀ[r][q] m[q·6 + c][t].
        for c in 0..6 {
            let a = |q: usize| &m[(q * 6 + c) * xs..][..n];
            let (m0, m1, m2, m3, m4, m5) = (a(0), a(1), a(2), a(3), a(4), a(5));
            let mut out: [&mut [f32]; 4] = Default::default();
            for (r, o) in s.chunks_exact_mut(6 * n).take(4).enumerate() {
                out[r] = &mut o[c * n..(c + 1) * n];
            }
            let [s0, s1, s2, s3] = out;
            for t in 0..n {
                let (x0, x1, x2, x3, x4, x5) = (m0[t], m1[t], m2[t], m3[t], m4[t], m5[t]);
                let (p, q) = (x1 + x2, x1 - x2);
                let (p2, q2) = (x3 + x4, x3 - x4);
                s0[t] = x0 + p + p2;
                s1[t] = q + 2.0 * q2;
                s2[t] = p + 4.0 * p2;
                s3[t] = q + 8.0 * q2 + x5;
            }
        }
        // Then rows: y[r][c'][t] = Σ_c Aᵀ[c'][c] s[r][c][t], stored at pixel 4t + c'.
        for (sr, row) in s.chunks_exact(6 * n).zip(rows.chunks_exact_mut(4 * n)).take(4) {
            let a = |c: usize| &sr[c * n..][..n];
            let (x0, x1, x2, x3, x4, x5) = (a(0), a(1), a(2), a(3), a(4), a(5));
            for (t, px) in row.chunks_exact_mut(4).enumerate().take(n) {
                let (p, q) = (x1[t] + x2[t], x1[t] - x2[t]);
                let (p2, q2) = (x3[t] + x4[t], x3[t] - x4[t]);
                px[0] = x0[t] + p + p2;
                px[1] = q + 2.0 * q2;
                px[2] = p + 4.0 * p2;
                px[3] = q + 8.0 * q2 + x5[t];
            }
        }
    }
}

/// Per-thread buffers of one chunk: the 36 packed input transforms, the 36 products and the
/// transforms' scratch rows.
struct Scratch {
    v: Vec<PackedB>,
    m: Vec<f32>,
    pad: Vec<f32>,
    u: Vec<f32>,
    row: Vec<f32>,
}

impl Scratch {
    fn new() -> Self {
        Self {
            v: (0..POSITIONS)
                .map(|_| PackedB::new(Precision::F32))
                .collect(),
            m: Vec::new(),
            pad: Vec::new(),
            u: Vec::new(),
            row: Vec::new(),
        }
    }

    /// Sizes the buffers for `n` tiles of `cin` -> `cout` channels in rows of `tw` tiles.
    fn size(&mut self, cin: usize, cout: usize, n: usize, tw: usize) {
        let np = n.div_ceil(NR);
        for b in &mut self.v {
            b.n = n;
            b.kp = cin;
            // Lanes past `n` are never stored by the GEMM, so stale values there are harmless.
            b.data.resize(np * cin * NR, 0);
        }
        self.m.resize(POSITIONS * cout * np * NR, 0.0);
        self.pad.resize(8 * (tw + 1), 0.0);
        self.u.resize(POSITIONS * tw, 0.0);
        self.row.resize(POSITIONS * tw, 0.0);
    }
}

/// Geometry of one call: tile grid and how it is cut into chunks.
#[derive(Clone, Copy)]
struct Grid {
    s: ConvShape,
    /// Tile rows per image.
    th: usize,
    /// Tiles per tile row.
    tw: usize,
    /// Tile rows per chunk.
    rows: usize,
}

impl Grid {
    fn tile_rows(&self) -> usize {
        self.s.batch * self.th
    }
    fn chunks(&self) -> usize {
        self.tile_rows().div_ceil(self.rows)
    }
    /// Global tile rows of chunk `c`.
    fn chunk(&self, c: usize) -> std::ops::Range<usize> {
        c * self.rows..((c + 1) * self.rows).min(self.tile_rows())
    }
}

/// Tiles per chunk to aim for. Two pulls: the chunk's transformed inputs and products (36
/// values per tile and channel) should stay within about 2 MiB of cache, but every chunk
/// streams all 36 transformed weight matrices once, so when those are large (U over 8 MiB:
/// 320 and more channels) the chunk grows by a panel per 8 MiB to reuse each weight panel on
/// more tiles. Measured on SD-Turbo's UNet and VAE shapes (docs/performance.md).
fn target_tiles(cin: usize, cout: usize) -> usize {
    let per_tile = POSITIONS * 4 * (cin + cout);
    let weights = POSITIONS * 4 * cin * cout;
    let for_cache = (2 << 20) / per_tile.max(1);
    let for_weights = NR * weights.div_ceil(8 << 20);
    for_cache.max(for_weights).clamp(NR, 8 * NR)
}

/// Picks how many tile rows a chunk holds: about [`target_tiles`], few wasted GEMM lanes, and
/// (when there is room) at least one chunk per thread.
fn plan(s: ConvShape, threads: usize) -> Grid {
    let (th, tw) = (s.h.div_ceil(4), s.w.div_ceil(4));
    let total = s.batch * th;
    let want = target_tiles(s.cin, s.cout).div_ceil(tw).max(1);
    let cap = total.div_ceil(threads).max(1);
    let waste = |r: usize| {
        let n = r * tw;
        (n.div_ceil(NR) * NR - n) as f64 / n as f64
    };
    let first = want.min(cap);
    // Prefer a nearby row count that fills whole panels.
    let mut rows = first;
    for r in first..=(2 * first).min(cap) {
        if waste(r) + 1e-9 < waste(rows) {
            rows = r;
        }
    }
    Grid {
        s,
        th,
        tw,
        rows: rows.max(1),
    }
}

/// Convolves `input` (`[batch, cin, h, w]`) with 3x3 weights transformed by
/// [`WinogradWeights::from_packed`], stride 1, padding 1, adding `bias` (`[cout]` or
/// `[batch, cout]`) and `residual` (`[batch, cout, h, w]`) when given.
///
/// # Panics
/// When the geometry is not [`eligible`], a slice's length does not match `s`, or the CPU has
/// no AVX-512 (see [`blocked::available`]); callers check first.
pub fn conv2d(
    input: &[f32],
    weights: &WinogradWeights,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    s: ConvShape,
) -> Vec<f32> {
    assert!(eligible(s), "no Winograd path for {s:?}");
    assert!(
        blocked::available(Precision::F32),
        "Winograd convolution needs AVX-512"
    );
    assert_eq!(weights.cin, s.cin, "weight input channels");
    assert_eq!(weights.cout, s.cout, "weight output channels");
    crate::conv::assert_operands(s, input, bias, residual);
    let npix = s.h * s.w;
    let mut out = vec![0f32; s.batch * s.cout * npix];
    let threads = crate::threads();
    let g = plan(s, threads);
    let dst = SendPtr(out.as_mut_ptr());
    let run = Chunk {
        input,
        weights,
        bias,
        residual,
        g,
        dst,
    };
    if g.chunks() >= threads {
        (0..g.chunks())
            .into_par_iter()
            .for_each_init(Scratch::new, |sc, c| run.serial(sc, c));
    } else {
        let mut sc = Scratch::new();
        for c in 0..g.chunks() {
            run.split(&mut sc, c, threads);
        }
    }
    out
}

/// Everything one chunk needs, shared by all tasks of a call.
struct Chunk<'a> {
    input: &'a [f32],
    weights: &'a WinogradWeights,
    bias: Option<&'a [f32]>,
    residual: Option<&'a [f32]>,
    g: Grid,
    dst: SendPtr,
}

impl Chunk<'_> {
    /// All three stages of chunk `c` on the calling thread.
    fn serial(&self, sc: &mut Scratch, c: usize) {
        let s = self.g.s;
        let rows = self.g.chunk(c);
        let n = rows.len() * self.g.tw;
        sc.size(s.cin, s.cout, n, self.g.tw);
        let vptr: Vec<SendPtr> =
            sc.v.iter_mut()
                .map(|b| SendPtr(b.data.as_mut_ptr() as *mut f32))
                .collect();
        let mptr = SendPtr(sc.m.as_mut_ptr());
        // SAFETY: this thread owns every buffer of `sc`; the output rows of chunk c are written
        // by this task alone.
        unsafe {
            self.transform_input(
                &vptr,
                rows.clone(),
                0..s.cin,
                &mut sc.pad,
                &mut sc.u,
                &mut sc.row,
            );
            for xi in 0..POSITIONS {
                self.product(&sc.v, mptr, n, xi);
            }
            self.transform_output(&sc.m, n, rows, 0..s.cout, &mut sc.u, &mut sc.row);
        }
    }

    /// Chunk `c` with each stage split across `threads` (few, large-channel tiles).
    fn split(&self, sc: &mut Scratch, c: usize, threads: usize) {
        let s = self.g.s;
        let rows = self.g.chunk(c);
        let n = rows.len() * self.g.tw;
        let tw = self.g.tw;
        sc.size(s.cin, s.cout, n, tw);
        let vptr: Vec<SendPtr> =
            sc.v.iter_mut()
                .map(|b| SendPtr(b.data.as_mut_ptr() as *mut f32))
                .collect();
        let mptr = SendPtr(sc.m.as_mut_ptr());
        let parts = (2 * threads).min(s.cin).max(1);
        let scratch = || {
            (
                vec![0f32; 8 * (tw + 1)],
                vec![0f32; POSITIONS * tw],
                vec![0f32; POSITIONS * tw],
            )
        };
        // SAFETY: input channels, positions and output channels are split into disjoint
        // ranges, so each task writes its own rows of the buffers and of the output.
        (0..parts)
            .into_par_iter()
            .for_each_init(scratch, |(pad, u, row), i| unsafe {
                let ci = i * s.cin / parts..(i + 1) * s.cin / parts;
                self.transform_input(&vptr, rows.clone(), ci, pad, u, row);
            });
        let v = &sc.v;
        (0..POSITIONS)
            .into_par_iter()
            .for_each(|xi| unsafe { self.product(v, mptr, n, xi) });
        let m = &sc.m;
        let parts = (2 * threads).min(s.cout).max(1);
        (0..parts)
            .into_par_iter()
            .for_each_init(scratch, |(_, u, row), i| unsafe {
                let co = i * s.cout / parts..(i + 1) * s.cout / parts;
                self.transform_output(m, n, rows.clone(), co, u, row);
            });
    }

    /// Stage 1: input channels `ci` of the chunk's tile rows into the packed operands.
    ///
    /// # Safety
    /// `v[ξ]` must address the chunk's packed operand `ξ` (`np·cin·NR` f32), whose channels
    /// `ci` no one else writes meanwhile.
    unsafe fn transform_input(
        &self,
        v: &[SendPtr],
        rows: std::ops::Range<usize>,
        ci: std::ops::Range<usize>,
        pad: &mut [f32],
        u: &mut [f32],
        tmp: &mut [f32],
    ) {
        let s = self.g.s;
        let (th, tw) = (self.g.th, self.g.tw);
        let plane = s.h * s.w;
        for (k, gr) in rows.clone().enumerate() {
            let (b, ty) = (gr / th, gr % th);
            let j0 = k * tw;
            for c in ci.clone() {
                let chan = &self.input[(b * s.cin + c) * plane..][..plane];
                input_row(chan, s, ty, tw, pad, u, tmp);
                // Scatter each position's row of tiles into its panels: tile j sits at lane
                // j % NR of panel j / NR, channel c.
                for (xi, vals) in tmp.chunks_exact(tw).enumerate().take(POSITIONS) {
                    let base = v[xi].get();
                    let mut t = 0;
                    while t < tw {
                        let j = j0 + t;
                        let (panel, lane) = (j / NR, j % NR);
                        let len = (NR - lane).min(tw - t);
                        std::ptr::copy_nonoverlapping(
                            vals.as_ptr().add(t),
                            base.add((panel * s.cin + c) * NR + lane),
                            len,
                        );
                        t += len;
                    }
                }
            }
        }
    }

    /// Stage 2: `M_ξ = U_ξ · V_ξ` into rows `ξ·cout ..` of `m` (row stride `np·NR`).
    ///
    /// # Safety
    /// `m` must address `36·cout·np·NR` f32 whose position-`xi` rows no one else writes.
    unsafe fn product(&self, v: &[PackedB], m: SendPtr, n: usize, xi: usize) {
        let s = self.g.s;
        let ntp = n.div_ceil(NR) * NR;
        gemm_block(
            &self.weights.u[xi],
            &v[xi],
            m.get().add(xi * s.cout * ntp),
            ntp,
            false,
            0..s.cout.div_ceil(MR),
            0..n.div_ceil(NR),
        );
    }

    /// Stage 3: output channels `co` of the chunk from the products, with bias and residual.
    ///
    /// # Safety
    /// The output rows of the chunk's tiles in channels `co` must be written by no one else.
    unsafe fn transform_output(
        &self,
        m: &[f32],
        n: usize,
        rows: std::ops::Range<usize>,
        co: std::ops::Range<usize>,
        sbuf: &mut [f32],
        rowbuf: &mut [f32],
    ) {
        let s = self.g.s;
        let (th, tw) = (self.g.th, self.g.tw);
        let ntp = n.div_ceil(NR) * NR;
        let xs = s.cout * ntp;
        let npix = s.h * s.w;
        for (k, gr) in rows.enumerate() {
            let (b, ty) = (gr / th, gr % th);
            for c in co.clone() {
                output_row(&m[c * ntp + k * tw..], xs, tw, sbuf, rowbuf);
                let add = self.bias.map_or(0.0, |bb| {
                    if bb.len() == s.cout {
                        bb[c]
                    } else {
                        bb[b * s.cout + c]
                    }
                });
                let plane = (b * s.cout + c) * npix;
                for r in 0..4 {
                    let y = 4 * ty + r;
                    if y >= s.h {
                        break;
                    }
                    let src = &rowbuf[r * 4 * tw..][..s.w];
                    let d =
                        std::slice::from_raw_parts_mut(self.dst.get().add(plane + y * s.w), s.w);
                    match self.residual {
                        Some(res) => {
                            let rr = &res[plane + y * s.w..][..s.w];
                            for ((d, x), r) in d.iter_mut().zip(src).zip(rr) {
                                *d = x + add + r;
                            }
                        }
                        None => {
                            for (d, x) in d.iter_mut().zip(src) {
                                *d = x + add;
                            }
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

    fn shape(batch: usize, cin: usize, h: usize, w: usize, cout: usize) -> ConvShape {
        ConvShape {
            batch,
            cin,
            h,
            w,
            cout,
            k: 3,
            stride: 1,
            pad: 1,
        }
    }

    #[test]
    fn only_stride_one_padding_one_3x3_is_eligible() {
        assert!(eligible(shape(1, 4, 8, 8, 4)));
        assert!(!eligible(ConvShape {
            stride: 2,
            ..shape(1, 4, 8, 8, 4)
        }));
        assert!(!eligible(ConvShape {
            pad: 0,
            ..shape(1, 4, 8, 8, 4)
        }));
        assert!(!eligible(ConvShape {
            k: 1,
            pad: 0,
            ..shape(1, 4, 8, 8, 4)
        }));
    }

    #[test]
    fn matches_the_definition_on_odd_shapes() {
        if !blocked::available(Precision::F32) {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        // Shapes cover: maps that are not multiples of 4 (partial tiles at the right and bottom),
        // one-pixel maps, channel counts that leave partial panels, chunks that end inside a
        // panel, several images (chunks spanning images), both the split and the per-chunk
        // paths, and depths over one cache block (cin > 192).
        for s in [
            shape(1, 1, 1, 1, 1),
            shape(2, 3, 7, 9, 5),
            shape(1, 13, 5, 6, 14),
            shape(3, 8, 8, 8, 12),
            shape(1, 200, 9, 10, 7),
            shape(2, 16, 37, 70, 20),
            shape(1, 5, 130, 23, 3),
        ] {
            let input = data(s.batch * s.cin * s.h * s.w, 1);
            let weight = data(s.cout * s.cin * 9, 2);
            let bias = data(s.cout, 3);
            let per_image = data(s.batch * s.cout, 5);
            let residual = data(s.batch * s.cout * s.h * s.w, 4);
            let packed = PackedA::pack(Precision::F32, &weight, s.cout, s.cin * 9, s.cin * 9, 1);
            let wino = WinogradWeights::from_packed(&packed, s.cin);
            assert_eq!(wino.bytes(), 4 * packed.bytes());
            for (b, r) in [
                (None, None),
                (Some(&bias[..]), None),
                (Some(&per_image[..]), Some(&residual[..])),
            ] {
                let got = conv2d(&input, &wino, b, r, s);
                let want = crate::conv::tests::naive(&input, &weight, b, r, s);
                // Tolerance: relative to the output's scale (sums of up to 9·cin products of
                // magnitude ≤ 1). The transforms multiply by up to 8 and divide by 24, so
                // Winograd's f32 rounding is ~10x the direct path's; 2e-5 of the largest
                // output still separates a correct result from any indexing error.
                let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (*g as f64 - w).abs() < 2e-5 * scale,
                        "{s:?} at {i}: {g} vs {w} (scale {scale})"
                    );
                }
            }
        }
    }
}
