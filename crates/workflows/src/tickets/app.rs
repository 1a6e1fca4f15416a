//! The photo-ticket service: campaigns, the `atelier/photo-ticket` app (one ticket, or a re-run
//! of some of its steps) and the `atelier/photo-ticket-batch` app (a CSV of customers).

use std::sync::Arc;

use async_trait::async_trait;
use atelier_engine::CancelToken;
use atelier_platform::store::NewJob;
use atelier_platform::{App, Job, JobContext, Platform, PlatformError};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::campaign::{merge_patch, Campaign, CampaignSpec, WINDOW_ORDER};
use super::csv::{self, ColumnMap};
use super::steps::{reference_id, Step, TicketHost, TicketWorkflow};
use super::store::{Batch, BatchRow, TicketInput, TicketRecord, TicketStatus, TicketStore};
use crate::guard::Audit;

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// App name of single tickets and re-runs.
pub const TICKET_APP: &str = "atelier/photo-ticket";
/// App name of CSV batches.
pub const BATCH_APP: &str = "atelier/photo-ticket-batch";
/// Largest logo accepted (bytes, decoded).
pub const LOGO_MAX: usize = 2 << 20;

/// Campaigns, tickets and batches over a store and the ticket workflow.
pub struct Tickets {
    pub store: Arc<dyn TicketStore>,
    pub workflow: Arc<TicketWorkflow>,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").finish()
    }
}

fn bad(field: &str, message: impl Into<String>) -> PlatformError {
    PlatformError::invalid(field, message)
}

/// 128 random bits, URL-safe: share ids cannot be guessed or enumerated.
pub fn new_share_id() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The ticket id of a batch row: stable, so a resumed batch finds the ticket it started.
pub fn batch_ticket_id(batch_id: &str, line: i64) -> String {
    let d = Sha256::digest(format!("{batch_id}:{line}").as_bytes());
    hex::encode(&d[..16])
}

/// Checks a ticket input's fields (shared by the API, batches and the CLI).
pub fn check_input(i: &TicketInput) -> Result<()> {
    check_text("name", &i.name, csv::NAME_MAX)?;
    check_text("text", &i.text, csv::TEXT_MAX)?;
    check_copy(i.title.as_deref(), i.tagline.as_deref())
}

/// A text field that must say something, within `max` characters.
fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() {
        return Err(bad(&format!("input.{field}"), "must not be empty"));
    }
    let n = v.chars().count();
    if n > max {
        return Err(bad(
            &format!("input.{field}"),
            format!("is {n} characters; at most {max}"),
        ));
    }
    Ok(())
}

/// A title and tagline given instead of written by the language model (new tickets and
/// re-runs alike).
fn check_copy(title: Option<&str>, tagline: Option<&str>) -> Result<()> {
    if let Some(t) = title {
        check_text("title", t, atelier_writer::tasks::TITLE_MAX)?;
    }
    if let Some(t) = tagline {
        check_text("tagline", t, atelier_writer::tasks::TAGLINE_MAX)?;
    }
    Ok(())
}

