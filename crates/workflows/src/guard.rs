//! The safety and provenance steps every image-producing app runs: screen the prompt before
//! any compute, screen images after generation, apply the tenant's/campaign's policy, and
//! mark what is kept (metadata, optional visible label, invisible watermark).

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use atelier_engine::image::RgbImage;
use atelier_platform::{Blocked, JobContext, PlatformError};
use atelier_provenance::watermark::{self, Payload, DEFAULT_STRENGTH};
use atelier_provenance::{LabelSpec, Provenance};
use atelier_safety::checker::{blur, ImageVerdict};
use atelier_safety::policy::Effective;
use atelier_safety::{Action, ImageScreening, Policy, PolicySet, SafetyChecker, Screener};
use serde_json::{json, Value};

/// Where safety decisions are recorded: a job's audit log, or a log line when a workflow runs
/// without the server (`atelier ticket`).
#[async_trait]
pub trait Audit: Send + Sync {
    /// Records one decision (`blocked_prompt`, `flagged_image`, `override`, …).
    async fn audit(
        &self,
        action: &str,
        category: Option<&str>,
        detail: Value,
    ) -> Result<(), PlatformError>;
}

#[async_trait]
impl Audit for JobContext {
    async fn audit(
        &self,
        action: &str,
        category: Option<&str>,
        detail: Value,
    ) -> Result<(), PlatformError> {
        JobContext::audit(self, action, category, detail).await
    }
}

/// Deployment-wide safety and provenance settings, shared by the apps.
pub struct Guard {
    builtin: Screener,
    policies: PolicySet,
    checker: Option<Arc<SafetyChecker>>,
    /// Identifies this deployment inside watermarks (16 bits).
    pub service_id: u16,
    /// Embed the invisible watermark (on by default).
    pub watermark: bool,
    /// Sign a C2PA manifest into every output (when set).
    pub c2pa: Option<Arc<atelier_provenance::c2pa::Signer>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("terms", &self.builtin.len())
            .field("checker", &self.checker.as_ref().map(|c| c.path.clone()))
            .field("service_id", &self.service_id)
            .finish()
    }
}

/// What prompt screening concluded for a job that may run.
#[derive(Debug, Clone)]
pub struct PromptVerdict {
    pub policy: Effective,
    /// Set when a policy let a flagged prompt through (`flag`/`blur` for text).
    pub flagged: Option<String>,
}

/// Images after screening and policy, ready to mark and store.
#[derive(Debug)]
pub struct Screened {
    pub images: Vec<RgbImage>,
    pub screening: ImageScreening,
    pub nsfw: Vec<bool>,
    pub flagged: Vec<bool>,
    pub blurred: Vec<bool>,
}

impl Guard {
    /// Built-in lists, the given policies and (optionally) an installed checker.
    pub fn new(
        policies: PolicySet,
        checker: Option<Arc<SafetyChecker>>,
        service_id: u16,
    ) -> Result<Self, atelier_safety::SafetyError> {
        Ok(Self {
            builtin: Screener::builtin()?,
            policies,
            checker,
            service_id,
            watermark: true,
            c2pa: None,
        })
    }

    /// Whether an image checker is installed.
    pub fn has_checker(&self) -> bool {
        self.checker.is_some()
    }

    /// Whether `id` names a configured campaign.
    pub fn has_campaign(&self, id: &str) -> bool {
        self.policies.has_campaign(id)
    }

    /// Screens a prompt under the job's policy. A blocked prompt is audited and returned as
    /// `content_blocked`; overrides and flags are audited.
    pub async fn screen_prompt(
        &self,
        ctx: &JobContext,
        campaign: Option<&str>,
        prompt: &str,
    ) -> Result<PromptVerdict, PlatformError> {
        let policy = self.policy(&ctx.job.tenant_id, campaign, None);
        self.screen_text(ctx, policy, campaign, "prompt", prompt)
            .await
    }

    /// The policy in force: deployment default, tenant, the policy file's campaign table, then
    /// a campaign's own stored policy (`extra`).
    pub fn policy(
        &self,
        tenant: &str,
        campaign: Option<&str>,
        extra: Option<&Policy>,
    ) -> Effective {
        self.policies
            .resolve_with(&self.builtin, tenant, campaign, extra)
    }

    /// Screens one text (`stage` names it in the audit log and the error: `prompt`,
    /// `lifestyle_text`, `copy`, …) under `policy`.
    pub async fn screen_text(
        &self,
        ctx: &dyn Audit,
        policy: Effective,
        campaign: Option<&str>,
        stage: &str,
        prompt: &str,
    ) -> Result<PromptVerdict, PlatformError> {
        let d = policy.screener.screen(prompt);
        for o in &d.overridden {
            ctx.audit(
                "override",
                Some(&o.category),
                json!({"term": o.term, "span": o.span, "campaign": campaign, "stage": stage}),
            )
            .await?;
        }
        let Some(category) = d.category.clone() else {
            return Ok(PromptVerdict {
                policy,
                flagged: None,
            });
        };
        let detail = json!({
            "stage": stage,
            "term": d.term,
            "span": d.span,
            "matches": d.matches,
            "campaign": campaign,
        });
        if policy.action == Action::Reject {
            ctx.audit("blocked_prompt", Some(&category), detail.clone())
                .await?;
            return Err(PlatformError::ContentBlocked(Box::new(Blocked {
                message: format!(
                    "the {} matched {:?} at characters {:?}",
                    stage.replace('_', " "),
                    d.term.unwrap_or_default(),
                    d.span.unwrap_or_default()
                ),
                category,
                details: detail,
            })));
        }
        ctx.audit("flagged_prompt", Some(&category), detail).await?;
        Ok(PromptVerdict {
            policy,
            flagged: Some(category),
        })
    }

