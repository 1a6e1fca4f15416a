//! Every writer task on tiny random-weight Qwen2 models (safetensors and GGUF), 20 seeds each:
//! the output must parse and validate against the task's schema. Random weights write
//! nonsense; the grammar guarantees the structure, which is what is asserted.

use std::sync::{Arc, OnceLock};

use atelier_llm::schema::Validator;
use atelier_llm::tiny::{build, TinySpec};
use atelier_llm::Device;
use atelier_llm::{Llm, LocalModel};
use atelier_writer::tasks::{TAGLINE_MAX, TITLE_MAX};
use atelier_writer::{
    ComicPanels, ComicPanelsInput, ImagePrompt, ImagePromptInput, Storyboard, StoryboardInput,
    Task, TicketCopy, TicketCopyInput, WriteOptions, Writer, WriterError,
};

const SEEDS: u64 = 20;

fn writers() -> &'static [Writer; 2] {
    static W: OnceLock<(tempfile::TempDir, [Writer; 2])> = OnceLock::new();
    &W.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let m = build(dir.path(), &TinySpec::default()).unwrap();
        let load = |p: &std::path::Path| {
            Writer::new(Some(Llm::Local(Arc::new(
                LocalModel::load(p, &Device::Cpu).unwrap(),
            ))))
        };
        let w = [load(&m.folder), load(&m.gguf)];
        (dir, w)
    })
    .1
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs task `T` for 20 seeds on one model; returns the outputs after checking each.
fn run<T: Task + std::fmt::Debug>(w: &Writer, input: impl Fn(u64) -> T::Input) -> Vec<T> {
    let rt = rt();
    (0..SEEDS)
        .map(|seed| {
            let input = input(seed);
            let opts = WriteOptions {
                seed: Some(seed),
                ..Default::default()
            };
            let out = rt
                .block_on(w.write::<T>(&input, &opts))
                .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", T::NAME));
            assert_eq!(out.attempts, 1, "a local model never needs a repair");
            // The normalized value still validates against the task's schema.
            let v = serde_json::to_value(&out.value).unwrap();
            Validator::new(&T::schema(&input))
                .unwrap()
                .check(&v)
                .unwrap_or_else(|e| panic!("{} seed {seed}: {e}\n{v}", T::NAME));
            out.value
        })
        .collect()
}

fn image_prompt(w: &Writer) {
    let outs = run::<ImagePrompt>(w, |seed| ImagePromptInput {
        text: format!("비 오는 날 우산을 쓴 고양이 {seed}"),
        style: (seed % 2 == 0).then(|| "watercolor, pastel".to_owned()),
        keep: vec!["ghibli style".into()],
    });
    for (seed, o) in outs.iter().enumerate() {
        assert!(o.prompt.contains("ghibli style"));
        if seed % 2 == 0 {
            assert!(o.prompt.contains("watercolor") && o.prompt.contains("pastel"));
        }
    }
}

fn ticket_copy(w: &Writer) {
    for o in run::<TicketCopy>(w, |seed| TicketCopyInput {
        lifestyle: format!("주말마다 가족과 캠핑을 가요. 아이들이 {seed}살이 되었어요."),
        name: Some("김하늘".into()),
        brand: Some("한빛생명".into()),
        style: None,
    }) {
        assert!((1..=TITLE_MAX).contains(&o.title.chars().count()));
        assert!((1..=TAGLINE_MAX).contains(&o.tagline.chars().count()));
    }
}

fn comic_panels(w: &Writer) {
    for o in run::<ComicPanels>(w, |_| ComicPanelsInput {
        diary: "오늘은 비가 와서 우산을 쓰고 출근했다. 퇴근길에 고양이를 만났다.".into(),
        style: Some("soft webtoon".into()),
        panels: 4,
    }) {
        assert_eq!(o.panels.len(), 4);
    }
}

fn storyboard(w: &Writer) {
    let cuts = |seed: u64| 4 + (seed % 5) as usize;
    let outs = run::<Storyboard>(w, |seed| StoryboardInput {
        product: "무선 이어폰 에어소리".into(),
        category: "electronics".into(),
        brief: "하루 종일 편안한 착용감과 선명한 소리를 강조".into(),
        tone: "energetic".into(),
        cuts: cuts(seed),
        target_seconds: (seed % 2 == 0).then_some(30.0),
        style: None,
    });
    for (seed, o) in outs.iter().enumerate() {
        assert_eq!(o.cuts.len(), cuts(seed as u64));
        let numbers: Vec<u32> = o.cuts.iter().map(|c| c.number).collect();
        assert_eq!(numbers, (1..=o.cuts.len() as u32).collect::<Vec<_>>());
    }
}

#[test]
fn image_prompt_safetensors() {
    image_prompt(&writers()[0]);
}
#[test]
fn image_prompt_gguf() {
    image_prompt(&writers()[1]);
}
#[test]
fn ticket_copy_safetensors() {
    ticket_copy(&writers()[0]);
}
#[test]
fn ticket_copy_gguf() {
    ticket_copy(&writers()[1]);
}
#[test]
fn comic_panels_safetensors() {
    comic_panels(&writers()[0]);
}
#[test]
fn comic_panels_gguf() {
    comic_panels(&writers()[1]);
}
#[test]
fn storyboard_safetensors() {
    storyboard(&writers()[0]);
}
#[test]
fn storyboard_gguf() {
    storyboard(&writers()[1]);
}

#[test]
fn no_model_is_a_clear_error_not_a_canned_text() {
    let w = Writer::new(None);
    let input = TicketCopyInput {
        lifestyle: "캠핑".into(),
        name: None,
        brand: None,
        style: None,
    };
    let err = rt()
        .block_on(w.write::<TicketCopy>(&input, &WriteOptions::default()))
        .unwrap_err();
    assert!(matches!(
        err,
        WriterError::NoModel {
            task: "ticket_copy",
            ..
        }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("--llm") && msg.contains("title, tagline"),
        "{msg}"
    );
    // Input problems are reported before the missing model.
    let bad = TicketCopyInput {
        lifestyle: String::new(),
        ..input
    };
    let err = rt()
        .block_on(w.write::<TicketCopy>(&bad, &WriteOptions::default()))
        .unwrap_err();
    assert!(err.to_string().starts_with("lifestyle:"), "{err}");
}

#[test]
fn prompts_render_with_the_input() {
    let msgs = Writer::messages::<Storyboard>(&StoryboardInput {
        product: "에어소리".into(),
        category: "electronics".into(),
        brief: "착용감".into(),
        tone: "premium".into(),
        cuts: 6,
        target_seconds: Some(30.0),
        style: None,
    })
    .unwrap();
    assert!(msgs[0].content.contains("exactly 6 cuts") && msgs[0].content.contains("30 seconds"));
    assert!(msgs[0].content.contains("premium"));
    assert!(msgs[1].content.contains("에어소리") && msgs[1].content.contains("<brief>"));
}