impl Tickets {
    /// Checks a spec against this installation (models, presets) and stores a logo given as a
    /// `data:` URL, replacing it with its file reference.
    async fn prepare(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        spec: &mut CampaignSpec,
    ) -> Result<()> {
        spec.check()?;
        if let Some(m) = &spec.generation.model {
            let installed = self.workflow.models.list();
            if !installed.iter().any(|i| &i.name == m) {
                return Err(bad(
                    "generation.model",
                    format!(
                        "model {m:?} is not installed; installed: {}",
                        installed
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for p in &spec.presets {
            self.workflow
                .presets
                .get(p)
                .map_err(|e| bad("presets", e.to_string()))?;
        }
        if let Some(logo) = spec.logo.clone() {
            if let Some(data) = logo.strip_prefix("data:") {
                let (meta, b64) = data
                    .split_once(',')
                    .ok_or_else(|| bad("logo", "a data URL is data:image/png;base64,…"))?;
                if !meta.ends_with(";base64") {
                    return Err(bad("logo", "the data URL must be base64"));
                }
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| bad("logo", format!("base64: {e}")))?;
                if bytes.len() > LOGO_MAX {
                    return Err(bad(
                        "logo",
                        format!("is {} bytes; at most {LOGO_MAX}", bytes.len()),
                    ));
                }
                let fmt = image::guess_format(&bytes)
                    .map_err(|_| bad("logo", "is not a PNG or JPEG image"))?;
                let (ctype, ext) = match fmt {
                    image::ImageFormat::Png => ("image/png", "png"),
                    image::ImageFormat::Jpeg => ("image/jpeg", "jpg"),
                    _ => return Err(bad("logo", "is not a PNG or JPEG image")),
                };
                image::load_from_memory(&bytes)
                    .map_err(|e| bad("logo", format!("does not decode: {e}")))?;
                let rec = platform
                    .artifacts
                    .put(tenant, None, ctype, ext, bytes, atelier_platform::now_ms())
                    .await?;
                platform.store.put_file(&rec).await?;
                spec.logo = Some(format!("{}{}", atelier_platform::FILE_REF, rec.id));
            } else {
                let id = reference_id(&logo).map_err(|_| {
                    bad(
                        "logo",
                        "must be a data: URL or a file reference from this server",
                    )
                })?;
                if platform.store.get_file(tenant, id).await?.is_none() {
                    return Err(bad("logo", format!("no file {id}")));
                }
            }
        }
        Ok(())
    }

    /// Creates a campaign (version 1).
    pub async fn create_campaign(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        spec: Value,
    ) -> Result<Campaign> {
        let mut spec = CampaignSpec::from_json(spec)?;
        self.prepare(platform, tenant, &mut spec).await?;
        let now = atelier_platform::now_ms();
        let c = Campaign {
            id: format!("cmp_{}", atelier_platform::new_id()),
            tenant_id: tenant.to_owned(),
            version: 1,
            spec,
            created_at: now,
            updated_at: now,
        };
        self.store.create_campaign(&c).await?;
        Ok(c)
    }

    /// Applies a JSON merge patch as a new version; tickets keep the version they were made
    /// with. `None` when the tenant has no such campaign.
    pub async fn update_campaign(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        id: &str,
        patch: &Value,
    ) -> Result<Option<Campaign>> {
        let Some(cur) = self.store.campaign(tenant, id, None).await? else {
            return Ok(None);
        };
        if !patch.is_object() {
            return Err(bad("campaign", "a merge patch is a JSON object"));
        }
        let mut v =
            serde_json::to_value(&cur.spec).map_err(|e| PlatformError::Corrupt(e.to_string()))?;
        merge_patch(&mut v, patch);
        let mut spec = CampaignSpec::from_json(v)?;
        // Dates in the wrong order because of the stored one the patch left alone: the
        // same patch fits another campaign, so it conflicts with this one's state.
        let both_dates = ["active_from", "active_until"]
            .iter()
            .all(|k| patch.get(k).is_some_and(|d| !d.is_null()));
        self.prepare(platform, tenant, &mut spec)
            .await
            .map_err(|e| match e {
                PlatformError::InvalidInput { field, message }
                    if !both_dates && field == "active_until" && message == WINDOW_ORDER =>
                {
                    PlatformError::conflict(
                        field,
                        format!(
                            "{message} ({} in the stored campaign)",
                            spec.active_from.as_deref().unwrap_or("?")
                        ),
                    )
                }
                other => other,
            })?;
        self.store
            .update_campaign(tenant, id, &spec, atelier_platform::now_ms())
            .await
    }

    async fn active_campaign(&self, tenant: &str, id: &str) -> Result<Campaign> {
        let c = self
            .store
            .campaign(tenant, id, None)
            .await?
            .ok_or_else(|| bad("campaign", format!("no campaign {id:?}")))?;
        c.spec.check_active(atelier_platform::now_ms())?;
        Ok(c)
    }

    /// Queues one ticket; the job id is the ticket id.
    pub async fn submit_ticket(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        campaign_id: &str,
        mut input: Value,
        idempotency_key: Option<String>,
        webhook: Option<String>,
    ) -> Result<(Job, bool)> {
        let c = self.active_campaign(tenant, campaign_id).await?;
        if let Some(p) = input.get("preset").and_then(Value::as_str) {
            // An unknown preset is the request's fault; one the campaign leaves out, the
            // campaign's settings.
            self.workflow
                .presets
                .get(p)
                .map_err(|e| bad("input.preset", e.to_string()))?;
            if !c.spec.presets.is_empty() && !c.spec.presets.iter().any(|x| x == p) {
                return Err(PlatformError::conflict(
                    "preset",
                    format!(
                        "the campaign allows the presets {}",
                        c.spec.presets.join(", ")
                    ),
                ));
            }
        }
        if let Some(o) = input.as_object_mut() {
            o.insert("campaign".into(), json!(c.id));
            o.insert("campaign_version".into(), json!(c.version));
        }
        platform
            .submit(NewJob {
                tenant_id: tenant.to_owned(),
                app: TICKET_APP.into(),
                input,
                idempotency_key,
                webhook,
                ..NewJob::default()
            })
            .await
    }

    /// Queues a re-run of `from` and every later step of a ticket; earlier steps are kept.
    /// `overrides` may set `title`/`tagline` (from `copy`), `seed` (from `image`; a new random
    /// one otherwise), `preset` (from `preset`).
    pub async fn rerun(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        ticket_id: &str,
        overrides: Value,
    ) -> Result<Option<(Job, bool)>> {
        let Some(t) = self.store.ticket(tenant, ticket_id).await? else {
            return Ok(None);
        };
        let mut input = match overrides {
            Value::Object(o) => {
                if let Some(k) = o.keys().find(|k| !RERUN_FIELDS.contains(&k.as_str())) {
                    return Err(bad(
                        k,
                        format!("unknown field; a re-run takes {}", RERUN_FIELDS.join(", ")),
                    ));
                }
                Value::Object(o)
            }
            Value::Null => json!({}),
            _ => return Err(bad("body", "must be a JSON object")),
        };
        // What is wrong with the request is said before what is in its way.
        if let Some(o) = input.as_object() {
            check_copy(
                opt_str(o, "title")?.as_deref(),
                opt_str(o, "tagline")?.as_deref(),
            )?;
        }
        if t.status == TicketStatus::Processing {
            if let Some(j) = &t.job_id {
                if let Some(job) = platform.store.get_job(tenant, j).await? {
                    if !job.status.is_terminal() {
                        return Err(PlatformError::conflict(
                            "ticket",
                            format!("the ticket is being made by job {j}; cancel it or wait"),
                        ));
                    }
                }
            }
        }
        input["ticket"] = json!(t.id);
        let (job, created) = platform
            .submit(NewJob {
                tenant_id: tenant.to_owned(),
                app: TICKET_APP.into(),
                input,
                ..NewJob::default()
            })
            .await?;
        Ok(Some((job, created)))
    }

    /// Reads a customer CSV into a batch and queues its job. Re-uploading the same rows for
    /// the same campaign returns the existing batch (`false`), so tickets are never doubled.
    pub async fn create_batch(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        campaign_id: &str,
        upload: &Upload<'_>,
    ) -> Result<(Batch, bool)> {
        let c = self.active_campaign(tenant, campaign_id).await?;
        let parsed = csv::parse(upload.bytes, upload.encoding, &upload.columns)
            .map_err(|e| bad("file", e.to_string()))?;
        let mut digest = Sha256::new();
        digest.update(c.id.as_bytes());
        digest.update(
            serde_json::to_string(&parsed.columns)
                .unwrap_or_default()
                .as_bytes(),
        );
        let mut rows = Vec::with_capacity(parsed.rows.len());
        for r in &parsed.rows {
            let line = r.line as i64;
            let row = match &r.input {
                Ok(i) => {
                    digest.update(
                        format!(
                            "{line}\u{1}{}",
                            serde_json::to_string(i).unwrap_or_default()
                        )
                        .as_bytes(),
                    );
                    let preset_ok = match &i.preset {
                        None => Ok(()),
                        Some(p) if !c.spec.presets.is_empty() && !c.spec.presets.contains(p) => {
                            Err(format!("preset {p:?} is not allowed by the campaign"))
                        }
                        Some(p) => self
                            .workflow
                            .presets
                            .get(p)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    };
                    match preset_ok {
                        Ok(()) => BatchRow {
                            line,
                            status: "pending".into(),
                            input: Some(i.clone()),
                            ticket_id: None,
                            error: None,
                            finished_at: None,
                        },
                        Err(reason) => {
                            failed_row(line, json!({"code": "invalid", "reason": reason}))
                        }
                    }
                }
                Err(e) => {
                    digest.update(format!("{line}\u{2}{}", e.reason).as_bytes());
                    failed_row(line, json!({"code": e.code, "reason": e.reason}))
                }
            };
            rows.push(row);
        }
        let now = atelier_platform::now_ms();
        let b = Batch {
            id: format!("bat_{}", atelier_platform::new_id()),
            tenant_id: tenant.to_owned(),
            campaign_id: c.id.clone(),
            campaign_version: c.version,
            digest: hex::encode(digest.finalize()),
            filename: upload.filename.clone(),
            encoding: parsed.encoding.name().into(),
            total: rows.len() as i64,
            job_id: None,
            status: "running".into(),
            created_at: now,
            completed_at: None,
        };
        let (mut b, created) = self.store.create_batch(&b, &rows).await?;
        // Idempotent: a crash between storing the batch and queueing its job is healed by the
        // re-upload. A batch whose job ended with rows still pending (canceled, or out of
        // attempts) is resumed by a new job, keyed by the one before it.
        let mut key = format!("batch-{}", b.id);
        let mut job;
        let mut tries = 0;
        loop {
            (job, _) = platform
                .submit(NewJob {
                    tenant_id: tenant.to_owned(),
                    app: BATCH_APP.into(),
                    input: json!({"batch": b.id}),
                    idempotency_key: Some(key.clone()),
                    ..NewJob::default()
                })
                .await?;
            tries += 1;
            if !job.status.is_terminal()
                || tries >= 100
                || self.store.row_counts(&b.id).await?.pending == 0
            {
                break;
            }
            key = format!("batch-{}-after-{}", b.id, job.id);
        }
        if b.job_id.as_deref() != Some(job.id.as_str()) {
            self.store.set_batch_job(&b.id, &job.id).await?;
            b.job_id = Some(job.id);
        }
        Ok((b, created))
    }
}

/// A customer CSV as uploaded.
#[derive(Debug, Clone, Default)]
pub struct Upload<'a> {
    pub bytes: &'a [u8],
    /// `utf-8`, `cp949`, `euc-kr`; detected when `None`.
    pub encoding: Option<&'a str>,
    pub columns: ColumnMap,
    pub filename: Option<String>,
}

fn failed_row(line: i64, error: Value) -> BatchRow {
    BatchRow {
        line,
        status: "failed".into(),
        input: None,
        ticket_id: None,
        error: Some(error),
        finished_at: Some(atelier_platform::now_ms()),
    }
}

/// A ticket run inside a platform job.
struct JobHost {
    ctx: JobContext,
    store: Arc<dyn TicketStore>,
    /// Batch rows keep the job log short: no per-step lines.
    quiet: bool,
}

#[async_trait]
impl Audit for JobHost {
    async fn audit(&self, action: &str, category: Option<&str>, detail: Value) -> Result<()> {
        self.ctx.audit(action, category, detail).await
    }
}

#[async_trait]
impl TicketHost for JobHost {
    fn job_id(&self) -> &str {
        &self.ctx.job.id
    }
    fn cancel(&self) -> CancelToken {
        self.ctx.cancel.clone()
    }
    fn progress(&self) -> super::steps::ProgressFn {
        if self.quiet {
            return Arc::new(|_, _, _| {});
        }
        let r = self.ctx.reporter.clone();
        Arc::new(move |s, n, p| r.progress_blocking(s, n, p))
    }
    async fn log(&self, line: String) {
        if !self.quiet {
            self.ctx.reporter.log(line).await;
        }
    }
    async fn put_file(&self, content_type: &str, ext: &str, bytes: Vec<u8>) -> Result<String> {
        self.ctx.put_file(content_type, ext, bytes).await
    }
    async fn get_file(&self, reference: &str) -> Result<Vec<u8>> {
        let id = reference_id(reference)?;
        let p = &self.ctx.platform;
        let rec = p
            .store
            .get_file(&self.ctx.job.tenant_id, id)
            .await?
            .ok_or_else(|| PlatformError::Corrupt(format!("file {id} is missing")))?;
        p.artifacts.get(&rec.storage_key).await
    }
    async fn save(&self, ticket: &TicketRecord) -> Result<()> {
        self.store.put_ticket(ticket).await
    }
}

/// The ticket's public summary in job outputs and API responses.
pub fn ticket_summary(w: &TicketWorkflow, t: &TicketRecord) -> Value {
    let out = |s: Step| {
        t.steps
            .iter()
            .find(|r| r.step == s && r.status == "done")
            .map(|r| r.output.clone())
            .unwrap_or(Value::Null)
    };
    let copy = out(Step::Copy);
    json!({
        "ticket": t.id,
        "status": t.status,
        "campaign": t.campaign_id,
        "campaign_version": t.campaign_version,
        "share_url": w.share_url(&t.share_id),
        "file": t.file,
        "title": copy.get("title"),
        "tagline": copy.get("tagline"),
        "preset": out(Step::Preset).get("preset"),
        "seed": out(Step::Image).get("seed"),
        "revoked": t.revoked_at.is_some(),
    })
}

const TICKET_FIELDS: [&str; 11] = [
    "campaign",
    "campaign_version",
    "name",
    "text",
    "title",
    "tagline",
    "preset",
    "seed",
    "show_name",
    "ticket",
    "from",
];

fn opt_str(o: &serde_json::Map<String, Value>, k: &str) -> Result<Option<String>> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(&format!("input.{k}"), "must be a string")),
    }
}

