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

fn board() -> atelier_compose::storyboard::Storyboard {
    use atelier_compose::storyboard::{Cut, Storyboard};
    let cuts = [
        ("새벽 한강, 러너가 운동화 끈을 묶는다", "클로즈업, 로우 앵글", "오늘도 나를 앞지르는 순간", 3.0),
        ("햇살을 가르며 다리 위를 달린다", "트래킹 숏, 측면", "가볍게, 더 멀리", 4.0),
        ("땀방울이 빛나는 얼굴", "익스트림 클로즈업 · slow motion", "한계는 어제의 이야기", 2.5),
        ("결승선 대신 떠오르는 해", "와이드 숏, 드론 상승", "AIR RUN 7 — 지금 만나보세요 🏃", 3.5),
        ("제품 패키지와 로고", "탑 뷰, 고정", "자세한 내용은 atelier.example", 2.0),
    ];
    Storyboard {
        title: "AIR RUN 7 런칭 캠페인 · 15초 TV 광고".into(),
        subtitle: "브리프: 출근 전 러닝을 즐기는 2030 직장인 · 톤: 상쾌하고 힘찬".into(),
        cuts: cuts
            .iter()
            .enumerate()
            .map(|(i, (scene, camera, copy, d))| Cut {
                image: Some(Arc::new(common::picture(i as u32, 640, 360 + 60 * (i as u32 % 3)))),
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

#[test]
fn storyboard_sheet_matches_its_golden() {
    let mut fonts = Fonts::new();
    let scene = atelier_compose::storyboard::sheet(&mut fonts, &board()).expect("sheet");
    let img = scene.render(&mut fonts, RasterOptions { scale: 1.5, ..RasterOptions::default() }).expect("render");
    common::assert_golden("storyboard-sheet", &img);
}

fn comic() -> atelier_compose::comic::Comic {
    use atelier_compose::comic::{Comic, Panel};
    let texts = [
        (Some("월요일 아침, 알람을 세 번이나 껐다."), Some("5분만 더…")),
        (Some("지각 직전, 버스를 향해 전력 질주!"), None),
        (None, Some("기사님 잠깐만요!! 🚌")),
        (Some("결국 오늘도 회사 앞 카페에서 하루 시작 ☕"), Some("그래도 커피는 맛있다")),
    ];
    Comic {
        title: Some("나의 월요일 일기".into()),
        panels: texts
            .iter()
            .enumerate()
            .map(|(i, (c, s))| Panel {
                image: Arc::new(common::picture(i as u32 + 1, 512, 512)),
                caption: c.map(str::to_string),
                speech: s.map(str::to_string),
            })
            .collect(),
        label: Some("AI 생성 이미지".into()),
    }
}

#[test]
fn comic_grid_and_webtoon_match_their_goldens() {
    let mut fonts = Fonts::new();
    let page = atelier_compose::comic::grid_page(&mut fonts, &comic(), 800.0).expect("grid");
    common::assert_golden("comic-grid", &page.render(&mut fonts, RasterOptions::default()).expect("render"));
    let strip = atelier_compose::comic::webtoon(&mut fonts, &comic(), 480.0).expect("webtoon");
    common::assert_golden("comic-webtoon", &strip.render(&mut fonts, RasterOptions::default()).expect("render"));
}
