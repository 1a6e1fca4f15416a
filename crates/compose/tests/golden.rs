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
        ("tagline", "퇴근 후 한강에서 만난 우리만의 영화 같은 순간 🎬"),
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
    for (name, w, h, seed) in [("classic", 768, 640, 0), ("landscape", 1024, 1000, 1), ("minimal", 1080, 860, 3), ("retro", 880, 800, 2)] {
        let t = ticket(&mut fonts, &presets, &ticket_request(name, w, h, seed)).expect("ticket");
        let img = t.scene.render(&mut fonts, RasterOptions { scale: 0.5, ..RasterOptions::default() }).expect("render");
        common::assert_golden(&format!("ticket-{name}"), &img);
    }
}
