//! Golden images for every preset and layout. Regenerate with
//! `ATELIER_BLESS=1 cargo test -p atelier-compose --test golden` and review the PNGs in
//! `crates/compose/tests/goldens/` before committing.

mod common;

use std::sync::Arc;

use atelier_compose::ticket::{ticket, Presets, TicketRequest};
use atelier_compose::{Fonts, RasterOptions};

fn ticket_request(preset: &str, w: u32, h: u32, seed: u32) -> TicketRequest {
    let mut req = TicketRequest {
        image: Some(Arc::new(common::picture(seed, w, h))),
        qr_url: Some("https://atelier.example/s/7f3a9c".into()),
        logo: Some(Arc::new(common::logo(160, 160))),
        label: Some("AI 생성 이미지".into()),
        preset: Some(preset.into()),
        ..TicketRequest::default()
    };
    for (k, v) in [
        ("title", "한여름 밤의 자전거 여행"),
        (
            "tagline",
            "퇴근 후 한강에서 만난 우리만의 영화 같은 순간 🎬",
        ),
        ("date", "2026.07.14"),
        ("time", "19:30"),
        ("venue", "한강 시네마 3관 (여의도)"),
        ("seat", "G열 12번"),
    ] {
        req.fields.insert(k.into(), v.into());
    }
    req
}

#[test]
fn ticket_presets_match_their_goldens() {
    let presets = Presets::builtin().expect("presets");
    let mut fonts = Fonts::new();
    for (name, w, h, seed) in [
        ("classic", 768, 640, 0),
        ("landscape", 1024, 1000, 1),
        ("minimal", 1080, 860, 3),
        ("retro", 880, 800, 2),
    ] {
        let t = ticket(&mut fonts, &presets, &ticket_request(name, w, h, seed)).expect("ticket");
        let img = t
            .scene
            .render(
                &mut fonts,
                RasterOptions {
                    scale: 0.5,
                    ..RasterOptions::default()
                },
            )
            .expect("render");
        common::assert_golden(&format!("ticket-{name}"), &img);
    }
}

#[test]
fn storyboard_sheet_matches_its_golden() {
    let mut fonts = Fonts::new();
    let scene = atelier_compose::storyboard::sheet(&mut fonts, &common::board()).expect("sheet");
    let img = scene
        .render(
            &mut fonts,
            RasterOptions {
                scale: 1.5,
                ..RasterOptions::default()
            },
        )
        .expect("render");
    common::assert_golden("storyboard-sheet", &img);
}

#[test]
fn comic_grid_and_webtoon_match_their_goldens() {
    let mut fonts = Fonts::new();
    let page =
        atelier_compose::comic::grid_page(&mut fonts, &common::comic(), 800.0).expect("grid");
    common::assert_golden(
        "comic-grid",
        &page
            .render(&mut fonts, RasterOptions::default())
            .expect("render"),
    );
    let strip =
        atelier_compose::comic::webtoon(&mut fonts, &common::comic(), 480.0).expect("webtoon");
    common::assert_golden(
        "comic-webtoon",
        &strip
            .render(&mut fonts, RasterOptions::default())
            .expect("render"),
    );
}

/// Writes the sample pictures that `docs/examples/` is rendered from (run on demand:
/// `cargo test -p atelier-compose --test golden -- --ignored example_inputs`).
#[test]
#[ignore]
fn example_inputs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/inputs");
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, seed, w, h) in [
        ("sunset-portrait", 0, 768, 1024),
        ("lake-landscape", 1, 1024, 640),
        ("night-square", 2, 768, 768),
        ("red-square", 3, 768, 768),
    ] {
        common::picture(seed, w, h)
            .save(dir.join(format!("{name}.png")))
            .expect("save");
    }
    for i in 0..8u32 {
        common::picture(i, 768, 432 + 48 * (i % 3))
            .save(dir.join(format!("cut{}.png", i + 1)))
            .expect("save");
    }
    common::logo(256, 256)
        .save(dir.join("logo.png"))
        .expect("save");
}
