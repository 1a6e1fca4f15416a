//! Times each kernel on the shapes of SD-Turbo at 512x512 and prints GFLOP/s against this
//! machine's f32 GEMM ceiling: `cargo run --release -p atelier-kernels --example shapes`.
use std::time::Instant;

use atelier_kernels::attention::{attention, AttnShape};
use atelier_kernels::blocked::{self, PackedA, PackedB, Precision};
use atelier_kernels::conv::{conv2d, ConvShape};
use atelier_kernels::gemm::{sgemm, MatRef, Par};
use atelier_kernels::winograd::{self, WinogradWeights};

fn median<F: FnMut()>(runs: usize, mut f: F) -> f64 {
    f();
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let only = std::env::args().nth(1);
    let n = 2048;
    let a = vec![0.5f32; n * n];
    let b = vec![0.25f32; n * n];
    let mut c = vec![0f32; n * n];
    let secs = median(3, || {
        sgemm(
            n,
            n,
            n,
            MatRef {
                data: &a,
                rs: n,
                cs: 1,
            },
            MatRef {
                data: &b,
                rs: n,
                cs: 1,
            },
            &mut c,
            n,
            false,
            1.0,
            Par::Pool,
        )
    });
    let ceil = 2.0 * (n as f64).powi(3) / secs / 1e9;
    println!("gemm crate {n}^3: {ceil:.1} GFLOP/s");
    for p in [Precision::F32, Precision::Bf16] {
        if !blocked::available(p) {
            continue;
        }
        let pa = PackedA::pack(p, &a, n, n, n, 1);
        let pb = PackedB::pack(p, &b, n, n, n, 1);
        let secs = median(3, || blocked::gemm(&pa, &pb, &mut c, n, false));
        println!(
            "blocked {p:?} {n}^3: {:.1} GFLOP/s",
            2.0 * (n as f64).powi(3) / secs / 1e9
        );
    }
    let convs = [
        (
            "unet 3x3 320 64²",
            ConvShape {
                batch: 1,
                cin: 320,
                h: 64,
                w: 64,
                cout: 320,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "unet 3x3 640 32²",
            ConvShape {
                batch: 1,
                cin: 640,
                h: 32,
                w: 32,
                cout: 640,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "unet 3x3 1280 16²",
            ConvShape {
                batch: 1,
                cin: 1280,
                h: 16,
                w: 16,
                cout: 1280,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "unet 3x3 1280 8²",
            ConvShape {
                batch: 1,
                cin: 1280,
                h: 8,
                w: 8,
                cout: 1280,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "unet 1x1 640->320 64²",
            ConvShape {
                batch: 1,
                cin: 640,
                h: 64,
                w: 64,
                cout: 320,
                k: 1,
                stride: 1,
                pad: 0,
            },
        ),
        (
            "vae 3x3 512 64²",
            ConvShape {
                batch: 1,
                cin: 512,
                h: 64,
                w: 64,
                cout: 512,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "vae 3x3 512 128²",
            ConvShape {
                batch: 1,
                cin: 512,
                h: 128,
                w: 128,
                cout: 512,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "vae 3x3 256 256²",
            ConvShape {
                batch: 1,
                cin: 256,
                h: 256,
                w: 256,
                cout: 256,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
        (
            "vae 3x3 128 512²",
            ConvShape {
                batch: 1,
                cin: 128,
                h: 512,
                w: 512,
                cout: 128,
                k: 3,
                stride: 1,
                pad: 1,
            },
        ),
    ];
    for (name, s) in convs {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let x = vec![0.1f32; s.batch * s.cin * s.h * s.w];
        let w = vec![0.01f32; s.cout * s.cin * s.k * s.k];
        let bias = vec![0.0f32; s.cout];
        let secs = median(3, || {
            std::hint::black_box(conv2d(&x, &w, Some(&bias), None, s));
        });
        let gf = s.flops() / secs / 1e9;
        print!(
            "{name:<24} gemm-crate {:>7.1} ms {gf:>6.1} GF/s",
            secs * 1e3
        );
        for p in [Precision::F32, Precision::Bf16] {
            if !blocked::available(p) {
                continue;
            }
            let kk = s.cin * s.k * s.k;
            let pw = PackedA::pack(p, &w, s.cout, kk, kk, 1);
            let secs = median(3, || {
                std::hint::black_box(blocked::conv2d(&x, &pw, Some(&bias), None, s));
            });
            print!(
                " | {p:?} {:>7.1} ms {:>6.1} GF/s",
                secs * 1e3,
                s.flops() / secs / 1e9
            );
        }
        if winograd::eligible(s) && blocked::available(Precision::F32) {
            let kk = s.cin * 9;
            let pw = PackedA::pack(Precision::F32, &w, s.cout, kk, kk, 1);
            let tf = median(3, || {
                std::hint::black_box(WinogradWeights::from_packed(&pw, s.cin));
            });
            let ww = WinogradWeights::from_packed(&pw, s.cin);
            let secs = median(3, || {
                std::hint::black_box(winograd::conv2d(&x, &ww, Some(&bias), None, s));
            });
            print!(
                " | winograd {:>7.1} ms {:>6.1} eff. GF/s (+{:.1} ms filter transform)",
                secs * 1e3,
                s.flops() / secs / 1e9,
                tf * 1e3
            );
        }
        println!();
    }
    if only.as_deref().is_none_or(|o| "group norm".contains(o)) {
        let (c, sp) = (128, 512 * 512);
        let x = vec![0.3f32; c * sp];
        let g = vec![1.0f32; c];
        for silu in [false, true] {
            let secs = median(3, || {
                std::hint::black_box(atelier_kernels::norm::group_norm(
                    &x, c, sp, 32, &g, &g, 1e-6, silu,
                ));
            });
            println!(
                "group norm 128x512² silu={silu}: {:.1} ms, {:.1} GB/s",
                secs * 1e3,
                8.0 * (c * sp) as f64 / secs / 1e9
            );
        }
        let secs = median(3, || {
            std::hint::black_box(atelier_kernels::conv::upsample_nearest(
                &x, c, 512, 512, 1024, 1024,
            ));
        });
        println!("upsample 128x512² x2: {:.1} ms", secs * 1e3);
    }
    for (name, s) in [
        (
            "attn self 4096 5x64",
            AttnShape {
                batch: 1,
                lq: 4096,
                lk: 4096,
                heads: 5,
                head_dim: 64,
            },
        ),
        (
            "attn cross 4096x77 5x64",
            AttnShape {
                batch: 1,
                lq: 4096,
                lk: 77,
                heads: 5,
                head_dim: 64,
            },
        ),
        (
            "attn self 1024 10x64",
            AttnShape {
                batch: 1,
                lq: 1024,
                lk: 1024,
                heads: 10,
                head_dim: 64,
            },
        ),
        (
            "attn vae 4096 1x512",
            AttnShape {
                batch: 1,
                lq: 4096,
                lk: 4096,
                heads: 1,
                head_dim: 512,
            },
        ),
    ] {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        let hd = s.heads * s.head_dim;
        let q = vec![0.01f32; s.batch * s.lq * hd];
        let k = vec![0.02f32; s.batch * s.lk * hd];
        let secs = median(3, || {
            std::hint::black_box(attention(&q, &k, &k, s, 0.125, false));
        });
        let gf = s.flops() / secs / 1e9;
        println!(
            "{name:<24} {:>8.1} ms {gf:>7.1} GFLOP/s {:>5.1}%",
            secs * 1e3,
            100.0 * gf / ceil
        );
    }
}
