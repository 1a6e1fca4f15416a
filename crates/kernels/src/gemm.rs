//! A safe face for the blocked `gemm` crate (the same one candle's CPU matmul uses), with
//! strides, so callers multiply views of NCHW tensors without copying them first.

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Backing elements; every addressed element must lie inside.
    pub data: &'a [f32],
    /// Row stride in elements.
    pub rs: usize,
    /// Column stride in elements.
    pub cs: usize,
}

/// How the product is spread over threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Par {
    /// On the calling thread (the caller already runs tiles in parallel).
    Serial,
    /// Across rayon's pool.
    Pool,
}

/// `c = (accumulate ? c : 0) + scale * a·b` for an `m`x`k` `a`, a `k`x`n` `b` and an `m`x`n`
/// `c` whose row stride is `c_rs` (column stride 1).
///
/// # Panics
/// When a view is too short for its shape: the kernels call this with shapes they derived
/// from the very buffers they pass, so a panic here is a bug in a kernel, never bad input.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    scale: f32,
    par: Par,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs
    };
    assert!(
        k == 0 || last(m, k, a.rs, a.cs) < a.data.len(),
        "lhs view too short"
    );
    assert!(
        k == 0 || last(k, n, b.rs, b.cs) < b.data.len(),
        "rhs view too short"
    );
    assert!(last(m, n, c_rs, 1) < c.len(), "dst view too short");
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * c_rs..i * c_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: the asserts above keep every element the strides address inside its slice, and
    // `c` is borrowed mutably so nothing else reads or writes it meanwhile.
    unsafe { gemm_raw(m, n, k, a, b, c.as_mut_ptr(), c_rs, accumulate, scale, par) }
}

/// `c (+)= scale · a·b` into a raw destination with row stride `c_rs`.
///
/// # Safety
/// `c` must address `m` rows of `n` writable elements at stride `c_rs`, written by no one else
/// meanwhile; `a` and `b` must cover their shapes (checked).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: *mut f32,
    c_rs: usize,
    accumulate: bool,
    scale: f32,
    par: Par,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs
    };
    assert!(last(m, k, a.rs, a.cs) < a.data.len(), "lhs view too short");
    assert!(last(k, n, b.rs, b.cs) < b.data.len(), "rhs view too short");
    let parallelism = match par {
        Par::Pool if crate::threads() > 1 => gemm::Parallelism::Rayon(crate::threads()),
        _ => gemm::Parallelism::None,
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        accumulate,
        a.data.as_ptr(),
        a.cs as isize,
        a.rs as isize,
        b.data.as_ptr(),
        b.cs as isize,
        b.rs as isize,
        1.0,
        scale,
        false,
        false,
        false,
        parallelism,
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Naive `a·b` in f64, the reference for every kernel test.
    pub(crate) fn naive(m: usize, n: usize, k: usize, a: MatRef, b: MatRef) -> Vec<f64> {
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|p| {
                        a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64
                    })
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_views_multiply_like_the_naive_product() {
        let (m, n, k) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 5) as f32 - 2.0).collect();
        // b is read transposed: element (p, j) at j * k + p.
        let b: Vec<f32> = (0..n * k).map(|i| (i % 3) as f32 * 0.5).collect();
        let (av, bv) = (
            MatRef {
                data: &a,
                rs: k,
                cs: 1,
            },
            MatRef {
                data: &b,
                rs: 1,
                cs: k,
            },
        );
        let want = naive(m, n, k, av, bv);
        let mut c = vec![1f32; m * (n + 2)];
        sgemm(m, n, k, av, bv, &mut c, n + 2, true, 2.0, Par::Pool);
        for i in 0..m {
            for j in 0..n {
                assert!((c[i * (n + 2) + j] as f64 - (1.0 + 2.0 * want[i * n + j])).abs() < 1e-4);
            }
            assert_eq!(c[i * (n + 2) + n], 1.0, "padding columns are left alone");
        }
    }
}
