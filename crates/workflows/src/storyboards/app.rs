//! The storyboard service the routes call (create, versions, edits, restore, diff, comments,
//! export) and the `atelier/storyboard` app that draws a version. Nothing here knows HTTP.

use std::sync::Arc;

use async_trait::async_trait;
use atelier_platform::store::NewJob;
use atelier_platform::{now_ms, App, JobContext, Platform, PlatformError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::spec::{
    self, check_text, AnimaticOptions, Aspect, Brief, CutText, Generation, Op, CATEGORIES, CUTS,
};
use super::steps::{formats, StoryboardWorkflow};
use super::store::{Board, Comment, SqlStoryboards, Version};

/// The app name of a version's drawing job.
pub const STORYBOARD_APP: &str = "atelier/storyboard";
/// Longest comment (characters).
pub const COMMENT_MAX: usize = 1000;
/// Longest reviewer name (characters).
pub const AUTHOR_MAX: usize = 60;

/// Why a storyboard call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoryboardError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// 404: no such board, version, cut or comment for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the edit was based on a version that is no longer the current one.
    #[error("version {base} is not the current version ({head}); reload and apply the edit again")]
    Conflict { base: i64, head: i64 },
}

type Result<T, E = StoryboardError> = std::result::Result<T, E>;

fn bad(field: impl Into<String>, message: impl Into<String>) -> StoryboardError {
    PlatformError::invalid(field, message).into()
}

/// 409: a well-formed request the board's current state cannot take.
fn conflict(field: impl Into<String>, message: impl Into<String>) -> StoryboardError {
    PlatformError::conflict(field, message).into()
}

/// An optional number within `lo..=hi`.
fn within(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<()> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => {
            Err(bad(field, format!("must be between {lo} and {hi}")))
        }
        _ => Ok(()),
    }
}

/// Parses JSON into `T` strictly (a struct only from an object, see
/// [`atelier_platform::input`]), naming the offending field (`script.cuts[2].duration_s`).
pub fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T> {
    atelier_platform::input::decode(&v).map_err(|e| bad(e.field_or("body").to_owned(), e.message))
}

/// The body of `POST /v1/storyboards`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    pub product: String,
    pub category: String,
    pub brief: String,
    #[serde(default)]
    pub tone: Option<String>,
    #[serde(default)]
    pub target_seconds: Option<f32>,
    /// Number of cuts (4–8); with a `script`, its length.
    #[serde(default)]
    pub cuts: Option<usize>,
    #[serde(default)]
    pub aspect: Option<Aspect>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Cuts written by people; without it the language model writes them.
    #[serde(default)]
    pub script: Option<ScriptInput>,
    #[serde(default)]
    pub generation: Generation,
    #[serde(default)]
    pub animatic: AnimaticOptions,
}

/// User-written cuts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptInput {
    #[serde(default)]
    pub title: Option<String>,
    pub cuts: Vec<CutText>,
}

/// The body of an edit: operations applied in order to the current version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditInput {
    /// The version the edit was made on; a newer current version is a 409.
    #[serde(default)]
    pub base: Option<i64>,
    pub ops: Vec<Op>,
}

/// One file of an export and where its bytes are.
#[derive(Debug, Clone)]
pub enum ExportItem {
    /// An `atelier-file://` reference.
    File(String),
    /// Bytes made for the export (script JSON and CSV).
    Bytes(Vec<u8>),
}

/// Storyboards over their store and workflow.
pub struct Storyboards {
    pub store: SqlStoryboards,
    pub workflow: Arc<StoryboardWorkflow>,
}

impl std::fmt::Debug for Storyboards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storyboards")
            .field("workflow", &self.workflow)
            .finish()
    }
}

