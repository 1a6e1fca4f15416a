//! Shared helpers for compose's integration tests: synthetic pictures and perceptual comparison.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use image::{Rgba, RgbaImage};

/// A deterministic stand-in for a generated picture: sky gradient, sun, two mountain ridges and
/// water, recoloured by `seed`. Smooth areas plus hard edges, like a photo.
pub fn picture(seed: u32, w: u32, h: u32) -> RgbaImage {
    let palettes: [[[f32; 3]; 4]; 4] = [
        [
            [255.0, 180.0, 120.0],
            [90.0, 60.0, 140.0],
            [40.0, 30.0, 70.0],
            [20.0, 60.0, 110.0],
        ],
        [
            [140.0, 200.0, 255.0],
            [230.0, 240.0, 255.0],
            [60.0, 120.0, 70.0],
            [40.0, 110.0, 160.0],
        ],
        [
            [20.0, 20.0, 50.0],
            [60.0, 40.0, 90.0],
            [10.0, 10.0, 20.0],
            [30.0, 30.0, 60.0],
        ],
        [
            [250.0, 90.0, 60.0],
            [255.0, 210.0, 80.0],
            [120.0, 30.0, 40.0],
            [200.0, 70.0, 50.0],
        ],
    ];
    let [top, horizon, ridge, water] = palettes[(seed % 4) as usize];
    let f = seed as f32 * 0.7;
    let mut img = RgbaImage::new(w, h);
    let (sx, sy, sr) = (
        w as f32 * (0.3 + 0.4 * ((f * 1.3).sin() * 0.5 + 0.5)),
        h as f32 * 0.35,
        w.min(h) as f32 * 0.09,
    );
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
            let ridge1 = 0.55 + 0.06 * (u * 9.0 + f).sin() + 0.03 * (u * 23.0 + 2.0 * f).sin();
            let ridge2 = 0.62 + 0.04 * (u * 5.0 - f).sin();
            let c = if v > 0.72 {
                let t = (v - 0.72) / 0.28;
                let ripple = 0.08 * ((y as f32 * 0.9).sin() * (x as f32 * 0.05 + f).cos());
                mix(water, horizon, (0.35 - t * 0.3 + ripple).clamp(0.0, 1.0))
            } else if v > ridge2 {
                mix(ridge, [0.0; 3], 0.3)
            } else if v > ridge1 {
                ridge
            } else {
                let d = ((x as f32 - sx).powi(2) + (y as f32 - sy).powi(2)).sqrt();
                if d < sr {
                    [255.0, 245.0, 220.0]
                } else {
                    let glow = (1.0 - (d - sr) / (sr * 3.0)).clamp(0.0, 1.0) * 0.35;
                    mix(mix(top, horizon, v / 0.62), [255.0, 240.0, 200.0], glow)
                }
            };
            img.put_pixel(x, y, Rgba([c[0] as u8, c[1] as u8, c[2] as u8, 255]));
        }
    }
    img
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// A flat logo: a rounded badge with a ring, transparent around it.
pub fn logo(w: u32, h: u32) -> RgbaImage {
    let mut img = RgbaImage::new(w, h);
    let (cx, cy, r) = (w as f32 / 2.0, h as f32 / 2.0, w.min(h) as f32 / 2.0 - 1.0);
    for y in 0..h {
        for x in 0..w {
            let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
            if d < r {
                let ring = (d - r * 0.6).abs() < r * 0.12;
                let c = if ring {
                    [255, 255, 255, 255]
                } else {
                    [230, 120, 40, 255]
                };
                img.put_pixel(x, y, Rgba(c));
            }
        }
    }
    img
}

/// Where goldens live.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens")
}

/// Compares `actual` with the committed golden `name`, or rewrites it when `ATELIER_BLESS=1`.
///
/// Tolerance: both images are box-filtered 2x2 (antialiasing and glyph rasterisation differ by a
/// pixel across CPUs and library patch versions), then the mean absolute difference must stay under
/// 1.0 level of 255 and under 0.05% of pixels may differ by more than 40 levels. A moved line of
/// text or a missing slot breaks both by a wide margin.
pub fn assert_golden(name: &str, actual: &RgbaImage) {
    let path = golden_dir().join(format!("{name}.png"));
    if std::env::var("ATELIER_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        actual.save(&path).expect("write golden");
        return;
    }
    let expected = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with ATELIER_BLESS=1 to create it",
                path.display()
            )
        })
        .to_rgba8();
    assert_eq!(
        expected.dimensions(),
        actual.dimensions(),
        "{name}: size differs from the golden"
    );
    let (mean, far) = difference(&expected, actual);
    if mean >= 1.0 || far >= 0.0005 {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.actual.png"));
        let _ = actual.save(&out);
        panic!(
            "{name}: mean difference {mean:.2} (limit 1.0), {:.3}% pixels far off (limit 0.05%); actual written to {}",
            far * 100.0,
            out.display()
        );
    }
}

