//! Watermark robustness: marks must survive JPEG quality 75, a 50% downscale and a 10% crop
//! on generated images (the tiny fixture pipeline) and on natural-looking synthetic images;
//! unmarked images must never read as marked.

use atelier_provenance::watermark::{detect, embed, Payload, DEFAULT_STRENGTH};
use image::{ImageEncoder, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

/// 20 images from the sd15-tiny pipeline (random weights: smooth colour fields with noise).
fn generated() -> Vec<RgbImage> {
    use atelier_engine::{CancelToken, DiffusionModel, GenerateRequest, LoadOptions};
    let m = DiffusionModel::load(&fixture("sd15-tiny"), &LoadOptions::default())
        .expect("fixture loads");
    let mut out = Vec::new();
    for k in 0..5u64 {
        let req = GenerateRequest {
            prompt: format!("a cinema ticket, scene {k}"),
            width: Some(256),
            height: Some(256),
            steps: Some(1),
            seed: 100 + 4 * k,
            batch_size: Some(4),
            ..Default::default()
        };
        let o = m
            .generate(&req, &mut |_| {}, &CancelToken::new())
            .expect("generates");
        for i in o.images {
            out.push(RgbImage::from_raw(i.width as u32, i.height as u32, i.data).expect("size"));
        }
    }
    out
}

/// Natural-looking synthetic images: 1/f ("pink") noise textures in colour, with a sky-like
/// gradient and a few soft shapes, at several sizes and aspect ratios.
fn synthetic(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Sum of octaves of smoothed value noise approximates a 1/f spectrum.
    let mut field = vec![[0f32; 3]; (w * h) as usize];
    let mut amp = 60.0;
    let mut cell = (w.max(h) / 4).max(2);
    while cell >= 2 {
        let gw = w / cell + 2;
        let gh = h / cell + 2;
        let grid: Vec<[f32; 3]> = (0..gw * gh)
            .map(|_| {
                [
                    rng.random::<f32>() - 0.5,
                    rng.random::<f32>() - 0.5,
                    rng.random::<f32>() - 0.5,
                ]
            })
            .collect();
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 / cell as f32, y as f32 / cell as f32);
                let (x0, y0) = (fx.floor() as u32, fy.floor() as u32);
                let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
                let s = |t: f32| t * t * (3.0 - 2.0 * t);
                let (sx, sy) = (s(tx), s(ty));
                let g = |i: u32, j: u32| grid[(j * gw + i) as usize];
                let p = &mut field[(y * w + x) as usize];
                for (c, v) in p.iter_mut().enumerate() {
                    let a = g(x0, y0)[c] * (1.0 - sx) + g(x0 + 1, y0)[c] * sx;
                    let b = g(x0, y0 + 1)[c] * (1.0 - sx) + g(x0 + 1, y0 + 1)[c] * sx;
                    *v += amp * (a * (1.0 - sy) + b * sy);
                }
            }
        }
        amp *= 0.55;
        cell /= 2;
    }
    let base: [f32; 3] = [
        rng.random_range(60.0..200.0),
        rng.random_range(60.0..200.0),
        rng.random_range(60.0..200.0),
    ];
    let shapes: Vec<(f32, f32, f32, [f32; 3])> = (0..4)
        .map(|_| {
            (
                rng.random_range(0.0..w as f32),
                rng.random_range(0.0..h as f32),
                rng.random_range(10.0..w.min(h) as f32 / 3.0),
                [
                    rng.random_range(-80.0..80.0),
                    rng.random_range(-80.0..80.0),
                    rng.random_range(-80.0..80.0),
                ],
            )
        })
        .collect();
    RgbImage::from_fn(w, h, |x, y| {
        let p = field[(y * w + x) as usize];
        let sky = 40.0 * (y as f32 / h as f32 - 0.5);
        let mut px = [0u8; 3];
        for c in 0..3 {
            let mut v = base[c] + p[c] + sky;
            for (cx, cy, r, col) in &shapes {
                let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                v += col[c] * (1.0 - ((d - r) / 3.0).clamp(0.0, 1.0));
            }
            px[c] = v.round().clamp(0.0, 255.0) as u8;
        }
        image::Rgb(px)
    })
}

fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("jpeg encodes");
    image::load_from_memory(&buf)
        .expect("jpeg decodes")
        .to_rgb8()
}