impl Storyboards {
    fn check_brief(&self, i: &CreateInput) -> Result<()> {
        check_text("product", &i.product, 100, true)?;
        check_text("brief", &i.brief, 3000, true)?;
        if !CATEGORIES.iter().any(|c| c.0 == i.category) {
            return Err(bad(
                "category",
                format!(
                    "must be one of {}",
                    CATEGORIES
                        .iter()
                        .map(|c| c.0)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let Some(t) = &i.tone {
            check_text("tone", t, 60, true)?;
        }
        if let Some(s) = &i.style {
            check_text("style", s, 300, false)?;
        }
        if let Some(n) = &i.generation.negative_prompt {
            check_text("generation.negative_prompt", n, 300, false)?;
        }
        within("generation.size", i.generation.size, 64, 2048)?;
        within("generation.steps", i.generation.steps, 1, 150)?;
        if let Some(m) = &i.generation.model {
            if !self.workflow.models.list().iter().any(|x| &x.name == m) {
                return Err(bad(
                    "generation.model",
                    format!("no installed model {m:?} (GET /v1/models lists them)"),
                ));
            }
        }
        if let Some(f) = &i.animatic.formats {
            if f.is_empty() || f.len() > 3 {
                return Err(bad(
                    "animatic.formats",
                    "give one to three of mp4, gif, webp",
                ));
            }
            for (k, x) in f.iter().enumerate() {
                if !matches!(x.as_str(), "mp4" | "gif" | "webp") || f[..k].contains(x) {
                    return Err(bad(
                        format!("animatic.formats[{k}]"),
                        "must be mp4, gif or webp, each once",
                    ));
                }
            }
        }
        within("animatic.fps", i.animatic.fps, 1, 60)?;
        // Cut k draws with seed + k, and later cuts with seeds above every used one: a 32-bit
        // start leaves room for all of them.
        if i.seed.is_some_and(|s| s > u32::MAX as u64) {
            return Err(bad("seed", format!("must be between 0 and {}", u32::MAX)));
        }
        within("animatic.size", i.animatic.size, 128, 1920)?;
        Ok(())
    }

    /// Makes a board (version 1) and queues its drawing.
    pub async fn create(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        body: Value,
    ) -> Result<(Board, Version)> {
        let i: CreateInput = parse(body)?;
        self.check_brief(&i)?;
        let seed = i.seed.unwrap_or_else(|| rand::random::<u32>() as u64);
        let (title, cuts) = match &i.script {
            Some(s) => {
                if !(CUTS.0..=CUTS.1).contains(&s.cuts.len()) {
                    return Err(bad(
                        "script.cuts",
                        format!("give {} to {} cuts (got {})", CUTS.0, CUTS.1, s.cuts.len()),
                    ));
                }
                if i.cuts.is_some_and(|n| n != s.cuts.len()) {
                    return Err(bad("cuts", "must equal the number of cuts in `script`"));
                }
                let title = s.title.clone().unwrap_or_default();
                check_text("script.title", &title, spec::TITLE_MAX, false)?;
                let mut cuts = Vec::with_capacity(s.cuts.len());
                for (k, c) in s.cuts.iter().enumerate() {
                    c.check(&format!("script.cuts[{k}]"))?;
                    cuts.push(c.clone().into_cut(spec::new_cut_id(), seed + k as u64));
                }
                (title.trim().to_owned(), cuts)
            }
            None => {
                if self.workflow.writer.llm().is_none() {
                    return Err(bad(
                        "script",
                        "no language model is configured on this server: write the cuts yourself in `script.cuts` (or start the server with --llm)",
                    ));
                }
                (String::new(), Vec::new())
            }
        };
        let n = i
            .script
            .as_ref()
            .map(|s| s.cuts.len())
            .or(i.cuts)
            .unwrap_or(6);
        if !(CUTS.0..=CUTS.1).contains(&n) {
            return Err(bad(
                "cuts",
                format!("must be between {} and {}", CUTS.0, CUTS.1),
            ));
        }
        if let Some(t) = i.target_seconds {
            let lo = n as f32 * spec::CUT_SECONDS.0;
            let hi = n as f32 * spec::CUT_SECONDS.1;
            if !(t.is_finite() && (lo..=hi).contains(&t)) {
                return Err(bad(
                    "target_seconds",
                    format!("must be between {lo} and {hi} for {n} cuts"),
                ));
            }
        }
        let now = now_ms();
        let board = Board {
            id: atelier_platform::new_id(),
            tenant_id: tenant.to_owned(),
            brief: Brief {
                product: i.product.trim().to_owned(),
                category: i.category,
                brief: i.brief.trim().to_owned(),
                tone: i
                    .tone
                    .map(|t| t.trim().to_owned())
                    .unwrap_or_else(|| "warm".into()),
                target_seconds: i.target_seconds,
                cuts: n,
                aspect: i.aspect.unwrap_or_default(),
                style: i.style.map(|s| s.trim().to_owned()),
                reference_image: None,
                seed,
                generation: i.generation,
                animatic: i.animatic,
            },
            head: 1,
            created_at: now,
            updated_at: now,
        };
        let v = Version {
            storyboard_id: board.id.clone(),
            version: 1,
            parent: None,
            action: json!({"kind": "create", "script": if i.script.is_some() {"user"} else {"llm"}}),
            title,
            cuts,
            status: "pending".into(),
            job_id: None,
            steps: Vec::new(),
            outputs: json!({}),
            created_at: now,
            updated_at: now,
        };
        self.store.create(&board, &v).await?;
        let v = self.queue(platform, &board, v).await?;
        Ok((board, v))
    }

    async fn queue(&self, platform: &Arc<Platform>, b: &Board, mut v: Version) -> Result<Version> {
        let (job, _) = platform
            .submit(NewJob {
                tenant_id: b.tenant_id.clone(),
                app: STORYBOARD_APP.into(),
                input: json!({"storyboard": b.id, "version": v.version}),
                ..NewJob::default()
            })
            .await?;
        self.store.set_job(&b.id, v.version, &job.id).await?;
        v.job_id = Some(job.id);
        Ok(v)
    }

    /// A tenant's board.
    pub async fn board(&self, tenant: &str, id: &str) -> Result<Board> {
        self.store
            .board(tenant, id)
            .await?
            .ok_or(StoryboardError::NotFound("storyboard"))
    }

    /// A version of a tenant's board (default: the current one).
    pub async fn version(
        &self,
        tenant: &str,
        id: &str,
        n: Option<i64>,
    ) -> Result<(Board, Version)> {
        let b = self.board(tenant, id).await?;
        let v = self
            .store
            .version(id, n.unwrap_or(b.head))
            .await?
            .ok_or(StoryboardError::NotFound("version"))?;
        Ok((b, v))
    }

    /// Saves a new current version made from `base` and queues its drawing; the previous
    /// current version's job, if still running, is cancelled (its finished pictures are kept
    /// in the new version, the rest are drawn there).
    async fn push(
        &self,
        platform: &Arc<Platform>,
        b: &Board,
        base: &Version,
        title: String,
        cuts: Vec<spec::Cut>,
        action: Value,
    ) -> Result<Version> {
        let now = now_ms();
        let v = Version {
            storyboard_id: b.id.clone(),
            version: b.head + 1,
            parent: Some(base.version),
            action,
            title,
            cuts,
            status: "pending".into(),
            job_id: None,
            steps: Vec::new(),
            outputs: json!({}),
            created_at: now,
            updated_at: now,
        };
        if !self.store.push_version(b.head, &v).await? {
            let head = self.board(&b.tenant_id, &b.id).await?.head;
            return Err(StoryboardError::Conflict { base: b.head, head });
        }
        if let Some(mut prev) = self.store.version(&b.id, b.head).await? {
            if let (Some(job), false) = (
                &prev.job_id,
                matches!(prev.status.as_str(), "ready" | "failed"),
            ) {
                platform.cancel(&b.tenant_id, job).await?;
            }
            // A job that never started will not say so itself; a running one also ends as
            // superseded when it sees the cancel.
            if prev.status == "pending" {
                prev.status = "superseded".into();
                prev.updated_at = now;
                self.store.save_progress(&prev).await?;
            }
        }
        self.queue(platform, b, v).await
    }

    /// Applies edit operations to the current version as one new version.
    pub async fn edit(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        id: &str,
        body: Value,
    ) -> Result<Version> {
        let e: EditInput = parse(body)?;
        let (b, head) = self.version(tenant, id, None).await?;
        if let Some(base) = e.base {
            if base != b.head {
                return Err(StoryboardError::Conflict { base, head: b.head });
            }
        }
        // Current pictures of the latest drawing: a version still being drawn has saved the
        // pictures it finished.
        let (mut title, mut cuts) = (head.title.clone(), head.cuts.clone());
        if cuts.is_empty() {
            return Err(conflict(
                "ops",
                format!(
                    "version {} has no cuts yet (status {}): wait for the writer, or retry a failed version with POST /v1/storyboards/{id}/retry",
                    head.version, head.status
                ),
            ));
        }
        let next_seed = {
            let used: Vec<u64> = self
                .store
                .versions(id)
                .await?
                .iter()
                .flat_map(|v| v.cuts.iter().map(|c| c.seed).collect::<Vec<_>>())
                .collect();
            let mut s = used.iter().copied().max().unwrap_or(b.brief.seed);
            move || {
                s += 1;
                s
            }
        };
        spec::apply(&mut title, &mut cuts, &e.ops, next_seed, || {
            rand::random::<u32>() as u64
        })?;
        if spec::diff(&head.title, &head.cuts, &title, &cuts).is_empty() {
            return Err(conflict(
                "ops",
                format!("the operations change nothing in version {}", head.version),
            ));
        }
        let ops = serde_json::to_value(&e.ops).unwrap_or(Value::Null);
        self.push(
            platform,
            &b,
            &head,
            title,
            cuts,
            json!({"kind": "edit", "ops": ops}),
        )
        .await
    }

    /// Makes a new current version with the cuts (and pictures) of version `n`; the sheet and
    /// animatic are rendered again from the stored pictures, nothing is redrawn.
    pub async fn restore(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        id: &str,
        n: i64,
    ) -> Result<Version> {
        let (b, old) = self.version(tenant, id, Some(n)).await?;
        if old.cuts.is_empty() {
            return Err(conflict(
                "version",
                format!("version {n} has no cuts to restore"),
            ));
        }
        self.push(
            platform,
            &b,
            &old,
            old.title.clone(),
            old.cuts.clone(),
            json!({"kind": "restore", "from": n}),
        )
        .await
    }

    /// Draws the current version again after a failure (a model error, a crash the lease did
    /// not recover): the job resumes at the first step without a record, so finished pictures
    /// are kept.
    pub async fn retry(&self, platform: &Arc<Platform>, tenant: &str, id: &str) -> Result<Version> {
        let (b, mut v) = self.version(tenant, id, None).await?;
        if !matches!(v.status.as_str(), "failed" | "canceled") {
            return Err(conflict(
                "version",
                format!(
                    "version {} is {}; only a failed or canceled version is retried",
                    v.version, v.status
                ),
            ));
        }
        v.status = "pending".into();
        v.updated_at = now_ms();
        self.store.save_progress(&v).await?;
        self.queue(platform, &b, v).await
    }

    /// The changes from version `a` to version `b`.
    pub async fn diff(&self, tenant: &str, id: &str, a: i64, b: i64) -> Result<Value> {
        let (_, va) = self.version(tenant, id, Some(a)).await?;
        let (_, vb) = self.version(tenant, id, Some(b)).await?;
        Ok(json!({
            "from": a, "to": b,
            "changes": spec::diff(&va.title, &va.cuts, &vb.title, &vb.cuts),
        }))
    }

    /// Adds a review comment to a cut of the current (or given) version.
    pub async fn comment(&self, tenant: &str, id: &str, cut: &str, body: Value) -> Result<Comment> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            author: String,
            text: String,
            #[serde(default)]
            version: Option<i64>,
        }
        let i: In = parse(body)?;
        check_text("author", &i.author, AUTHOR_MAX, true)?;
        check_text("text", &i.text, COMMENT_MAX, true)?;
        let (_, v) = self.version(tenant, id, i.version).await?;
        let cut_id = v
            .cuts
            .iter()
            .enumerate()
            .find(|(k, c)| c.id == cut || cut.parse::<usize>().ok() == Some(k + 1))
            .map(|(_, c)| c.id.clone())
            .ok_or(StoryboardError::NotFound("cut"))?;
        let c = Comment {
            id: atelier_platform::new_id(),
            storyboard_id: id.to_owned(),
            cut_id,
            version: v.version,
            author: i.author.trim().to_owned(),
            text: i.text.trim().to_owned(),
            created_at: now_ms(),
            resolved_at: None,
            resolved_by: None,
        };
        self.store.add_comment(&c).await?;
        Ok(c)
    }

    /// A board's comments, optionally of one cut and/or by resolution.
    pub async fn comments(
        &self,
        tenant: &str,
        id: &str,
        cut: Option<&str>,
        resolved: Option<bool>,
    ) -> Result<Vec<Comment>> {
        self.board(tenant, id).await?;
        let mut list = self.store.comments(id, cut).await?;
        if let Some(r) = resolved {
            list.retain(|c| c.resolved_at.is_some() == r);
        }
        Ok(list)
    }

    /// Resolves (`by` a reviewer) or reopens (`None`) a comment.
    pub async fn resolve(
        &self,
        tenant: &str,
        id: &str,
        comment: &str,
        body: Value,
    ) -> Result<Comment> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            #[serde(default = "yes")]
            resolved: bool,
            #[serde(default)]
            by: Option<String>,
        }
        fn yes() -> bool {
            true
        }
        let i: In = parse(body)?;
        self.board(tenant, id).await?;
        let by = if i.resolved {
            let by = i.by.unwrap_or_default();
            check_text("by", &by, AUTHOR_MAX, true)?;
            Some(by.trim().to_owned())
        } else {
            None
        };
        self.store
            .resolve_comment(id, comment, by.as_deref(), now_ms())
            .await?
            .ok_or(StoryboardError::NotFound("comment"))
    }

