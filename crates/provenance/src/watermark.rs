//! Invisible watermark: a 48-bit payload carried by ~240 mid-frequency sinusoids of the
//! luminance, tiled with a period of a quarter of the image's short side.
//!
//! Embedding is in the frequency domain: each carrier is one 2-D Fourier component of the
//! tile; 112 carry a fixed sign pattern (sync) and 128 carry the 64-bit codeword (48 payload
//! bits + CRC-16, twice). Because the pattern is a sum of pure sinusoids over the whole image:
//!
//! - a crop changes only the carriers' phases (recovered from the sync carriers);
//! - a resize moves every carrier frequency by the same factor (found by scanning the
//!   whitened magnitude spectrum for the carrier constellation; magnitudes ignore the crop);
//! - JPEG keeps mid frequencies, and detection integrates every pixel.
//!
//! A detection needs both a strong sync correlation and a valid CRC; on unmarked images the
//! chance of both is far below one in a million.

use std::f32::consts::PI;

use num_complex::Complex32;
use rustfft::FftPlanner;

/// Default embedding strength: RMS of the pattern in 8-bit luminance levels, before the
/// texture mask (about 42 dB PSNR on flat images).
pub const DEFAULT_STRENGTH: f32 = 2.5;

const R_MIN: f32 = 4.0;
const R_MAX: f32 = 13.0;
const SYNC: usize = 112;
const BITS: usize = 64;
const KEY: u64 = 0x6174_656c_6965_7231; // "atelier1"
/// Sync correlation needed before the payload is read; unmarked images stay below ~0.45.
const MIN_CONFIDENCE: f32 = 0.6;
/// Least reliable bits the decoder may flip (up to two at once).
const CHASE_BITS: usize = 12;
/// Radius of the detector's local-mean filter.
const BOX_R: usize = 4;
/// Informed embedding: each carrier's reading must reach this multiple of an undisturbed one.
const MARGIN: f32 = 1.8;
/// ...using at most this multiple of the base amplitude.
const MAX_BOOST: f32 = 4.0;
/// Most the texture mask amplifies the pattern (busy, noisy areas hide it best).
const MASK_MAX: f32 = 2.0;

/// Smallest image side that can carry the mark.
pub const MIN_SIDE: usize = 128;

/// The 48-bit payload: who marked it and which job made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payload {
    /// Service (deployment) id.
    pub service: u16,
    /// First 32 bits of SHA-256 of the job id.
    pub job_hash: u32,
}

impl Payload {
    /// Payload for a job of a service.
    pub fn for_job(service: u16, job_id: &str) -> Self {
        use sha2::Digest;
        let d = sha2::Sha256::digest(job_id.as_bytes());
        Self {
            service,
            job_hash: u32::from_be_bytes([d[0], d[1], d[2], d[3]]),
        }
    }

    fn to_bits(self) -> u64 {
        ((self.service as u64) << 32) | self.job_hash as u64
    }

    fn from_bits(v: u64) -> Self {
        Self {
            service: (v >> 32) as u16,
            job_hash: v as u32,
        }
    }

    /// `service-jobhash` in hex, as printed by `atelier inspect`.
    pub fn hex(&self) -> String {
        format!("{:04x}-{:08x}", self.service, self.job_hash)
    }
}

/// A detected mark.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Detection {
    pub payload: Payload,
    /// Normalised sync correlation in [-1, 1].
    pub confidence: f32,
    /// Tile period found, in pixels (a quarter of the marked image's short side, times the
    /// resize factor since).
    pub period: f32,
}

