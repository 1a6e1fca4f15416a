//! End-to-end tests of the `atelier` binary on the fixture models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn atelier(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(args)
        .output()
        .expect("atelier runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Winograd F(4x4, 3x3) on every stride-1 3x3 convolution (forced: the fixtures are below the
/// size where `auto` measures) still passes every parity row at the README's tolerances.
#[test]
fn parity_holds_with_winograd_convolutions() {
    for name in ["sd15-tiny", "sdxl-tiny"] {
        let model = fixtures().join(name);
        let reference = model.join("reference/reference.safetensors");
        let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .args(["parity", "--model"])
            .arg(&model)
            .arg("--reference")
            .arg(&reference)
            .env("ATELIER_WINOGRAD", "on")
            .env("ATELIER_TUNING_FILE", "")
            .output()
            .expect("atelier runs");
        let out = text(&o);
        assert!(
            o.status.success(),
            "{name}: parity with Winograd failed:\n{out}"
        );
        let rows = out.lines().filter(|l| l.contains("end-to-end PNG")).count();
        assert!(rows >= 12, "{name}: only {rows} end-to-end rows:\n{out}");
    }
}

/// Every case of both shipped references, every scheduler and the Turbo 1-step case, through
/// `atelier parity`: exit 0 only when all stages are within the fixtures README's tolerances.
#[test]
fn parity_passes_on_every_shipped_reference() {
    for name in ["sd15-tiny", "sdxl-tiny"] {
        let model = fixtures().join(name);
        let reference = model.join("reference/reference.safetensors");
        let o = atelier(&[
            "parity",
            "--model",
            model.to_str().unwrap(),
            "--reference",
            reference.to_str().unwrap(),
        ]);
        let out = text(&o);
        println!("{out}");
        assert!(o.status.success(), "{name}: parity failed:\n{out}");
        for case in [
            "_ddim",
            "_euler ",
            "_euler_a",
            "_dpmpp2m_karras",
            "_lcm",
            "_turbo_euler_trailing_1step",
        ] {
            for size in ["native_", "alt_"] {
                let hits = out
                    .lines()
                    .filter(|l| {
                        l.starts_with(size)
                            && format!("{l} ").contains(case)
                            && l.contains("end-to-end PNG")
                    })
                    .count();
                assert_eq!(hits, 1, "{name}: no end-to-end row for {size}*{case}");
            }
        }
        assert!(out.contains(", 0 failed"), "{out}");
    }
}

#[test]
fn generate_is_deterministic_and_seed_sensitive() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["sd15-tiny", "sdxl-tiny"] {
        let model = fixtures().join(name);
        let run = |seed: &str, file: &str| -> Vec<u8> {
            let out = tmp.path().join(file);
            let o = atelier(&[
                "generate",
                "--model",
                model.to_str().unwrap(),
                "--prompt",
                "a photo ticket",
                "--seed",
                seed,
                "--steps",
                "4",
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", text(&o));
            assert!(text(&o).contains("generated 1 image(s)"), "{}", text(&o));
            std::fs::read(out).unwrap()
        };
        let a = run("7", &format!("{name}-a.png"));
        let b = run("7", &format!("{name}-b.png"));
        let c = run("8", &format!("{name}-c.png"));
        assert!(a.starts_with(b"\x89PNG"));
        assert_eq!(a, b, "{name}: same seed, different bytes");
        assert_ne!(a, c, "{name}: different seeds, same bytes");
    }
}

#[test]
fn generate_rejects_bad_input_with_named_field() {
    let model = fixtures().join("sd15-tiny");
    let m = model.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--width", "100"], "width"),
        (&["--steps", "0"], "steps"),
        (&["--scheduler", "heun"], "unknown scheduler"),
        (&["--batch", "0"], "batch_size"),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "generate",
            "--model",
            m,
            "--prompt",
            "x",
            "--out",
            "/dev/null",
        ];
        args.extend_from_slice(extra);
        let o = atelier(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{extra:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
    let o = atelier(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("/nonexistent/model"), "{}", text(&o));
}

#[test]
fn models_list_describes_fixture_folders() {
    let o = atelier(&["models", "list", "--dir", fixtures().to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("sd15-tiny") && out.contains("Stable Diffusion 1.x"),
        "{out}"
    );
    assert!(
        out.contains("sdxl-tiny") && out.contains("Stable Diffusion XL"),
        "{out}"
    );
    let empty = tempfile::tempdir().unwrap();
    let o = atelier(&["models", "list", "--dir", empty.path().to_str().unwrap()]);
    assert!(text(&o).contains("no models in"), "{}", text(&o));
}

/// `atelier screen`: one JSON decision per input line, with a campaign policy layered on top.
#[test]
fn screen_prints_one_decision_per_line_and_applies_a_policy() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("campaign.toml");
    std::fs::write(
        &policy,
        "allow = [\"cocaine\"]\ndeny = [{ category = \"brand\", terms = [\"rivalcola\"] }]\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atelier"))
            .arg("screen")
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                "a n.u.d.e woman\n데이터 분석\nㅅㅂ 진짜\ncocaine on a mirror\nRivalCola can\n"
                    .as_bytes(),
            )
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let d = run(&[]);
    assert_eq!(d.len(), 5);
    assert_eq!(d[0]["allowed"], false);
    assert_eq!(d[0]["category"], "sexual");
    assert_eq!(d[0]["term"], "nude");
    assert_eq!(d[0]["span"], serde_json::json!([2, 9]));
    assert_eq!(d[1]["allowed"], true);
    assert_eq!(d[2]["category"], "profanity");
    assert_eq!(d[3]["category"], "drugs");
    assert_eq!(d[4]["allowed"], true);
    let d = run(&["--policy", policy.to_str().unwrap()]);
    assert_eq!(d[3]["allowed"], true, "the campaign allows it");
    assert_eq!(d[4]["category"], "brand");
    let bad = atelier(&["screen", "--policy", "/nonexistent.toml"]);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("nonexistent.toml"));
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples")
}