    /// Keeps a product photo with the brief (PNG re-encoded from a checked upload).
    pub async fn set_reference(&self, tenant: &str, id: &str, reference: &str) -> Result<Board> {
        let mut b = self.board(tenant, id).await?;
        b.brief.reference_image = Some(reference.to_owned());
        self.store.set_brief(&b.id, &b.brief, now_ms()).await?;
        Ok(b)
    }

    /// The files of a ready version's export ZIP, in order: sheet, animatics, cut pictures,
    /// script JSON and CSV, provenance manifest.
    pub async fn export(
        &self,
        tenant: &str,
        id: &str,
        n: Option<i64>,
    ) -> Result<Vec<(String, ExportItem)>> {
        let (b, v) = self.version(tenant, id, n).await?;
        if v.status != "ready" {
            return Err(conflict(
                "version",
                format!(
                    "version {} is {}; export a ready version",
                    v.version, v.status
                ),
            ));
        }
        let o = &v.outputs;
        let mut out = Vec::new();
        let mut file = |name: String, r: &Value| {
            if let Some(r) = r.as_str() {
                out.push((name, ExportItem::File(r.to_owned())));
            }
        };
        file("sheet.pdf".into(), &o["sheet_pdf"]);
        file("sheet.png".into(), &o["sheet_png"]);
        for f in formats(&b.brief, &self.workflow.settings) {
            file(format!("animatic.{f}"), &o["animatic"][&f]);
        }
        for (k, c) in v.cuts.iter().enumerate() {
            if let Some(i) = &c.image {
                file(format!("cuts/{:02}-{}.png", k + 1, c.id), &json!(i.file));
            }
        }
        file("provenance.json".into(), &o["manifest"]);
        let script = script_json(&b, &v);
        out.push((
            "script.json".into(),
            ExportItem::Bytes(serde_json::to_vec_pretty(&script).unwrap_or_default()),
        ));
        out.push((
            "script.csv".into(),
            ExportItem::Bytes(script_csv(&v).into_bytes()),
        ));
        Ok(out)
    }
}