fn half(img: &RgbaImage) -> Vec<[f32; 4]> {
    let (w, h) = (img.width() / 2, img.height() / 2);
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0.0f32; 4];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = img.get_pixel(2 * x + dx, 2 * y + dy).0;
                // Compare premultiplied so invisible colour under alpha 0 does not count.
                let a = p[3] as f32 / 255.0;
                for c in 0..3 {
                    acc[c] += p[c] as f32 * a / 4.0;
                }
                acc[3] += p[3] as f32 / 4.0;
            }
            out.push(acc);
        }
    }
    out
}

/// (mean absolute difference, fraction of pixels with some channel off by more than 40).
pub fn difference(a: &RgbaImage, b: &RgbaImage) -> (f32, f32) {
    let (ha, hb) = (half(a), half(b));
    let (mut sum, mut far) = (0.0f64, 0usize);
    for (p, q) in ha.iter().zip(&hb) {
        let mut worst = 0.0f32;
        for c in 0..4 {
            let d = (p[c] - q[c]).abs();
            sum += d as f64;
            worst = worst.max(d);
        }
        if worst > 40.0 {
            far += 1;
        }
    }
    let n = ha.len().max(1);
    ((sum / (n * 4) as f64) as f32, far as f32 / n as f32)
}

/// A five-cut sample board.
pub fn board() -> atelier_compose::storyboard::Storyboard {
    use atelier_compose::storyboard::{Cut, Storyboard};
    let cuts = [
        (
            "새벽 한강, 러너가 운동화 끈을 묶는다",
            "클로즈업, 로우 앵글",
            "오늘도 나를 앞지르는 순간",
            3.0,
        ),
        (
            "햇살을 가르며 다리 위를 달린다",
            "트래킹 숏, 측면",
            "가볍게, 더 멀리",
            4.0,
        ),
        (
            "땀방울이 빛나는 얼굴",
            "익스트림 클로즈업 · slow motion",
            "한계는 어제의 이야기",
            2.5,
        ),
        (
            "결승선 대신 떠오르는 해",
            "와이드 숏, 드론 상승",
            "AIR RUN 7 — 지금 만나보세요 🏃",
            3.5,
        ),
        (
            "제품 패키지와 로고",
            "탑 뷰, 고정",
            "자세한 내용은 atelier.example",
            2.0,
        ),
    ];
    Storyboard {
        title: "AIR RUN 7 런칭 캠페인 · 15초 TV 광고".into(),
        subtitle: "브리프: 출근 전 러닝을 즐기는 2030 직장인 · 톤: 상쾌하고 힘찬".into(),
        cuts: cuts
            .iter()
            .enumerate()
            .map(|(i, (scene, camera, copy, d))| Cut {
                image: Some(Arc::new(picture(i as u32, 640, 360 + 60 * (i as u32 % 3)))),
                scene: (*scene).into(),
                camera: (*camera).into(),
                copy: (*copy).into(),
                duration_s: *d,
            })
            .collect(),
        label: Some("AI 생성 이미지 포함".into()),
        accent: None,
    }
}

/// A four-panel sample diary comic.
pub fn comic() -> atelier_compose::comic::Comic {
    use atelier_compose::comic::{Comic, Panel};
    let texts = [
        (
            Some("월요일 아침, 알람을 세 번이나 껐다."),
            Some("5분만 더…"),
        ),
        (Some("지각 직전, 버스를 향해 전력 질주!"), None),
        (None, Some("기사님 잠깐만요!! 🚌")),
        (
            Some("결국 오늘도 회사 앞 카페에서 하루 시작 ☕"),
            Some("그래도 커피는 맛있다"),
        ),
    ];
    Comic {
        title: Some("나의 월요일 일기".into()),
        panels: texts
            .iter()
            .enumerate()
            .map(|(i, (c, s))| Panel {
                image: Arc::new(picture(i as u32 + 1, 512, 512)),
                caption: c.map(str::to_string),
                speech: s.map(str::to_string),
            })
            .collect(),
        label: Some("AI 생성 이미지".into()),
    }
}