/// What a re-run may change: the step to start from and the overrides of later steps.
pub const RERUN_FIELDS: [&str; 5] = ["from", "title", "tagline", "preset", "seed"];

/// `atelier/photo-ticket`: a new ticket (`campaign`, `name`, `text`, overrides), or a re-run of
/// an existing one (`ticket`, `from`, overrides).
pub struct PhotoTicketApp {
    pub tickets: Arc<Tickets>,
}

#[async_trait]
impl App for PhotoTicketApp {
    fn resumes(&self) -> bool {
        // Recorded steps point at files earlier attempts stored; a retry reuses them.
        true
    }

    fn name(&self) -> &str {
        TICKET_APP
    }

    fn validate(&self, input: &Value) -> Result<Value> {
        let o = input
            .as_object()
            .ok_or_else(|| bad("input", "must be a JSON object"))?;
        if let Some(k) = o.keys().find(|k| !TICKET_FIELDS.contains(&k.as_str())) {
            return Err(bad(
                &format!("input.{k}"),
                format!("unknown field; accepted: {}", TICKET_FIELDS.join(", ")),
            ));
        }
        if let Some(seed) = o.get("seed").filter(|v| !v.is_null()) {
            seed.as_u64()
                .ok_or_else(|| bad("input.seed", "must be a non-negative integer"))?;
        }
        if let Some(v) = o.get("show_name").filter(|v| !v.is_null()) {
            v.as_bool()
                .ok_or_else(|| bad("input.show_name", "must be true or false"))?;
        }
        for k in ["title", "tagline"] {
            opt_str(o, k)?;
        }
        if let Some(p) = opt_str(o, "preset")? {
            self.tickets
                .workflow
                .presets
                .get(&p)
                .map_err(|e| bad("input.preset", e.to_string()))?;
        }
        if opt_str(o, "ticket")?.is_some() {
            let from = opt_str(o, "from")?.unwrap_or_else(|| "image".into());
            let step = Step::parse(&from).ok_or_else(|| {
                bad(
                    "input.from",
                    format!(
                        "unknown step {from:?}; steps: {}",
                        Step::ALL.map(|s| s.name()).join(", ")
                    ),
                )
            })?;
            for k in ["campaign", "name", "text", "show_name"] {
                if o.contains_key(k) {
                    return Err(bad(
                        &format!("input.{k}"),
                        "cannot change on a re-run; make a new ticket",
                    ));
                }
            }
            check_copy(
                opt_str(o, "title")?.as_deref(),
                opt_str(o, "tagline")?.as_deref(),
            )?;
            let mut out = o.clone();
            out.insert("from".into(), json!(step.name()));
            return Ok(Value::Object(out));
        }
        if o.contains_key("from") {
            return Err(bad(
                "input.from",
                "only re-runs (with `ticket`) take a step",
            ));
        }
        opt_str(o, "campaign")?.ok_or_else(|| bad("input.campaign", "is required"))?;
        let i = TicketInput {
            name: opt_str(o, "name")?.ok_or_else(|| bad("input.name", "is required"))?,
            text: opt_str(o, "text")?.ok_or_else(|| bad("input.text", "is required"))?,
            title: opt_str(o, "title")?,
            tagline: opt_str(o, "tagline")?,
            ..TicketInput::default()
        };
        check_input(&i)?;
        Ok(input.clone())
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "A new ticket (campaign, name, text) or a re-run (ticket, from).",
            "properties": {
                "campaign": {"type": "string"},
                "campaign_version": {"type": "integer", "description": "set by POST /v1/campaigns/{id}/tickets; default the latest"},
                "name": {"type": "string", "maxLength": csv::NAME_MAX},
                "text": {"type": "string", "maxLength": csv::TEXT_MAX, "description": "the customer's lifestyle text (Korean or English)"},
                "title": {"type": "string", "maxLength": atelier_writer::tasks::TITLE_MAX},
                "tagline": {"type": "string", "maxLength": atelier_writer::tasks::TAGLINE_MAX},
                "preset": {"type": "string"},
                "seed": {"type": "integer", "minimum": 0},
                "show_name": {"type": "boolean", "description": "print the customer's name on the ticket"},
                "ticket": {"type": "string", "description": "re-run: the ticket id"},
                "from": {"type": "string", "enum": Step::ALL.map(|s| s.name())}
            }
        })
    }

    async fn run(&self, ctx: JobContext) -> Result<Value> {
        let tk = &self.tickets;
        let o = ctx.job.input.as_object().cloned().unwrap_or_default();
        let tenant = ctx.job.tenant_id.clone();
        let (mut t, from) = if let Some(id) = opt_str(&o, "ticket")? {
            let mut t = tk
                .store
                .ticket(&tenant, &id)
                .await?
                .ok_or_else(|| bad("input.ticket", format!("no ticket {id:?}")))?;
            let from =
                Step::parse(&opt_str(&o, "from")?.unwrap_or_default()).unwrap_or(Step::Image);
            if from <= Step::Copy {
                t.input.title = opt_str(&o, "title")?;
                t.input.tagline = opt_str(&o, "tagline")?;
            }
            if from <= Step::Image {
                // "New picture": a new seed unless one is given.
                t.input.seed = o.get("seed").and_then(Value::as_u64);
            }
            if let Some(p) = opt_str(&o, "preset")? {
                t.input.preset = Some(p);
            } else if from == Step::Preset {
                t.input.preset = None;
            }
            (t, Some(from))
        } else {
            match tk.store.ticket(&tenant, &ctx.job.id).await? {
                // Resumed after a crash: carry on from the last recorded step.
                Some(t) => (t, None),
                None => {
                    let campaign_id = opt_str(&o, "campaign")?.unwrap_or_default();
                    let version = o.get("campaign_version").and_then(Value::as_i64);
                    let c = tk
                        .store
                        .campaign(&tenant, &campaign_id, version)
                        .await?
                        .ok_or_else(|| {
                            bad("input.campaign", format!("no campaign {campaign_id:?}"))
                        })?;
                    // Judged at submission time: a queued ticket is not refused at midnight.
                    c.spec.check_active(ctx.job.created_at)?;
                    let input = TicketInput {
                        name: opt_str(&o, "name")?.unwrap_or_default(),
                        text: opt_str(&o, "text")?.unwrap_or_default(),
                        title: opt_str(&o, "title")?,
                        tagline: opt_str(&o, "tagline")?,
                        preset: opt_str(&o, "preset")?,
                        seed: o.get("seed").and_then(Value::as_u64),
                        show_name: o.get("show_name").and_then(Value::as_bool).unwrap_or(false),
                    };
                    let t =
                        TicketRecord::new(ctx.job.id.clone(), &c, input, Some(ctx.job.id.clone()));
                    (t, None)
                }
            }
        };
        let c = tk
            .store
            .campaign(&tenant, &t.campaign_id, Some(t.campaign_version))
            .await?
            .ok_or_else(|| {
                PlatformError::Corrupt(format!(
                    "campaign {} v{} is gone",
                    t.campaign_id, t.campaign_version
                ))
            })?;
        let host = JobHost {
            ctx: ctx.clone(),
            store: tk.store.clone(),
            quiet: false,
        };
        tk.workflow.run(&host, &c, &mut t, from).await?;
        Ok(ticket_summary(&tk.workflow, &t))
    }
}

