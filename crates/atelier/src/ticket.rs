//! `atelier ticket`: one photo ticket without the server, through the same nine steps.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use atelier_workflows::tickets::local::LocalHost;
use atelier_workflows::tickets::store::{TicketInput, TicketRecord};
use atelier_workflows::tickets::{Campaign, CampaignSpec, TicketWorkflow};
use atelier_workflows::{Guard, ModelRegistry};
use clap::Args;

use crate::{runtime, DeviceArgs, LlmArgs};

/// Arguments of `atelier ticket`.
#[derive(Args, Debug)]
pub struct TicketArgs {
    /// The campaign: JSON or TOML with the fields of `POST /v1/campaigns` (a `logo` may be a
    /// path to a PNG or JPEG file).
    #[arg(long)]
    campaign: PathBuf,
    /// The customer's name (printed only with --show-name).
    #[arg(long)]
    name: String,
    /// The customer's lifestyle text, Korean or English.
    #[arg(long)]
    text: String,
    /// Use this title instead of the language model's.
    #[arg(long)]
    title: Option<String>,
    /// Use this tagline instead of the language model's.
    #[arg(long)]
    tagline: Option<String>,
    /// A preset instead of the automatic choice.
    #[arg(long)]
    preset: Option<String>,
    /// Seed of the picture (and of the copy on local language models).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the customer's name on the ticket.
    #[arg(long)]
    show_name: bool,
    /// Output PNG.
    #[arg(long, short, default_value = "ticket.png")]
    out: PathBuf,
    /// Model folders (repeatable).
    #[arg(long = "models", default_value = "models")]
    models: Vec<PathBuf>,
    /// Safety policy file (as for `serve --policy`).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Base URL whose `/t/<id>` the ticket's QR code encodes (default: no QR code).
    #[arg(long)]
    share_base: Option<String>,
    /// Extra presets folder.
    #[arg(long)]
    presets: Option<PathBuf>,
    #[command(flatten)]
    llm: LlmArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

fn read_spec(path: &PathBuf, host: &LocalHost) -> anyhow::Result<CampaignSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?
    };
    let mut spec = CampaignSpec::from_json(value)?;
    spec.check()?;
    if let Some(logo) = spec.logo.clone() {
        let p = path
            .parent()
            .unwrap_or(std::path::Path::new("."))
            .join(&logo);
        let bytes = std::fs::read(&p).with_context(|| format!("reading logo {}", p.display()))?;
        image::load_from_memory(&bytes)
            .with_context(|| format!("logo {} does not decode", p.display()))?;
        spec.logo = Some(host.add_file(bytes));
    }
    Ok(spec)
}

/// Runs the steps and writes the ticket; prints the step records as JSON.
pub fn run(a: TicketArgs) -> anyhow::Result<i32> {
    let host = LocalHost::new(&format!("local-{}", atelier_platform::new_id()));
    let spec = read_spec(&a.campaign, &host)?;
    let load = a.device.load_options()?;
    let models = Arc::new(ModelRegistry::new(a.models.clone(), load.clone(), 1));
    let policies = match &a.policy {
        Some(p) => atelier_safety::PolicySet::from_toml(
            &p.display().to_string(),
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )?,
        None => atelier_safety::PolicySet::default(),
    };
    let checker = models
        .list()
        .into_iter()
        .map(|m| m.path.join("safety_checker"))
        .find(|p| atelier_safety::SafetyChecker::find(p).is_some())
        .map(|d| atelier_workflows::guard::load_checker(&d, &load.device))
        .transpose()?;
    let guard = Arc::new(Guard::new(policies, checker, 0)?);
    let llm = match a.llm.config() {
        Some(cfg) => Some(atelier_llm::Llm::open(&cfg, &load.device)?),
        None => None,
    };
    let workflow = TicketWorkflow {
        models,
        guard,
        writer: atelier_writer::Writer::new(llm),
        presets: Arc::new(atelier_server::presets(a.presets.as_deref())?),
        fonts: Arc::new(std::sync::Mutex::new(atelier_compose::Fonts::new())),
        share_base: a.share_base.clone().unwrap_or_default(),
    };
    let now = atelier_platform::now_ms();
    let campaign = Campaign {
        id: "local".into(),
        tenant_id: "local".into(),
        version: 1,
        spec,
        created_at: now,
        updated_at: now,
    };
    let input = TicketInput {
        name: a.name,
        text: a.text,
        title: a.title,
        tagline: a.tagline,
        preset: a.preset,
        seed: a.seed,
        show_name: a.show_name,
    };
    atelier_workflows::tickets::app::check_input(&input)?;
    let mut t = TicketRecord::new(host.job_id_owned(), &campaign, input, None);
    let res = runtime()?.block_on(workflow.run(&host, &campaign, &mut t, None));
    println!("{}", serde_json::to_string_pretty(&t.steps)?);
    res?;
    let file = t
        .file
        .as_deref()
        .and_then(|f| host.file(f))
        .context("the ticket has no published file")?;
    std::fs::write(&a.out, file).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    Ok(0)
}