fn half(img: &RgbImage) -> RgbImage {
    image::imageops::resize(
        img,
        img.width() / 2,
        img.height() / 2,
        image::imageops::FilterType::Triangle,
    )
}

/// Keeps 90% of each side at an offset that is not a multiple of anything we use.
fn crop10(img: &RgbImage, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (w, h) = (img.width() * 9 / 10, img.height() * 9 / 10);
    let x = rng.random_range(0..=img.width() - w);
    let y = rng.random_range(0..=img.height() - h);
    image::imageops::crop_imm(img, x, y, w, h).to_image()
}

fn found(img: &RgbImage) -> Option<Payload> {
    detect(img.as_raw(), img.width() as usize, img.height() as usize).map(|d| d.payload)
}

#[test]
fn survives_jpeg_resize_and_crop_with_no_false_detections() {
    let mut images = generated();
    let n_generated = images.len();
    let sizes = [(512, 512), (640, 480), (512, 768), (768, 512), (600, 600)];
    for k in 0..20u64 {
        let (w, h) = sizes[k as usize % sizes.len()];
        images.push(synthetic(k, w, h));
    }
    type Attack = fn(&RgbImage, u64) -> RgbImage;
    let attacks: [(&str, Attack); 4] = [
        ("none", |i, _| i.clone()),
        ("jpeg q75", |i, _| jpeg(i, 75)),
        ("50% resize", |i, _| half(i)),
        ("10% crop", crop10),
    ];
    let mut ok = [0usize; 4];
    let mut combined = 0;
    let mut worst_psnr = [f64::INFINITY; 2];
    for (k, img) in images.iter().enumerate() {
        let payload = Payload::for_job(0x00a7, &format!("job-{k}"));
        let mut marked = img.clone();
        let (w, h) = (img.width() as usize, img.height() as usize);
        assert!(embed(&mut marked, w, h, payload, DEFAULT_STRENGTH));
        let mse: f64 = img
            .as_raw()
            .iter()
            .zip(marked.as_raw())
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / img.as_raw().len() as f64;
        let g = usize::from(k >= n_generated);
        worst_psnr[g] = worst_psnr[g].min(10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10());
        for (a, (name, f)) in attacks.iter().enumerate() {
            let got = found(&f(&marked, k as u64));
            if got == Some(payload) {
                ok[a] += 1;
            } else {
                println!("image {k} ({w}x{h}): {name}: got {got:?}");
            }
        }
        if found(&crop10(&half(&jpeg(&marked, 75)), k as u64)) == Some(payload) {
            combined += 1;
        }
    }
    let total = images.len();
    for (a, (name, _)) in attacks.iter().enumerate() {
        println!(
            "{name}: {}/{total} detected ({n_generated} generated + {} synthetic)",
            ok[a],
            total - n_generated
        );
    }
    println!("jpeg q75 + 50% resize + 10% crop together: {combined}/{total}");
    println!(
        "worst PSNR of marking: {:.1} dB on generated (noise-like) images, {:.1} dB on synthetic ones",
        worst_psnr[0], worst_psnr[1]
    );

    // Unmarked: 200 images (the 40 above and 160 more synthetic ones of other sizes),
    // plain and JPEG-compressed.
    let mut false_hits = 0;
    let mut checked = 0;
    let fp_sizes = [(256, 256), (384, 256), (320, 320), (512, 384), (300, 420)];
    let mut unmarked: Vec<RgbImage> = images.clone();
    for k in 0..160u64 {
        let (w, h) = fp_sizes[k as usize % fp_sizes.len()];
        unmarked.push(synthetic(1000 + k, w, h));
    }
    for (k, img) in unmarked.iter().enumerate() {
        let probe = if k % 2 == 0 {
            img.clone()
        } else {
            jpeg(img, 75)
        };
        checked += 1;
        if let Some(p) = found(&probe) {
            false_hits += 1;
            println!("false detection on unmarked image {k}: {p:?}");
        }
    }
    println!("false detections: {false_hits}/{checked} unmarked images");
    assert!(checked >= 200);
    assert_eq!(false_hits, 0);
    for (a, (name, _)) in attacks.iter().enumerate() {
        assert_eq!(ok[a], total, "{name}: only {}/{total} detected", ok[a]);
    }
}