/// `atelier/photo-ticket-batch`: makes the tickets of a stored batch, row by row, resuming
/// after a restart with the rows still pending.
pub struct TicketBatchApp {
    pub tickets: Arc<Tickets>,
}

#[async_trait]
impl App for TicketBatchApp {
    fn resumes(&self) -> bool {
        // Recorded steps point at files earlier attempts stored; a retry reuses them.
        true
    }

    fn name(&self) -> &str {
        BATCH_APP
    }

    fn validate(&self, input: &Value) -> Result<Value> {
        let o = input
            .as_object()
            .ok_or_else(|| bad("input", "must be a JSON object"))?;
        if let Some(k) = o.keys().find(|k| *k != "batch") {
            return Err(bad(&format!("input.{k}"), "unknown field; accepted: batch"));
        }
        opt_str(o, "batch")?.ok_or_else(|| {
            bad(
                "input.batch",
                "is required (upload a CSV to POST /v1/campaigns/{id}/batches)",
            )
        })?;
        Ok(input.clone())
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["batch"], "additionalProperties": false,
               "properties": {"batch": {"type": "string"}}})
    }

    fn max_attempts(&self) -> Option<i64> {
        // Each crash costs an attempt; finished rows are never redone, so retrying is cheap.
        Some(20)
    }

    async fn run(&self, ctx: JobContext) -> Result<Value> {
        let tk = &self.tickets;
        let tenant = ctx.job.tenant_id.clone();
        let id = ctx.job.input["batch"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let b = tk
            .store
            .batch(&tenant, &id)
            .await?
            .ok_or_else(|| bad("input.batch", format!("no batch {id:?}")))?;
        let c = tk
            .store
            .campaign(&tenant, &b.campaign_id, Some(b.campaign_version))
            .await?
            .ok_or_else(|| PlatformError::Corrupt(format!("campaign {} is gone", b.campaign_id)))?;
        if b.status != "running" {
            // Resumed after a cancel: running again until it ends.
            tk.store.set_batch_status(&id, "running", None).await?;
        }
        let pending = tk.store.batch_rows(&id, Some("pending")).await?;
        let counts = tk.store.row_counts(&id).await?;
        let mut finished = (counts.done + counts.failed) as usize;
        let total = b.total as usize;
        ctx.reporter
            .log(format!(
                "batch {id}: {total} rows, {} pending, {} done, {} failed",
                counts.pending, counts.done, counts.failed
            ))
            .await;
        ctx.reporter.progress_blocking(finished, total, None);
        let host = JobHost {
            ctx: ctx.clone(),
            store: tk.store.clone(),
            quiet: true,
        };
        for row in pending {
            if ctx.cancel.is_cancelled() {
                tk.store
                    .set_batch_status(&id, "canceled", Some(atelier_platform::now_ms()))
                    .await?;
                return Err(super::steps::cancelled(finished, total));
            }
            let Some(input) = row.input.clone() else {
                continue;
            };
            let tid = batch_ticket_id(&id, row.line);
            let mut t = match tk.store.ticket_any(&tid).await? {
                Some(t) => t,
                None => {
                    let mut t = TicketRecord::new(tid.clone(), &c, input, Some(ctx.job.id.clone()));
                    t.batch_id = Some(id.clone());
                    t.line = Some(row.line);
                    t
                }
            };
            let res = if t.status == TicketStatus::Ready {
                Ok(())
            } else {
                tk.workflow.run(&host, &c, &mut t, None).await
            };
            let now = atelier_platform::now_ms();
            match res {
                Ok(()) => {
                    tk.store
                        .finish_row(&id, row.line, "done", Some(&tid), None, now)
                        .await?
                }
                Err(PlatformError::Engine(atelier_engine::EngineError::Cancelled { .. })) => {
                    tk.store
                        .set_batch_status(&id, "canceled", Some(now))
                        .await?;
                    return Err(super::steps::cancelled(finished, total));
                }
                Err(e) => {
                    let rec =
                        t.steps.last().and_then(|r| r.error.clone()).unwrap_or_else(
                            || json!({"code": "internal", "message": e.to_string()}),
                        );
                    let mut err = json!({
                        "code": rec["code"],
                        "reason": rec["message"],
                        "step": t.steps.last().map(|r| r.step.name()),
                    });
                    if let Some(cat) = rec.get("category") {
                        err["category"] = cat.clone();
                    }
                    ctx.reporter
                        .log(format!("line {}: {} ({})", row.line, rec["code"], e))
                        .await;
                    tk.store
                        .finish_row(&id, row.line, "failed", Some(&tid), Some(&err), now)
                        .await?
                }
            }
            finished += 1;
            ctx.reporter.progress_blocking(finished, total, None);
        }
        let counts = tk.store.row_counts(&id).await?;
        tk.store
            .set_batch_status(&id, "succeeded", Some(atelier_platform::now_ms()))
            .await?;
        Ok(json!({
            "batch": id,
            "total": total,
            "done": counts.done,
            "failed": counts.failed,
            "links": format!("/v1/batches/{id}/links.csv"),
            "zip": format!("/v1/batches/{id}/tickets.zip"),
        }))
    }
}
