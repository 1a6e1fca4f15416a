//! Safety and provenance in the job path, on the tiny fixture model with a real SQLite store
//! and a real worker: blocked prompts fail before any network runs, image policies act on a
//! checker's verdicts, and kept images carry provenance and a detectable watermark.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atelier_engine::LoadOptions;
use atelier_platform::artifacts::Artifacts;
use atelier_platform::links::LinkSigner;
use atelier_platform::store::sqlite::SqliteStore;
use atelier_platform::store::NewJob;
use atelier_platform::{App, Job, JobStatus, JobStore, Limits, Platform, PlatformConfig};
use atelier_safety::checker::RandomChecker;
use atelier_safety::{PolicySet, SafetyChecker};
use atelier_workflows::{Guard, ModelRegistry, TextToImage};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

struct Harness {
    platform: Arc<Platform>,
    store: Arc<SqliteStore>,
    models: Arc<ModelRegistry>,
    tenant: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn harness(policies: &str, checker: Option<Arc<SafetyChecker>>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .expect("db"),
    );
    let artifacts = Artifacts::local(dir.path().join("artifacts")).expect("artifacts");
    let models = Arc::new(ModelRegistry::new(
        vec![fixtures()],
        LoadOptions::default(),
        2,
    ));
    let mut guard = Guard::new(
        PolicySet::from_toml("test", policies).expect("policy"),
        checker,
        7,
    )
    .expect("guard");
    guard.c2pa = Some(Arc::new(
        atelier_provenance::c2pa::Signer::ephemeral("atelier.test").expect("c2pa signer"),
    ));
    let apps: Vec<Arc<dyn App>> = vec![Arc::new(TextToImage::new(models.clone(), Arc::new(guard)))];
    let platform = Platform::new(
        store.clone() as Arc<dyn JobStore>,
        artifacts,
        LinkSigner::new(b"test"),
        PlatformConfig {
            limits: Limits::default(),
            allow_private_webhooks: false,
        },
        apps,
    );
    let tenant = store.ensure_tenant("default", 0).await.expect("tenant").id;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(atelier_platform::worker::run_worker(
        platform.clone(),
        "w1".into(),
        atelier_platform::worker::WorkerOptions::any(&platform),
        rx,
    ));
    Harness {
        platform,
        store,
        models,
        tenant,
        _dir: dir,
        _stop: tx,
    }
}

impl Harness {
    async fn run(&self, input: Value) -> Job {
        let (job, _) = self
            .platform
            .submit(NewJob {
                tenant_id: self.tenant.clone(),
                app: "atelier/text-to-image".into(),
                input,
                ..Default::default()
            })
            .await
            .expect("submits");
        self.platform
            .wait(&self.tenant, &job.id, Duration::from_secs(300))
            .await
            .expect("waits")
            .expect("exists")
    }

    async fn file(&self, reference: &Value) -> Vec<u8> {
        let id = reference
            .as_str()
            .and_then(|s| s.strip_prefix(atelier_platform::FILE_REF))
            .expect("file ref");
        let rec = self
            .store
            .get_file(&self.tenant, id)
            .await
            .expect("db")
            .expect("file record");
        self.platform
            .artifacts
            .get(&rec.storage_key)
            .await
            .expect("bytes")
    }
}