/// CRC-16/CCITT-FALSE over the six payload bytes.
fn crc16(v: u64) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for i in (0..6).rev() {
        crc ^= (((v >> (8 * i)) & 0xFF) as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One carrier: integer frequency (cycles per tile) and its role.
#[derive(Debug, Clone, Copy)]
struct Carrier {
    u: i32,
    v: i32,
    /// Sync sign, or the spreading sign of a data carrier.
    sign: f32,
    /// `Some(bit index)` for data carriers.
    bit: Option<usize>,
}

/// The carrier layout, fixed by the key: half-plane frequencies in the ring, shuffled.
fn carriers() -> Vec<Carrier> {
    let mut f = Vec::new();
    let r = R_MAX as i32;
    for v in 0..=r {
        for u in -r..=r {
            if v == 0 && u <= 0 {
                continue;
            }
            let d = ((u * u + v * v) as f32).sqrt();
            if (R_MIN..=R_MAX).contains(&d) {
                f.push((u, v));
            }
        }
    }
    let mut st = KEY;
    for i in (1..f.len()).rev() {
        let j = (splitmix(&mut st) % (i as u64 + 1)) as usize;
        f.swap(i, j);
    }
    let need = SYNC + 2 * BITS;
    f.truncate(need);
    f.iter()
        .enumerate()
        .map(|(i, &(u, v))| {
            let sign = if splitmix(&mut st) & 1 == 0 {
                1.0
            } else {
                -1.0
            };
            Carrier {
                u,
                v,
                sign,
                bit: (i >= SYNC).then(|| (i - SYNC) % BITS),
            }
        })
        .collect()
}

/// The tile period for an image of this size: a quarter of the short side, at least 128 px
/// (so the carriers stay below a quarter of the sampling rate even after halving).
pub fn period_for(width: usize, height: usize) -> usize {
    (width.min(height) / 4).max(128)
}

fn luma(rgb: &[u8], n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            0.299 * rgb[3 * i] as f32
                + 0.587 * rgb[3 * i + 1] as f32
                + 0.114 * rgb[3 * i + 2] as f32
        })
        .collect()
}

