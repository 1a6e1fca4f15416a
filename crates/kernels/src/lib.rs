//! CPU kernels for the hot operations of diffusion models, on plain `f32` slices in NCHW layout.
//!
//! Why a crate of its own: candle's generic CPU paths re-layout inputs and weights on every
//! call and materialise whole attention score matrices; these kernels keep the layouts the
//! model already has, prepare weights once, fuse the cheap epilogues (bias, residual, SiLU)
//! into the expensive operation and hand the arithmetic to a blocked GEMM. They know nothing
//! of tensors or devices: `atelier-engine` wraps them as candle custom ops.
//!
//! Every kernel has a naive reference in its tests and is checked against it on odd shapes.

pub mod attention;
pub mod blocked;
pub mod conv;
pub mod gemm;
pub mod norm;
pub mod simd;
pub mod winograd;

/// A raw output pointer handed to parallel tasks that each write their own disjoint elements
/// (rows of channel planes, blocks of a matrix); each use site states why its writes are
/// disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: only used by tasks writing disjoint elements, as stated at each use.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer; a method so closures capture the whole (Send) wrapper.
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Threads the kernels may use: rayon's pool size (`RAYON_NUM_THREADS` or the core count).
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Deterministic test values in [-1, 1], the same for every kernel's tests.
#[cfg(test)]
pub(crate) fn test_data(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (v % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}
