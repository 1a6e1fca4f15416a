//! The storyboard PDF: A4 landscape, text selectable (extracted by poppler's `pdftotext`) and every
//! font embedded (`pdffonts` reports `emb yes`). Debian's poppler-utils is installed by `.ci/run`.

mod common;

use std::process::Command;

use atelier_compose::{Fonts, Scene};

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("-v").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is required under CI (.ci/run installs poppler-utils)"
        );
        eprintln!("skipping: {tool} not installed (apt install poppler-utils)");
    }
    ok
}

#[test]
fn storyboard_pdf_is_a4_landscape_with_selectable_text_and_embedded_fonts() {
    let mut fonts = Fonts::new();
    let scene = atelier_compose::storyboard::sheet(&mut fonts, &common::board()).expect("sheet");
    let pdf = Scene::render_pdf(&[scene], &fonts, Some("AIR RUN 7 콘티")).expect("pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    if !have("pdftotext") || !have("pdffonts") || !have("pdfinfo") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("board.pdf");
    std::fs::write(&path, &pdf).expect("write");

    let info = String::from_utf8_lossy(
        &Command::new("pdfinfo")
            .arg(&path)
            .output()
            .expect("pdfinfo")
            .stdout,
    )
    .to_string();
    assert!(
        info.lines()
            .any(|l| l.starts_with("Pages:") && l.trim_end().ends_with(" 1")),
        "{info}"
    );
    assert!(
        info.contains("841.89 x 595.28 pts (A4)") || info.contains("842 x 595 pts (A4)"),
        "{info}"
    );

    let text = Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext");
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "AIR RUN 7 런칭 캠페인",
        "CUT 5",
        "카메라 CAMERA",
        "오늘도 나를 앞지르는 순간",
        "익스트림 클로즈업",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} not extractable; got:\n{text}"
        );
    }

    let fonts_out = Command::new("pdffonts")
        .arg(&path)
        .output()
        .expect("pdffonts");
    let table = String::from_utf8_lossy(&fonts_out.stdout);
    let rows: Vec<&str> = table
        .lines()
        .skip(2)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!rows.is_empty(), "{table}");
    for row in &rows {
        // Columns: name, type, encoding, emb, sub, uni, object ID.
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = cols.len();
        assert!(
            n >= 7 && cols[n - 5] == "yes",
            "font not embedded: {row}\n{table}"
        );
    }
    assert!(table.contains("Nanum"), "{table}");
}