    /// Screens generated images and applies the image policy: a rejected image fails the
    /// job (nothing stored), a blurred one is replaced, a flagged one is marked.
    pub async fn screen_images(
        &self,
        ctx: &dyn Audit,
        verdict: &PromptVerdict,
        images: Vec<RgbImage>,
    ) -> Result<Screened, PlatformError> {
        let n = images.len();
        let (screening, verdicts): (ImageScreening, Vec<Option<ImageVerdict>>) = match &self.checker
        {
            Some(c) => {
                let c = c.clone();
                let imgs = images.clone();
                let v = tokio::task::spawn_blocking(move || c.check(&imgs))
                    .await
                    .map_err(|e| PlatformError::Corrupt(format!("checker panicked: {e}")))?
                    .map_err(|e| PlatformError::Corrupt(format!("safety checker: {e}")))?;
                (ImageScreening::Checked, v.into_iter().map(Some).collect())
            }
            None => (ImageScreening::Unavailable, vec![None; n]),
        };
        let nsfw: Vec<bool> = verdicts
            .iter()
            .map(|v| v.as_ref().is_some_and(|v| v.nsfw))
            .collect();
        let action = verdict.policy.image_action;
        if action == Action::Reject && nsfw.iter().any(|x| *x) {
            let detail = json!({
                "stage": "image",
                "has_nsfw_concepts": nsfw,
                "verdicts": verdicts,
            });
            ctx.audit("blocked_image", Some("nsfw_image"), detail.clone())
                .await?;
            return Err(PlatformError::ContentBlocked(Box::new(Blocked {
                category: "nsfw_image".into(),
                message: "the safety checker flagged a generated image; nothing was stored".into(),
                details: detail,
            })));
        }
        let text_blur = verdict.flagged.is_some() && verdict.policy.action == Action::Blur;
        let mut out = Vec::with_capacity(n);
        let mut flagged = Vec::with_capacity(n);
        let mut blurred = Vec::with_capacity(n);
        for (i, img) in images.into_iter().enumerate() {
            let is_flagged = nsfw[i] || verdict.flagged.is_some();
            let do_blur = (nsfw[i] && action == Action::Blur) || text_blur;
            if nsfw[i] {
                let what = if do_blur {
                    "blurred_image"
                } else {
                    "flagged_image"
                };
                ctx.audit(
                    what,
                    Some("nsfw_image"),
                    json!({"stage": "image", "index": i, "verdict": verdicts[i]}),
                )
                .await?;
            }
            out.push(if do_blur { blur(&img) } else { img });
            flagged.push(is_flagged);
            blurred.push(do_blur);
        }
        Ok(Screened {
            images: out,
            screening,
            nsfw,
            flagged,
            blurred,
        })
    }

    /// Draws the label (when asked) and embeds the watermark; returns the watermark payload
    /// when one was embedded.
    pub fn mark(
        &self,
        img: &mut RgbImage,
        label: Option<&LabelSpec>,
        job_id: &str,
    ) -> Result<Option<Payload>, PlatformError> {
        if let Some(l) = label {
            l.draw(&mut img.data, img.width, img.height)
                .map_err(|e| PlatformError::invalid("input.label", e.to_string()))?;
        }
        if !self.watermark {
            return Ok(None);
        }
        let p = Payload::for_job(self.service_id, job_id);
        Ok(
            watermark::embed(&mut img.data, img.width, img.height, p, DEFAULT_STRENGTH)
                .then_some(p),
        )
    }
}

impl Guard {
    /// Signs a C2PA manifest into encoded output bytes when a signer is configured.
    pub fn sign(
        &self,
        bytes: Vec<u8>,
        mime: &str,
        prov: &Provenance,
    ) -> Result<Vec<u8>, PlatformError> {
        match &self.c2pa {
            Some(s) => atelier_provenance::c2pa::sign(&bytes, mime, prov, s)
                .map_err(|e| PlatformError::Corrupt(e.to_string())),
            None => Ok(bytes),
        }
    }

    /// A finished output as PNG: parameter text, provenance (text chunks + XMP) and, when
    /// configured, a C2PA manifest.
    pub fn signed_png(
        &self,
        img: &RgbImage,
        parameters: &str,
        prov: &Provenance,
    ) -> Result<Vec<u8>, PlatformError> {
        let bytes = atelier_provenance::metadata::encode_png(
            img.width, img.height, &img.data, parameters, prov,
        )
        .map_err(|e| PlatformError::Failed {
            code: "render_error".into(),
            message: e.to_string(),
        })?;
        self.sign(bytes, "image/png", prov)
    }
}

/// Builds the provenance record of one output image.
#[allow(clippy::too_many_arguments)]
pub fn provenance(
    job_id: &str,
    model: &str,
    weights: Option<String>,
    seed: u64,
    parameters: Value,
    watermark: Option<Payload>,
    label: Option<&LabelSpec>,
    screening: Value,
) -> Provenance {
    let mut p = Provenance::new(model, seed, parameters);
    p.job_id = Some(job_id.to_owned());
    p.weights_sha256 = weights;
    p.watermark = watermark.map(|w| w.hex());
    p.label = label.map(|l| l.text.clone());
    p.screening = Some(screening);
    p
}

/// Loads a checker from `dir` if one is there; logs what it found.
pub fn load_checker(
    dir: &Path,
    device: &candle_core::Device,
) -> Result<Arc<SafetyChecker>, atelier_safety::SafetyError> {
    let c = SafetyChecker::load(dir, device)?;
    tracing::info!(path = %c.path.display(), "safety checker loaded");
    Ok(Arc::new(c))
}