fn input(prompt: &str) -> Value {
    json!({"prompt": prompt, "model": "sd15-tiny", "width": 256, "height": 256, "steps": 1, "seed": 3})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_prompt_fails_before_the_text_encoder_and_kept_images_carry_provenance() {
    let h = harness("", None).await;
    // Load the model first so its call counters exist before the blocked job runs.
    let model = h.models.get("sd15-tiny").await.expect("loads");
    assert_eq!(model.calls.snapshot(), (0, 0, 0));

    let job = h.run(input("a photo of a n.u.d.e woman on a bed")).await;
    assert_eq!(job.status, JobStatus::Failed);
    let err = job.error.clone().expect("error");
    assert_eq!(err["code"], "content_blocked", "{err}");
    assert_eq!(err["category"], "sexual", "{err}");
    assert_eq!(err["details"]["term"], "nude", "{err}");
    assert!(job.output.is_none());
    let (text, unet, vae) = model.calls.snapshot();
    assert_eq!(
        (text, unet, vae),
        (0, 0, 0),
        "a blocked prompt must not reach any network"
    );
    let audit = h
        .store
        .list_audit(&h.tenant, None, 10)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "blocked_prompt");
    assert_eq!(audit[0].category.as_deref(), Some("sexual"));
    assert_eq!(audit[0].job_id.as_deref(), Some(job.id.as_str()));

    // An allowed prompt runs (the counters move) and its image carries provenance.
    let job = h.run(input("a cinema ticket for a summer night")).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let (text, unet, _) = model.calls.snapshot();
    assert!(text > 0 && unet > 0);
    let out = job.output.clone().expect("output");
    assert_eq!(
        out["image_screening"], "unavailable",
        "no checker installed: {out}"
    );
    assert_eq!(out["has_nsfw_concepts"], json!([false]));
    let png = h.file(&out["images"][0]).await;
    let report = atelier_provenance::inspect(&png).expect("inspects");
    let prov = report.provenance.expect("atelier record");
    assert_eq!(prov.job_id.as_deref(), Some(job.id.as_str()));
    assert!(prov
        .weights_sha256
        .as_deref()
        .is_some_and(|h| h.starts_with("sha256:")));
    assert_eq!(prov.seed, 3);
    assert_eq!(
        report.digital_source_type.as_deref(),
        Some(atelier_provenance::TRAINED_ALGORITHMIC_MEDIA)
    );
    let manifest = report.c2pa.clone().expect("c2pa manifest");
    assert_eq!(
        manifest["source_types"][0],
        atelier_provenance::TRAINED_ALGORITHMIC_MEDIA,
        "{manifest}"
    );
    let wm = report.watermark.expect("watermark detected");
    assert_eq!(wm.payload, atelier_provenance::Payload::for_job(7, &job.id));
    assert_eq!(out["watermarks"][0], json!(wm.payload.hex()));

    // JPEG and WebP outputs: XMP (JPEG), C2PA and the watermark through lossy/other encoders.
    for (fmt, xmp) in [("jpg", true), ("webp", false)] {
        let mut i = input("a cinema ticket for a summer night");
        i["output_format"] = json!(fmt);
        let job = h.run(i).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let bytes = h.file(&job.output.expect("output")["images"][0]).await;
        let report = atelier_provenance::inspect(&bytes).expect("inspects");
        assert_eq!(report.digital_source_type.is_some(), xmp, "{fmt}");
        assert!(report.c2pa.is_some(), "{fmt}: no c2pa manifest");
        assert_eq!(
            report.watermark.map(|w| w.payload),
            Some(atelier_provenance::Payload::for_job(7, &job.id)),
            "{fmt}: watermark"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_policies_reject_blur_and_flag_what_the_checker_flags() {
    // A checker whose thresholds every image exceeds.
    let dir = tempfile::tempdir().expect("tempdir");
    RandomChecker {
        threshold: -1.0,
        ..Default::default()
    }
    .write(&dir.path().join("safety_checker"), &[])
    .expect("writes checker");
    let checker =
        Arc::new(SafetyChecker::load(dir.path(), &candle_core::Device::Cpu).expect("loads"));
    let h = harness(
        r#"
        [default]
        image_action = "reject"
        [campaigns.soft]
        image_action = "blur"
        label = true
        [campaigns.feed]
        image_action = "flag"
        allow = ["cocaine"]
        "#,
        Some(checker),
    )
    .await;

    let job = h.run(input("a cinema ticket")).await;
    assert_eq!(job.status, JobStatus::Failed);
    let err = job.error.clone().expect("error");
    assert_eq!(err["code"], "content_blocked");
    assert_eq!(err["category"], "nsfw_image");

    let mut blur = input("a cinema ticket");
    blur["campaign"] = json!("soft");
    let job = h.run(blur).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let out = job.output.expect("output");
    assert_eq!(out["image_screening"], "checked");
    assert_eq!(out["has_nsfw_concepts"], json!([true]));
    assert_eq!(out["flagged"], json!([true]));
    let png = h.file(&out["images"][0]).await;
    let prov = atelier_provenance::inspect(&png)
        .expect("inspects")
        .provenance
        .expect("record");
    assert_eq!(
        prov.screening.as_ref().map(|s| s["blurred"].clone()),
        Some(json!(true))
    );
    assert_eq!(
        prov.label.as_deref(),
        Some("AI 생성"),
        "campaign policy forces the label"
    );

    let mut flag = input("a cocaine-free cocktail bar");
    flag["campaign"] = json!("feed");
    let job = h.run(flag).await;
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    let out = job.output.expect("output");
    assert_eq!(out["flagged"], json!([true]));

    let actions: Vec<String> = h
        .store
        .list_audit(&h.tenant, None, 50)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "blocked_image",
        "blurred_image",
        "flagged_image",
        "override",
    ] {
        assert!(actions.iter().any(|x| x == a), "no {a} in {actions:?}");
    }

    let mut bad = input("a cinema ticket");
    bad["campaign"] = json!("nope");
    let e = h
        .platform
        .submit(NewJob {
            tenant_id: h.tenant.clone(),
            app: "atelier/text-to-image".into(),
            input: bad,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("input.campaign"), "{e}");
}