/// The script of a version as JSON (brief and cuts, no storage references).
pub fn script_json(b: &Board, v: &Version) -> Value {
    json!({
        "storyboard": b.id, "version": v.version, "title": v.title,
        "product": b.brief.product, "category": b.brief.category, "brief": b.brief.brief,
        "tone": b.brief.tone, "aspect": b.brief.aspect,
        "duration_s": v.cuts.iter().map(|c| c.duration_s as f64).sum::<f64>(),
        "cuts": v.cuts.iter().enumerate().map(|(k, c)| json!({
            "number": k + 1, "id": c.id, "scene": c.scene, "camera": c.camera, "copy": c.copy,
            "duration_s": c.duration_s, "image_prompt": c.image_prompt, "seed": c.seed,
            "image": c.image.as_ref().map(|_| format!("cuts/{:02}-{}.png", k + 1, c.id)),
        })).collect::<Vec<_>>(),
    })
}

/// The script as CSV (UTF-8 with BOM so Korean Excel reads it).
pub fn script_csv(v: &Version) -> String {
    let mut s =
        String::from("\u{feff}number,id,duration_s,scene,camera,copy,image_prompt,seed\r\n");
    for (k, c) in v.cuts.iter().enumerate() {
        let row = [
            (k + 1).to_string(),
            c.id.clone(),
            c.duration_s.to_string(),
            c.scene.clone(),
            c.camera.clone(),
            c.copy.clone(),
            c.image_prompt.clone(),
            c.seed.to_string(),
        ];
        let row: Vec<String> = row
            .iter()
            .map(|f| crate::tickets::share::csv_field(f))
            .collect();
        s.push_str(&row.join(","));
        s.push_str("\r\n");
    }
    s
}