/// Embeds `payload` into an RGB image (row-major, 3 bytes per pixel) in place.
///
/// Returns false (and leaves the image alone) when it is smaller than [`MIN_SIDE`].
pub fn embed(rgb: &mut [u8], width: usize, height: usize, payload: Payload, strength: f32) -> bool {
    if width < MIN_SIDE || height < MIN_SIDE || rgb.len() != width * height * 3 {
        return false;
    }
    let t = period_for(width, height);
    let bits = payload.to_bits();
    let code = (bits << 16) | crc16(bits) as u64;
    let cs = carriers();
    // Sum of K unit cosines has RMS sqrt(K/2).
    let base = strength / (cs.len() as f32 / 2.0).sqrt();
    let y = luma(rgb, width * height);
    let mask = texture_mask(&y, width, height);
    // Informed embedding: the image itself has some energy at each carrier frequency, which
    // the detector reads as noise. Measure it the way the detector will, and give each
    // carrier enough amplitude that its reading has the intended sign with a margin.
    let r = residual(&y, width, height);
    let host = coefficients(&r, width, height, &cs, t as f32);
    let (wx, wy) = (window(width), window(height));
    let wsum: f32 = wx.iter().sum::<f32>() * wy.iter().sum::<f32>();
    let mbar: f32 = (0..width * height)
        .map(|i| mask[i] * wx[i % width] * wy[i / width])
        .sum::<f32>()
        / wsum;
    // The detector's high-pass (minus a 9x9 box mean) scales a carrier by 1 - D(fx)D(fy).
    let d = |f: f32| {
        let n = 2.0 * BOX_R as f32 + 1.0;
        if f.abs() < 1e-6 {
            1.0
        } else {
            (PI * f * n).sin() / (n * (PI * f).sin())
        }
    };
    // The tile from its Fourier coefficients (inverse FFT of a Hermitian-symmetric grid).
    let mut grid = vec![Complex32::new(0.0, 0.0); t * t];
    for (c, hk) in cs.iter().zip(&host) {
        let sign = match c.bit {
            None => c.sign,
            Some(b) => {
                let bit = (code >> (63 - b)) & 1;
                c.sign * if bit == 1 { 1.0 } else { -1.0 }
            }
        };
        let (fx, fy) = (c.u as f32 / t as f32, c.v as f32 / t as f32);
        let gain = 0.5 * wsum * mbar * (1.0 - d(fx) * d(fy)) * base;
        // Amplitude (in units of `base`) so that sign * reading >= MARGIN * gain.
        let need = if gain > 0.0 {
            (MARGIN * gain - sign * hk.re) / gain
        } else {
            1.0
        };
        let a = sign * need.clamp(1.0, MAX_BOOST);
        let (u, v) = (
            c.u.rem_euclid(t as i32) as usize,
            c.v.rem_euclid(t as i32) as usize,
        );
        let (nu, nv) = (
            (-c.u).rem_euclid(t as i32) as usize,
            (-c.v).rem_euclid(t as i32) as usize,
        );
        grid[v * t + u] += Complex32::new(a * 0.5, 0.0);
        grid[nv * t + nu] += Complex32::new(a * 0.5, 0.0);
    }
    let tile = ifft2(&mut grid, t, t);
    for py in 0..height {
        for px in 0..width {
            let i = py * width + px;
            let d = tile[(py % t) * t + (px % t)] * base * mask[i];
            for c in 0..3 {
                let v = rgb[3 * i + c] as f32 + d;
                rgb[3 * i + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    true
}

/// Tukey window: flat in the middle, cosine tapers over the outer 8% on each side (against
/// edge leakage without giving up much of the image).
fn window(n: usize) -> Vec<f32> {
    let taper = (n as f32 * 0.08).max(1.0);
    (0..n)
        .map(|i| {
            let x = (i as f32 + 0.5).min(n as f32 - i as f32 - 0.5);
            if x >= taper {
                1.0
            } else {
                0.5 - 0.5 * (PI * x / taper).cos()
            }
        })
        .collect()
}

/// What the detector analyses: luminance minus its local mean (the image content), windowed.
fn residual(y: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mean = box_blur(y, w, h, BOX_R);
    let (wx, wy) = (window(w), window(h));
    (0..w * h)
        .map(|i| (y[i] - mean[i]) * wx[i % w] * wy[i / w])
        .collect()
}

/// Local contrast mask: more signal where texture hides it, less on flat areas.
fn texture_mask(y: &[f32], w: usize, h: usize) -> Vec<f32> {
    let mean = box_blur(y, w, h, 3);
    let sq: Vec<f32> = y
        .iter()
        .zip(&mean)
        .map(|(a, m)| (a - m) * (a - m))
        .collect();
    let var = box_blur(&sq, w, h, 3);
    var.iter()
        .map(|v| (0.7 + v.sqrt() / 12.0).min(MASK_MAX))
        .collect()
}

fn box_blur(src: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    let mut tmp = vec![0f32; src.len()];
    let mut out = vec![0f32; src.len()];
    let n = (2 * r + 1) as f32;
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        let mut acc: f32 = (0..=2 * r)
            .map(|k| row[k.saturating_sub(r).min(w - 1)])
            .sum();
        for x in 0..w {
            tmp[y * w + x] = acc / n;
            let add = (x + r + 1).min(w - 1);
            let sub = x.saturating_sub(r);
            acc += row[add] - row[sub];
        }
    }
    for x in 0..w {
        let mut acc: f32 = (0..=2 * r)
            .map(|k| tmp[k.saturating_sub(r).min(h - 1) * w + x])
            .sum();
        for y in 0..h {
            out[y * w + x] = acc / n;
            let add = (y + r + 1).min(h - 1);
            let sub = y.saturating_sub(r);
            acc += tmp[add * w + x] - tmp[sub * w + x];
        }
    }
    out
}

fn fft2(data: &mut [Complex32], w: usize, h: usize, inverse: bool) {
    let mut planner = FftPlanner::<f32>::new();
    let row = if inverse {
        planner.plan_fft_inverse(w)
    } else {
        planner.plan_fft_forward(w)
    };
    for r in data.chunks_exact_mut(w) {
        row.process(r);
    }
    let col = if inverse {
        planner.plan_fft_inverse(h)
    } else {
        planner.plan_fft_forward(h)
    };
    let mut buf = vec![Complex32::new(0.0, 0.0); h];
    for x in 0..w {
        for y in 0..h {
            buf[y] = data[y * w + x];
        }
        col.process(&mut buf);
        for y in 0..h {
            data[y * w + x] = buf[y];
        }
    }
}

fn ifft2(grid: &mut [Complex32], w: usize, h: usize) -> Vec<f32> {
    fft2(grid, w, h, true);
    grid.iter().map(|c| c.re).collect()
}

/// Looks for a mark in an RGB image. `None` when there is none (or it did not survive).
pub fn detect(rgb: &[u8], width: usize, height: usize) -> Option<Detection> {
    if width < 64 || height < 64 || rgb.len() != width * height * 3 {
        return None;
    }
    // Work on at most ~1024 px: box-downsample by an integer factor.
    let f = width.max(height).div_ceil(1024).max(1);
    let (w, h) = (width / f, height / f);
    let full = luma(rgb, width * height);
    let mut y = vec![0f32; w * h];
    for yy in 0..h {
        for xx in 0..w {
            let mut s = 0.0;
            for dy in 0..f {
                for dx in 0..f {
                    s += full[(yy * f + dy) * width + xx * f + dx];
                }
            }
            y[yy * w + xx] = s / (f * f) as f32;
        }
    }
    let r = residual(&y, w, h);
    let cs = carriers();
    let spec = Spectrum::new(&r, w, h);
    let periods = spec.scan_periods(&cs, w, h);
    let mut best: Option<Detection> = None;
    for t in periods {
        // Maximal-ratio combining: weight each carrier by the inverse noise power the image
        // puts around its frequency.
        let weights: Vec<f32> = cs
            .iter()
            .map(|c| {
                let n = spec.noise(c.u as f32 / t, c.v as f32 / t);
                1.0 / (n * n + 1e-12)
            })
            .collect();
        let dd = decode_at(&r, w, h, &cs, &weights, t);
        if let Some(d) = dd {
            if best.as_ref().is_none_or(|b| d.confidence > b.confidence) {
                best = Some(Detection {
                    period: d.period * f as f32,
                    ..d
                });
            }
        }
    }
    best
}

/// The whitened magnitude spectrum of the (windowed) residual, zero-padded to `m`.
struct Spectrum {
    m: usize,
    white: Vec<f32>,
    smooth: Vec<f32>,
}

impl Spectrum {
    fn new(r: &[f32], w: usize, h: usize) -> Self {
        let m = (w.max(h) * 2).next_power_of_two();
        let mut spec = vec![Complex32::new(0.0, 0.0); m * m];
        for yy in 0..h {
            for xx in 0..w {
                spec[yy * m + xx].re = r[yy * w + xx];
            }
        }
        fft2(&mut spec, m, m, false);
        let mag: Vec<f32> = spec.iter().map(|c| c.norm()).collect();
        let smooth = box_blur(&mag, m, m, 6);
        let white = mag
            .iter()
            .zip(&smooth)
            .map(|(a, s)| a / (s + 1e-6))
            .collect();
        Self { m, white, smooth }
    }

    fn bins(&self, fx: f32, fy: f32) -> [usize; 4] {
        let m = self.m as i64;
        let (bx, by) = (fx * self.m as f32, fy * self.m as f32);
        let (x0, y0) = (bx.floor() as i64, by.floor() as i64);
        let idx =
            |dx: i64, dy: i64| ((y0 + dy).rem_euclid(m) * m + (x0 + dx).rem_euclid(m)) as usize;
        [idx(0, 0), idx(1, 0), idx(0, 1), idx(1, 1)]
    }

    /// Whitened magnitude at a frequency: best of the four bins around it (peaks fall
    /// between bins).
    fn peak(&self, fx: f32, fy: f32) -> f32 {
        self.bins(fx, fy)
            .iter()
            .map(|&i| self.white[i])
            .fold(0.0, f32::max)
    }

    /// Local mean magnitude (image noise level) around a frequency.
    fn noise(&self, fx: f32, fy: f32) -> f32 {
        self.bins(fx, fy)
            .iter()
            .map(|&i| self.smooth[i])
            .sum::<f32>()
            / 4.0
    }

    /// Candidate tile periods (in working pixels), best first: the periods whose carrier
    /// constellation sits on the strongest whitened peaks.
    fn scan_periods(&self, cs: &[Carrier], w: usize, h: usize) -> Vec<f32> {
        // Clipped so a few strong artefact peaks (a VAE's 8-px grid, JPEG blocks) cannot
        // outvote a constellation where most carriers stand out moderately.
        let score = |t: f32| -> f32 {
            cs.iter()
                .map(|c| self.peak(c.u as f32 / t, c.v as f32 / t).min(3.0))
                .sum::<f32>()
                / cs.len() as f32
        };
        // Periods from 2*R_MAX+6 (carriers below ~0.4 cycles/px) to the image size over 1.5.
        let t_min = 2.0 * R_MAX + 6.0;
        let t_max = (w.min(h) as f32 / 1.5).max(t_min + 1.0);
        let mut cands: Vec<(f32, f32)> = Vec::new();
        let mut t = t_min;
        while t <= t_max {
            cands.push((score(t), t));
            t *= 1.003;
        }
        cands.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut picked: Vec<f32> = Vec::new();
        for &(_, t) in &cands {
            if picked.iter().all(|p| (p / t - 1.0).abs() > 0.02) {
                // Refine around the coarse pick.
                let mut bt = t;
                let mut bs = score(t);
                let mut x = t * 0.994;
                while x <= t * 1.006 {
                    let s = score(x);
                    if s > bs {
                        bs = s;
                        bt = x;
                    }
                    x *= 1.0005;
                }
                picked.push(bt);
                if picked.len() == 3 {
                    break;
                }
            }
        }
        picked
    }
}

/// Fourier coefficients of `r` at each carrier's frequency for period `t` (separable DFT).
fn coefficients(r: &[f32], w: usize, h: usize, cs: &[Carrier], t: f32) -> Vec<Complex32> {
    let mut us: Vec<i32> = cs.iter().map(|c| c.u).collect();
    us.sort_unstable();
    us.dedup();
    // Row transforms per distinct u: R_u(y) = sum_x r(x,y) e^{-2πi u x / t}.
    let mut rows: Vec<Vec<Complex32>> = Vec::with_capacity(us.len());
    for &u in &us {
        let tw: Vec<Complex32> = (0..w)
            .map(|x| Complex32::from_polar(1.0, -2.0 * PI * u as f32 * x as f32 / t))
            .collect();
        let mut ru = vec![Complex32::new(0.0, 0.0); h];
        for (yy, out) in ru.iter_mut().enumerate() {
            let line = &r[yy * w..(yy + 1) * w];
            *out = line.iter().zip(&tw).map(|(a, b)| b * *a).sum();
        }
        rows.push(ru);
    }
    cs.iter()
        .map(|c| {
            let ru = &rows[us.binary_search(&c.u).unwrap_or(0)];
            ru.iter()
                .enumerate()
                .map(|(yy, v)| {
                    v * Complex32::from_polar(1.0, -2.0 * PI * c.v as f32 * yy as f32 / t)
                })
                .sum()
        })
        .collect()
}

fn decode_at(
    r: &[f32],
    w: usize,
    h: usize,
    cs: &[Carrier],
    weights: &[f32],
    t: f32,
) -> Option<Detection> {
    let coef: Vec<Complex32> = coefficients(r, w, h, cs, t)
        .iter()
        .zip(weights)
        .map(|(c, wt)| c * *wt)
        .collect();
    // C ≈ a/2 · e^{+2πi f·d} for a tile offset d, so the offset (in tile units) maximises
    // sum_sync sign · Re(C e^{-2πi (u dx + v dy)}): a forward DFT of the sync coefficients.
    const G: usize = 256;
    let mut grid = vec![Complex32::new(0.0, 0.0); G * G];
    let mut total = 0f32;
    for (c, k) in cs.iter().zip(&coef) {
        if c.bit.is_none() {
            let (u, v) = (
                c.u.rem_euclid(G as i32) as usize,
                c.v.rem_euclid(G as i32) as usize,
            );
            grid[v * G + u] += k * c.sign;
            total += k.norm();
        }
    }
    fft2(&mut grid, G, G, false);
    let (mut bi, mut bv) = (0usize, f32::NEG_INFINITY);
    for (i, c) in grid.iter().enumerate() {
        if c.re > bv {
            bv = c.re;
            bi = i;
        }
    }
    let confidence = bv / total.max(1e-9);
    if confidence < MIN_CONFIDENCE {
        return None;
    }
    let (dx, dy) = ((bi % G) as f32 / G as f32, (bi / G) as f32 / G as f32);
    let mut soft = [0f32; BITS];
    for (c, k) in cs.iter().zip(&coef) {
        if let Some(b) = c.bit {
            let rot = Complex32::from_polar(1.0, -2.0 * PI * (c.u as f32 * dx + c.v as f32 * dy));
            soft[b] += c.sign * (k * rot).re;
        }
    }
    let code = soft
        .iter()
        .fold(0u64, |acc, s| (acc << 1) | u64::from(*s > 0.0));
    // Chase decoding: also try flipping up to two of the least reliable bits; the CRC
    // (and the sync threshold before it) keeps false acceptance negligible.
    let mut order: Vec<usize> = (0..BITS).collect();
    order.sort_by(|a, b| soft[*a].abs().total_cmp(&soft[*b].abs()));
    let weak = &order[..CHASE_BITS];
    let mut trials = vec![0u64];
    for (i, &a) in weak.iter().enumerate() {
        trials.push(1 << (63 - a));
        for &b in &weak[i + 1..] {
            trials.push((1 << (63 - a)) | (1 << (63 - b)));
        }
    }
    trials.into_iter().find_map(|flip| {
        let c = code ^ flip;
        let bits = c >> 16;
        (crc16(bits) == (c & 0xFFFF) as u16).then(|| Detection {
            payload: Payload::from_bits(bits),
            confidence,
            period: t,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable_and_sized() {
        let c = carriers();
        assert_eq!(c.len(), SYNC + 2 * BITS);
        assert_eq!(c.iter().filter(|c| c.bit.is_none()).count(), SYNC);
        for b in 0..BITS {
            assert_eq!(c.iter().filter(|c| c.bit == Some(b)).count(), 2);
        }
    }

    #[test]
    fn crc_detects_a_flipped_bit() {
        let v = Payload::for_job(7, "job").to_bits();
        assert_ne!(crc16(v), crc16(v ^ 1));
    }
}
