//! Encodes a short animatic to GIF, WebP and MP4 and checks each file with a real decoder:
//! `ffprobe` (Debian's ffmpeg) for codec, frame count, duration and size; for animated WebP, which
//! ffmpeg 5.1 cannot decode, `webpmux -info` (Debian's webp) reads the frames and their durations.
//!
//! The tools are installed by `.ci/run`; without them locally the test says so and passes only
//! when not under CI (`CI` unset).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use atelier_compose::animatic::{encode_file, Animatic, Format, Framing, Motion, Shot, Transition};
use atelier_compose::Fonts;

fn animatic() -> Animatic {
    let shot = |seed, d, caption: Option<&str>, transition, motion| Shot {
        image: Arc::new(common::picture(seed, 640, 480)),
        duration_s: d,
        caption: caption.map(str::to_string),
        transition,
        motion,
    };
    Animatic {
        shots: vec![
            shot(
                0,
                1.0,
                Some("새벽 한강을 달리는 러너"),
                Transition::Cut,
                None,
            ),
            shot(
                1,
                1.5,
                Some("가볍게, 더 멀리 🏃"),
                Transition::Crossfade { seconds: 0.5 },
                None,
            ),
            shot(
                3,
                0.5,
                None,
                Transition::Cut,
                Some(Motion {
                    from: Framing {
                        x: 0.3,
                        y: 0.5,
                        zoom: 1.5,
                    },
                    to: Framing {
                        x: 0.7,
                        y: 0.5,
                        zoom: 1.2,
                    },
                }),
            ),
        ],
        width: 320,
        height: 240,
        fps: 24,
        label: Some("AI 생성".into()),
    }
}

fn tool(name: &str) -> bool {
    let ok = Command::new(name).arg("-version").output().is_ok()
        || Command::new(name).arg("-h").output().is_ok();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required under CI (.ci/run installs it)"
        );
        eprintln!("skipping: {name} not installed (apt install ffmpeg webp)");
    }
    ok
}

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,width,height,nb_read_frames,duration:format=duration,format_name")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or(f64::NAN)
}

#[test]
fn gif_and_mp4_pass_ffprobe() {
    if !tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let anim = animatic();
    let mut fonts = Fonts::new();
    assert_eq!(anim.frame_count(), 72);
    for (format, ext, codec) in [(Format::Gif, "gif", "gif"), (Format::Mp4, "mp4", "h264")] {
        let path = dir.path().join(format!("a.{ext}"));
        let mut last = 0;
        let n = encode_file(&mut fonts, &anim, format, &path, |done, total| {
            assert_eq!(total, 72);
            last = done;
        })
        .expect("encode");
        assert_eq!((n, last), (72, 72));
        let info = ffprobe(&path);
        let s = &info["streams"][0];
        eprintln!("{ext}: {info}");
        assert_eq!(s["codec_name"], codec, "{ext}");
        assert_eq!(
            (s["width"].as_u64(), s["height"].as_u64()),
            (Some(320), Some(240)),
            "{ext}"
        );
        assert_eq!(num(&s["nb_read_frames"]), 72.0, "{ext} frame count");
        let duration = num(&info["format"]["duration"]);
        assert!((duration - 3.0).abs() < 0.01, "{ext} duration {duration}");
    }
}

#[test]
fn webp_passes_webpmux_and_ffprobe_sees_a_webp() {
    if !tool("webpmux") || !tool("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("a.webp");
    let mut fonts = Fonts::new();
    encode_file(&mut fonts, &animatic(), Format::Webp, &path, |_, _| {}).expect("encode");
    let out = Command::new("webpmux")
        .arg("-info")
        .arg(&path)
        .output()
        .expect("webpmux");
    assert!(
        out.status.success(),
        "webpmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("Canvas size: 320 x 240"), "{text}");
    assert!(text.contains("Features present: animation"), "{text}");
    assert!(text.contains("Number of frames: 72"), "{text}");
    // Frame table rows: "  1:   320   240    no 0x00000000 ...  duration ..." — sum the durations.
    let header = text
        .lines()
        .find(|l| l.contains("duration"))
        .expect("frame table header");
    let col = header
        .split_whitespace()
        .position(|c| c == "duration")
        .expect("duration column");
    let total_ms: u64 = text
        .lines()
        .filter(|l| {
            l.trim_start()
                .split(':')
                .next()
                .is_some_and(|n| n.trim().parse::<u32>().is_ok())
        })
        .filter_map(|l| {
            l.split_whitespace()
                .nth(col)
                .and_then(|d| d.parse::<u64>().ok())
        })
        .sum();
    assert_eq!(total_ms, 3000, "{text}");
    // ffprobe (ffmpeg 5.1) identifies the container and codec even though it cannot decode ANMF.
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)
        .output()
        .expect("ffprobe");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "webp");
}