/// `atelier/storyboard`: draws (or finishes drawing) one version of a board.
/// Input: `{"storyboard": id, "version": n}`.
pub struct StoryboardApp {
    pub storyboards: Arc<Storyboards>,
}

#[async_trait]
impl App for StoryboardApp {
    fn resumes(&self) -> bool {
        // Recorded steps point at files earlier attempts stored; a retry reuses them.
        true
    }

    fn name(&self) -> &str {
        STORYBOARD_APP
    }

    fn validate(&self, input: &Value) -> atelier_platform::Result<Value> {
        let o = input
            .as_object()
            .ok_or_else(|| PlatformError::invalid("input", "must be a JSON object"))?;
        if let Some(k) = o
            .keys()
            .find(|k| !matches!(k.as_str(), "storyboard" | "version"))
        {
            return Err(PlatformError::invalid(
                format!("input.{k}"),
                "unknown field; accepted: storyboard, version",
            ));
        }
        o.get("storyboard").and_then(Value::as_str).ok_or_else(|| {
            PlatformError::invalid("input.storyboard", "is required (a storyboard id)")
        })?;
        o.get("version").and_then(Value::as_i64).ok_or_else(|| {
            PlatformError::invalid("input.version", "is required (a version number)")
        })?;
        Ok(input.clone())
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["storyboard", "version"],
            "description": "Draws one version of a storyboard (boards are made with POST /v1/storyboards).",
            "properties": {"storyboard": {"type": "string"}, "version": {"type": "integer"}},
        })
    }

    async fn run(&self, ctx: JobContext) -> atelier_platform::Result<Value> {
        let s = &self.storyboards;
        let id = ctx.job.input["storyboard"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let n = ctx.job.input["version"].as_i64().unwrap_or_default();
        let board = s
            .store
            .board_by_id(&id)
            .await?
            .filter(|b| b.tenant_id == ctx.job.tenant_id)
            .ok_or_else(|| {
                PlatformError::invalid("input.storyboard", format!("no storyboard {id:?}"))
            })?;
        let mut v =
            s.store.version(&id, n).await?.ok_or_else(|| {
                PlatformError::invalid("input.version", format!("no version {n}"))
            })?;
        if board.head != n {
            // An edit made a newer version; this one is not drawn.
            v.status = "superseded".into();
            v.updated_at = now_ms();
            s.store.save_progress(&v).await?;
            return Ok(json!({"storyboard": id, "version": n, "superseded_by": board.head}));
        }
        let store = s.store.clone();
        let res = s
            .workflow
            .run(&ctx, &board, &mut v, |v| {
                let store = store.clone();
                async move { store.save_progress(&v).await }
            })
            .await;
        if res.is_err() && v.status == "canceled" {
            if let Some(b) = s.store.board_by_id(&id).await? {
                if b.head != n {
                    v.status = "superseded".into();
                    s.store.save_progress(&v).await?;
                }
            }
        }
        res?;
        let generated = v
            .steps
            .iter()
            .find(|r| r["step"] == "images")
            .map(|r| r["output"]["generated"].clone())
            .unwrap_or(Value::Null);
        Ok(json!({
            "storyboard": id,
            "version": n,
            "status": v.status,
            "sheet_pdf": v.outputs["sheet_pdf"],
            "sheet_png": v.outputs["sheet_png"],
            "animatic": v.outputs["animatic"],
            "manifest": v.outputs["manifest"],
            "generated": generated,
        }))
    }
}
