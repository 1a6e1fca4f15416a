//! The ticket steps on the sd15-tiny fixture without a server: a full run, a re-run of one
//! step, resuming after an interrupted run, and blocked text that never reaches a model.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use atelier_engine::LoadOptions;
use atelier_platform::PlatformError;
use atelier_workflows::tickets::local::LocalHost;
use atelier_workflows::tickets::store::{TicketInput, TicketRecord, TicketStatus};
use atelier_workflows::tickets::{Campaign, CampaignSpec, Step, TicketWorkflow};
use atelier_workflows::{Guard, ModelRegistry};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn workflow(writer: atelier_writer::Writer) -> TicketWorkflow {
    let models = Arc::new(ModelRegistry::new(
        vec![fixtures().join("sd15-tiny")],
        LoadOptions::default(),
        1,
    ));
    TicketWorkflow {
        models,
        guard: Arc::new(Guard::new(Default::default(), None, 7).expect("guard")),
        writer,
        presets: Arc::new(atelier_compose::ticket::Presets::builtin().expect("presets")),
        fonts: Arc::new(Mutex::new(atelier_compose::Fonts::new())),
        share_base: "https://tickets.example".into(),
    }
}

fn campaign(extra: serde_json::Value) -> Campaign {
    let mut v = json!({"name": "c", "brand": "한빛생명", "generation": {"steps": 2}, "scale": 0.25,
                       "copy": "supplied", "style_prompt": "film still"});
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let spec = CampaignSpec::from_json(v).expect("spec");
    spec.check().expect("valid");
    Campaign {
        id: "cmp_test".into(),
        tenant_id: "t".into(),
        version: 1,
        spec,
        created_at: 0,
        updated_at: 0,
    }
}

fn record(input: TicketInput) -> TicketRecord {
    TicketRecord {
        id: "tkt_test".into(),
        tenant_id: "t".into(),
        campaign_id: "cmp_test".into(),
        campaign_version: 1,
        share_id: "s".repeat(22),
        batch_id: None,
        line: None,
        job_id: None,
        status: TicketStatus::Processing,
        input,
        steps: Vec::new(),
        file: None,
        revoked_at: None,
        created_at: 0,
        updated_at: 0,
    }
}

fn input(text: &str) -> TicketInput {
    TicketInput {
        name: "김하늘".into(),
        text: text.into(),
        title: Some("한강의 주말".into()),
        tagline: Some("평범해서 더 빛나는 하루".into()),
        seed: Some(3),
        ..TicketInput::default()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn supplied_copy_runs_every_step_and_one_step_reruns_alone() {
    let w = workflow(atelier_writer::Writer::new(None));
    let c = campaign(json!({"presets": ["classic", "retro"]}));
    let host = LocalHost::new("job-1");
    let mut t = record(input("weekend bike rides by the river"));
    rt().block_on(w.run(&host, &c, &mut t, None))
        .expect("ticket");
    assert_eq!(t.status, TicketStatus::Ready);
    let names: Vec<Step> = t.steps.iter().map(|r| r.step).collect();
    assert_eq!(names, Step::ALL);
    let copy = &t.steps[1].output;
    assert_eq!(copy["source"], "supplied");
    // No language model: the customer's own words are the image prompt, plus the style.
    assert_eq!(copy["image_prompt_source"], "text");
    assert_eq!(
        t.steps[3].output["prompt"],
        "weekend bike rides by the river, film still"
    );
    let preset = t.steps[5].output["preset"]
        .as_str()
        .expect("preset")
        .to_owned();
    assert!(["classic", "retro"].contains(&preset.as_str()));
    let png = host.file(t.file.as_deref().expect("file")).expect("bytes");
    let img = image::load_from_memory(&png).expect("png");
    assert_eq!(t.steps[6].output["width"], img.width());
    let report = atelier_provenance::inspect(&png).expect("inspect");
    assert_eq!(
        report.provenance.expect("provenance").label.as_deref(),
        Some("AI 생성")
    );

    // Re-run from preset with another layout: copy and picture stay, later steps are new.
    let other = if preset == "classic" {
        "retro"
    } else {
        "classic"
    };
    let before = t.steps.clone();
    t.input.preset = Some(other.into());
    rt().block_on(w.run(&host, &c, &mut t, Some(Step::Preset)))
        .expect("re-run");
    assert_eq!(t.steps[..5], before[..5], "steps before preset are kept");
    assert_eq!(t.steps[5].output["preset"], other);
    assert_ne!(t.steps[7].output["file"], before[7].output["file"]);
    assert_eq!(w.models.generations(), 1, "the picture was not drawn again");

    // A preset the campaign does not allow is an input error naming the field.
    t.input.preset = Some("landscape".into());
    let e = rt()
        .block_on(w.run(&host, &c, &mut t, Some(Step::Preset)))
        .unwrap_err();
    assert!(
        matches!(&e, PlatformError::InvalidInput { field, .. } if field == "input.preset"),
        "{e}"
    );
    assert_eq!(t.status, TicketStatus::Failed);
    assert_eq!(t.steps.last().expect("record").status, "failed");
}

#[test]
fn an_interrupted_ticket_resumes_at_its_first_missing_step() {
    let w = workflow(atelier_writer::Writer::new(None));
    let c = campaign(json!({}));
    let host = LocalHost::new("job-2");
    let mut t = record(input("baking bread at dawn"));
    rt().block_on(w.run(&host, &c, &mut t, None))
        .expect("ticket");
    let full = t.steps.clone();
    // As if the process died after the render step was saved.
    t.steps.truncate(7);
    t.status = TicketStatus::Processing;
    rt().block_on(w.run(&host, &c, &mut t, None))
        .expect("resume");
    assert_eq!(t.steps[..7], full[..7]);
    assert_eq!(t.steps.len(), 9);
    assert_eq!(w.models.generations(), 1, "resuming did not generate again");
}

#[test]
fn blocked_text_never_reaches_a_model() {
    let w = workflow(atelier_writer::Writer::new(None));
    let c = campaign(json!({"safety": {"deny": [{"category": "brand", "terms": ["경쟁사"]}]}}));
    let host = LocalHost::new("job-3");
    for (text, category) in [
        ("주말마다 필로폰 투약하는 게 낙이에요", "drugs"),
        ("경쟁사 보험으로 갈아탔어요", "brand"),
    ] {
        let mut t = record(input(text));
        let e = rt().block_on(w.run(&host, &c, &mut t, None)).unwrap_err();
        match e {
            PlatformError::ContentBlocked(b) => assert_eq!(b.category, category),
            other => panic!("expected a block, got {other}"),
        }
        assert_eq!(t.steps.len(), 1);
        assert_eq!(
            t.steps[0].error.as_ref().expect("error")["category"],
            category
        );
    }
    assert_eq!(w.models.generations(), 0);
    assert!(w.models.resident().is_empty(), "no model was even loaded");
}

#[test]
fn llm_copy_without_a_model_says_how_to_configure_one() {
    let w = workflow(atelier_writer::Writer::new(None));
    let c = campaign(json!({"copy": "llm"}));
    let host = LocalHost::new("job-4");
    let mut i = input("hiking");
    i.title = None;
    let mut t = record(i);
    let e = rt().block_on(w.run(&host, &c, &mut t, None)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("--llm"), "{msg}");
    assert_eq!(w.models.generations(), 0);
}