/// `atelier compose` renders the committed examples' inputs: a ticket (auto preset), a storyboard
/// sheet as PNG and PDF, a webtoon strip and a short animatic; bad input names what is wrong.
#[test]
fn compose_renders_tickets_sheets_comics_and_animatics() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ex = examples();
    let input = |name: &str| ex.join("inputs").join(name).to_str().unwrap().to_string();

    let o = atelier(&[
        "compose",
        "ticket",
        "--image",
        &input("lake-landscape.png"),
        "--title",
        "여름 밤의 러닝",
        "--tagline",
        "한강에서",
        "--qr",
        "https://atelier.example/s/1",
        "--scale",
        "0.5",
        "-o",
        &out("t.png"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["preset"], "landscape",
        "a landscape picture gets the landscape preset: {v}"
    );
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(960), Some(540))
    );
    assert!(image::open(out("t.png")).is_ok());

    let spec = ex.join("storyboard.json");
    let o = atelier(&[
        "compose",
        "storyboard",
        spec.to_str().unwrap(),
        "-o",
        &out("s.png"),
        "-o",
        &out("s.pdf"),
        "--dpi",
        "72",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(image::open(out("s.png")).unwrap().width(), 842);
    assert!(std::fs::read(out("s.pdf")).unwrap().starts_with(b"%PDF-"));

    let spec = ex.join("comic.json");
    let o = atelier(&[
        "compose",
        "comic",
        spec.to_str().unwrap(),
        "--layout",
        "webtoon",
        "--width",
        "400",
        "-o",
        &out("w.png"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let w = image::open(out("w.png")).unwrap();
    assert!(
        w.width() == 400 && w.height() > 1200,
        "{}x{}",
        w.width(),
        w.height()
    );

    let spec = ex.join("storyboard.json");
    let o = atelier(&[
        "compose",
        "animatic",
        spec.to_str().unwrap(),
        "--width",
        "160",
        "--height",
        "90",
        "--fps",
        "4",
        "-o",
        &out("a.gif"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["frames"], 80, "20 s at 4 fps: {v}");

    // Bad input: an unknown preset, an odd video width, a storyboard with too few cuts.
    let o = atelier(&[
        "compose",
        "ticket",
        "--image",
        &input("red-square.png"),
        "--title",
        "x",
        "--preset",
        "nope",
        "-o",
        &out("x.png"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown preset \"nope\""), "{}", text(&o));
    let o = atelier(&[
        "compose",
        "animatic",
        spec.to_str().unwrap(),
        "--width",
        "161",
        "-o",
        &out("x.mp4"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("width: an even number"), "{}", text(&o));
    let short = dir.path().join("short.json");
    std::fs::write(&short, r#"{"title": "t", "cuts": [{"duration_s": 1}]}"#).unwrap();
    let o = atelier(&[
        "compose",
        "storyboard",
        short.to_str().unwrap(),
        "-o",
        &out("x.pdf"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("cuts: a storyboard has 4 to 8 cuts, got 1"),
        "{}",
        text(&o)
    );
}

/// `atelier write`: a clear error without a model, the schema on request, and schema-valid
/// JSON from a tiny random-weight Qwen2 (GGUF) with the same output for the same seed.
#[test]
fn write_runs_tasks_and_says_when_no_model_is_configured() {
    let input = r#"{"lifestyle": "주말마다 가족과 캠핑을 가요", "brand": "한빛생명"}"#;
    let o = Command::new(env!("CARGO_BIN_EXE_atelier"))
        .args(["write", "ticket_copy", "--input", input])
        .env_remove("ATELIER_LLM")
        .env_remove("ATELIER_LLM_URL")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("needs a language model") && out.contains("--llm"),
        "{out}"
    );
    assert!(o.stdout.is_empty(), "nothing may be printed as if written");

    let o = atelier(&["write", "ticket_copy", "--schema", "--input", input]);
    assert!(o.status.success(), "{}", text(&o));
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema["properties"]["title"]["maxLength"], 20);

    let tmp = tempfile::tempdir().unwrap();
    let tiny = atelier_llm::tiny::build(tmp.path(), &Default::default()).unwrap();
    let run = |seed: &str| {
        let o = atelier(&[
            "write",
            "ticket_copy",
            "--llm",
            tiny.gguf.to_str().unwrap(),
            "--seed",
            seed,
            "--input",
            input,
        ]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let a = run("3");
    println!("{a}");
    assert_eq!(a["model"], "tiny-qwen2-q8_0");
    let title = a["value"]["title"].as_str().unwrap();
    assert!((1..=20).contains(&title.chars().count()), "{title}");
    assert!((1..=40).contains(&a["value"]["tagline"].as_str().unwrap().chars().count()));
    assert_eq!(run("3"), a, "same seed, different answer");

    let o = atelier(&["write", "poem", "--schema", "--input", "{}"]);
    assert!(!o.status.success() && text(&o).contains("unknown writer task"));
}

/// `atelier ticket`: a campaign file and a customer's text make a ticket PNG without the
/// server; a blocked text fails before any model runs, naming the category.
#[test]
fn ticket_makes_one_ticket_without_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let campaign = tmp.path().join("campaign.toml");
    std::fs::write(
        &campaign,
        r##"
name = "봄 캠페인"
brand = "한빛생명"
copy = "supplied"
style_prompt = "film still"
scale = 0.25
presets = ["minimal"]
[generation]
steps = 2
width = 64
height = 64
[palette]
primary = "#1f4e79"
[fields]
date = "2026.12.24"
"##,
    )
    .unwrap();
    let out = tmp.path().join("ticket.png");
    let models = fixtures().join("sd15-tiny");
    let o = atelier(&[
        "ticket",
        "--campaign",
        campaign.to_str().unwrap(),
        "--name",
        "김하늘",
        "--text",
        "weekend bike rides by the river",
        "--title",
        "한강의 주말",
        "--tagline",
        "평범해서 더 빛나는 하루",
        "--seed",
        "5",
        "--models",
        models.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let steps: serde_json::Value = serde_json::from_slice(&o.stdout).expect("step records");
    assert_eq!(steps.as_array().unwrap().len(), 9);
    assert_eq!(steps[5]["output"]["preset"], "minimal");
    let png = std::fs::read(&out).unwrap();
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (270, 338));
    let prov = atelier_provenance::inspect(&png)
        .unwrap()
        .provenance
        .unwrap();
    assert_eq!(prov.label.as_deref(), Some("AI 생성"));
    assert_eq!(prov.seed, 5);

    let o = atelier(&[
        "ticket",
        "--campaign",
        campaign.to_str().unwrap(),
        "--name",
        "박민수",
        "--text",
        "주말마다 필로폰 투약하는 게 낙이에요",
        "--title",
        "제목",
        "--tagline",
        "문구",
        "--models",
        models.to_str().unwrap(),
        "-o",
        tmp.path().join("blocked.png").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("drugs"), "{}", text(&o));
    assert!(!tmp.path().join("blocked.png").exists());
}
