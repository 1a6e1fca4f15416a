//! The `atelier` command: serve, generate images, compose layouts and animatics, check parity,
//! benchmark, manage models.

mod bench;
mod compose;
mod diary;
mod ticket;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use atelier_engine::model::{default_dtype, parse_device, parse_dtype};
use atelier_engine::pipeline::Phase;
use atelier_engine::{CancelToken, DiffusionModel, GenerateRequest, LoadOptions, SchedulerKind};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

/// atelier: a self-hosted generative-media studio.
#[derive(Parser, Debug)]
#[command(name = "atelier", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the API server with in-process workers (SQLite + local files by default).
    Serve(ServeArgs),
    /// Run a worker process for a shared deployment (--database postgres://, --store s3://):
    /// it claims jobs whose model it can load, heartbeats and hands jobs back when stopped.
    /// `--workers` is its number of slots; `--listen` serves only /healthz and /metrics.
    Worker(WorkerArgs),
    /// Operate a deployment: list workers, drain one, requeue the jobs of a dead one.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Generate images from a prompt with a local diffusers-format model.
    Generate(GenerateArgs),
    /// Run a writer task (image_prompt, ticket_copy, comic_panels, storyboard) on a language
    /// model; prints the schema-valid JSON.
    Write(WriteArgs),
    /// Replay a diffusers reference trace and report per-stage errors (exit 1 if out of tolerance).
    Parity(ParityArgs),
    /// Time text encoding, UNet steps and VAE decode on random weights of SD-Turbo's shapes.
    Bench(bench::BenchArgs),
    /// List or download models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Screen prompts (one per line, stdin or --file); prints one JSON decision per line.
    Screen(ScreenArgs),
    /// Print an image's provenance: metadata, source type, watermark payload.
    Inspect(InspectArgs),
    /// Lay out tickets, storyboard sheets and comics; encode animatics (MP4, GIF, WebP).
    #[command(subcommand)]
    Compose(compose::ComposeCommand),
    /// Make one photo ticket without the server (campaign file + customer text -> PNG).
    Ticket(ticket::TicketArgs),
    /// Diary-toon site tools (seeding a load-test site, evaluating recommendations).
    #[command(subcommand)]
    Diary(diary::DiaryCommand),
}

#[derive(Args, Debug)]
struct ScreenArgs {
    /// Read prompts from this file instead of stdin.
    #[arg(long)]
    file: Option<PathBuf>,
    /// A campaign policy (TOML: allow, deny, disable; see the README).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Include every match and override, not just the decision.
    #[arg(long)]
    verbose: bool,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Image files (PNG, JPEG, WebP).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug, Clone)]
struct DeviceArgs {
    /// cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu", env = "ATELIER_DEVICE")]
    device: String,
    /// f32, f16 or bf16 (default: f32 on cpu, f16 on gpus).
    #[arg(long)]
    dtype: Option<String>,
}

impl DeviceArgs {
    fn load_options(&self) -> anyhow::Result<LoadOptions> {
        let device = parse_device(&self.device)?;
        let dtype = match &self.dtype {
            Some(d) => parse_dtype(d, &device)?,
            None => default_dtype(&device),
        };
        Ok(LoadOptions { device, dtype })
    }
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Model folder (diffusers layout) or a model name under --models.
    #[arg(long)]
    model: String,
    /// Where named models live.
    #[arg(long, default_value = "models", env = "ATELIER_MODELS")]
    models: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    negative: Option<String>,
    #[arg(long)]
    width: Option<usize>,
    #[arg(long)]
    height: Option<usize>,
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long)]
    guidance: Option<f64>,
    /// ddim, euler, euler_a, dpmpp_2m_karras, dpmpp_2m, lcm (default: the model's own).
    #[arg(long)]
    scheduler: Option<String>,
    /// Timestep spacing override: linspace, leading or trailing (SD-Turbo uses trailing).
    #[arg(long)]
    spacing: Option<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Output PNG; with --batch N > 1 images are written as NAME-0.png, NAME-1.png, ...
    #[arg(long, default_value = "out.png")]
    out: PathBuf,
    /// Draw the visible "AI 생성" label (bottom right).
    #[arg(long)]
    label: bool,
    /// Label text (implies --label).
    #[arg(long)]
    label_text: Option<String>,
    /// Skip the invisible watermark.
    #[arg(long)]
    no_watermark: bool,
    /// Deployment id carried by the watermark.
    #[arg(long, default_value_t = 1, env = "ATELIER_SERVICE_ID")]
    service_id: u16,
    /// A policy whose allow/deny lists apply to the prompt.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Sign a C2PA manifest with an ephemeral self-signed certificate (off by default so
    /// the same command writes the same bytes).
    #[arg(long)]
    c2pa: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct ParityArgs {
    /// Model folder the reference was traced with.
    #[arg(long)]
    model: PathBuf,
    /// reference.safetensors (its reference.json must sit beside it).
    #[arg(long)]
    reference: PathBuf,
    /// Only runs whose id contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7860", env = "ATELIER_LISTEN")]
    listen: String,
    /// Data directory: the SQLite database and the artifacts.
    #[arg(long, default_value = "atelier-data", env = "ATELIER_DATA")]
    data: PathBuf,
    #[command(flatten)]
    shared: SharedArgs,
    /// Serve the API only: no in-process workers (run `atelier worker`s against the same
    /// --database and --store).
    #[arg(long)]
    no_workers: bool,
    /// Model folders (repeatable): a folder of models, or a model folder itself.
    #[arg(long = "models", default_value = "models")]
    models: Vec<PathBuf>,
    /// In-process workers (default: one per device).
    #[arg(long)]
    workers: Option<usize>,
    /// Queued jobs beyond which submissions get 429.
    #[arg(long, default_value_t = 1000)]
    max_queue: i64,
    /// Attempts per job when a worker dies mid-job.
    #[arg(long, default_value_t = 2)]
    max_attempts: i64,
    /// Most queued text-to-image jobs of the same model, size and steps a worker runs as one
    /// batch through the UNet (default: 1 on cpu, where batching adds latency and little
    /// throughput; 4 on gpus).
    #[arg(long, env = "ATELIER_MAX_BATCH", value_parser = clap::value_parser!(u16).range(1..=16))]
    max_batch: Option<u16>,
    /// With --max-batch above 1: milliseconds a worker holding a job waits for more of the same
    /// shape to arrive before it starts the batch (at most 2000).
    #[arg(long, default_value_t = 0, env = "ATELIER_BATCH_WAIT_MS", value_parser = clap::value_parser!(u64).range(0..=2000))]
    batch_wait_ms: u64,
    /// Models kept in memory at once.
    #[arg(long, default_value_t = 2)]
    max_loaded_models: usize,
    /// Allow webhooks to private and loopback addresses.
    #[arg(long)]
    allow_private_webhooks: bool,
    /// Sustained requests per second one API key may send (0: unlimited); above it, 429 with
    /// Retry-After.
    #[arg(long, default_value_t = 100, env = "ATELIER_RATE_LIMIT")]
    rate_limit: u32,
    /// Requests one API key may send at once above --rate-limit.
    #[arg(long, default_value_t = 1000, env = "ATELIER_RATE_BURST")]
    rate_burst: u32,
    /// Event streams (prediction SSE, streamed chat) one API key may hold open on this server.
    #[arg(long, default_value_t = 256, env = "ATELIER_MAX_STREAMS_PER_KEY")]
    max_streams_per_key: usize,
    /// Seconds a client may take to send a request body (then 408).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout_s: u64,
    /// Seconds a client may take to send a request's line and headers (then the connection
    /// closes).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout_s: u64,
    /// Base URL clients reach this server at (default: from the Host header).
    #[arg(long, env = "ATELIER_PUBLIC_URL")]
    public_url: Option<String>,
    /// Safety policies (TOML with [default], [tenants.ID], [campaigns.ID]).
    #[arg(long, env = "ATELIER_POLICY")]
    policy: Option<PathBuf>,
    /// Safety checker folder (diffusers `safety_checker` format); default: the first
    /// installed model that ships one.
    #[arg(long, env = "ATELIER_SAFETY_CHECKER")]
    safety_checker: Option<PathBuf>,
    /// Extra photo-ticket presets: a folder of `<name>/preset.toml` directories.
    #[arg(long, env = "ATELIER_PRESETS")]
    presets: Option<PathBuf>,
    /// Deployment id carried by invisible watermarks (0-65535).
    #[arg(long, default_value_t = 1, env = "ATELIER_SERVICE_ID")]
    service_id: u16,
    /// Do not embed invisible watermarks.
    #[arg(long)]
    no_watermark: bool,
    /// C2PA signing certificate chain (PEM, end entity first); without it manifests are
    /// signed with an ephemeral self-signed certificate and read as untrusted.
    #[arg(long, requires = "c2pa_key", env = "ATELIER_C2PA_CERT")]
    c2pa_cert: Option<PathBuf>,
    /// Private key (PEM) for --c2pa-cert.
    #[arg(long, requires = "c2pa_cert", env = "ATELIER_C2PA_KEY")]
    c2pa_key: Option<PathBuf>,
    /// Signing algorithm of the key: es256, es384, es512, ps256, ps384, ps512, ed25519.
    #[arg(long, default_value = "es256")]
    c2pa_alg: String,
    /// Do not write C2PA manifests.
    #[arg(long, conflicts_with = "c2pa_cert")]
    no_c2pa: bool,
    /// Diary toons: the diffusion model panels are drawn with (default: the first installed).
    #[arg(long, env = "ATELIER_DIARY_MODEL")]
    diary_model: Option<String>,
    /// Diary toons: panel side in pixels (default: the model's).
    #[arg(long)]
    diary_size: Option<usize>,
    /// Diary toons: denoising steps (default: the model's).
    #[arg(long)]
    diary_steps: Option<usize>,
    /// Diary toons: width of the 2×2 comic page in pixels (the webtoon strip is 70% of it).
    #[arg(long, default_value_t = 1024.0)]
    diary_comic_width: f32,
    /// Storyboards: the diffusion model cuts are drawn with (default: the first installed;
    /// a board's `generation.model` overrides it).
    #[arg(long, env = "ATELIER_STORYBOARD_MODEL")]
    storyboard_model: Option<String>,
    /// Storyboards: long side of each cut picture in pixels (default: the model's size).
    #[arg(long)]
    storyboard_size: Option<u32>,
    /// Storyboards: denoising steps (default: the model's).
    #[arg(long)]
    storyboard_steps: Option<u32>,
    /// Storyboards: animatic formats made by default (comma-separated: mp4, gif, webp).
    #[arg(long, value_delimiter = ',', default_value = "mp4", value_parser = ["mp4", "gif", "webp"])]
    storyboard_formats: Vec<String>,
    /// Storyboards: long side of the animatic in pixels.
    #[arg(long, default_value_t = 1280, value_parser = clap::value_parser!(u32).range(128..=1920))]
    storyboard_video_size: u32,
    /// Storyboards: resolution of the sheet PNG (the PDF is vector).
    #[arg(long, default_value_t = 150.0)]
    storyboard_sheet_dpi: f32,
    /// Sentence-embedding model folder (BERT or XLM-RoBERTa: config.json, tokenizer.json,
    /// model.safetensors) that adds meaning to diary recommendations.
    #[arg(long, env = "ATELIER_EMBEDDING_MODEL")]
    embedding_model: Option<PathBuf>,
    /// Let API-key holders pull models over the API (`POST /v1/models/pulls`, the web UI's
    /// Models page); open mode on loopback always may.
    #[arg(long)]
    allow_model_pull: bool,
    #[command(flatten)]
    llm: LlmArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Which language model writes text (local weights or a remote endpoint).
#[derive(Args, Debug)]
struct LlmArgs {
    /// Local language model: a Qwen2/Qwen2.5/Qwen3 folder (config.json, *.safetensors,
    /// tokenizer.json) or a .gguf file.
    #[arg(long, env = "ATELIER_LLM", conflicts_with = "llm_url")]
    llm: Option<PathBuf>,
    /// Remote OpenAI-compatible base URL, e.g. http://localhost:11434/v1 (Ollama).
    #[arg(long, env = "ATELIER_LLM_URL", requires = "llm_model")]
    llm_url: Option<String>,
    /// Model name on the remote server.
    #[arg(long, env = "ATELIER_LLM_MODEL")]
    llm_model: Option<String>,
    /// API key for the remote server.
    #[arg(long, env = "ATELIER_LLM_KEY", hide_env_values = true)]
    llm_key: Option<String>,
    /// Seconds before a remote request times out.
    #[arg(long, default_value_t = 120)]
    llm_timeout: u64,
    /// Retries after remote timeouts, connection errors, 429 and 5xx.
    #[arg(long, default_value_t = 2)]
    llm_retries: usize,
}

impl LlmArgs {
    fn config(&self) -> Option<atelier_llm::LlmConfig> {
        if let Some(p) = &self.llm {
            return Some(atelier_llm::LlmConfig::Local(p.clone()));
        }
        let url = self.llm_url.clone()?;
        let mut r = atelier_llm::RemoteConfig::new(url, self.llm_model.clone().unwrap_or_default());
        r.api_key = self.llm_key.clone();
        r.timeout = std::time::Duration::from_secs(self.llm_timeout.max(1));
        r.retries = self.llm_retries;
        Some(atelier_llm::LlmConfig::Remote(r))
    }
}

#[derive(Args, Debug)]
struct WriteArgs {
    /// image_prompt, ticket_copy, comic_panels or storyboard.
    task: String,
    /// The task input as JSON (see README, "Language models"); `-` reads stdin.
    #[arg(long)]
    input: String,
    /// Seed (local models reproduce a text with the same seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the output schema for this input instead of running the task.
    #[arg(long)]
    schema: bool,
    #[command(flatten)]
    llm: LlmArgs,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Where a deployment shared by several nodes keeps its state and files.
#[derive(Args, Debug, Clone)]
struct SharedArgs {
    /// Job and app database shared by nodes: postgres://user@host:port/db (default: SQLite
    /// in --data).
    #[arg(long, env = "ATELIER_DATABASE_URL")]
    database: Option<String>,
    /// Artifact store: s3://bucket/prefix (credentials, region and endpoint from AWS_*
    /// variables) or a folder (default: --data/artifacts).
    #[arg(long = "store", env = "ATELIER_STORE")]
    objects: Option<String>,
}

#[derive(Args, Debug)]
struct WorkerArgs {
    /// Stable worker id (e.g. the machine's name): restarting under the same id requeues the
    /// jobs the previous run held at once. Default: host name and a random part.
    #[arg(long, env = "ATELIER_WORKER_ID")]
    id: Option<String>,
    /// Do not serve /healthz and /metrics on --listen.
    #[arg(long)]
    no_http: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// List registered workers (JSON lines): device, models, load, last heartbeat.
    Workers(AdminArgs),
    /// Ask a worker to stop claiming and exit once its running jobs end.
    Drain {
        id: String,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// Let a drained worker claim again (if it is still running).
    Resume {
        id: String,
        #[command(flatten)]
        at: AdminArgs,
    },
    /// Requeue the running jobs of a worker (one known to be dead) now, instead of when
    /// their leases run out; with --stale SECS, of every worker silent that long.
    Requeue {
        /// The worker whose jobs go back.
        #[arg(required_unless_present = "stale")]
        id: Option<String>,
        /// Every worker whose last heartbeat is older than this many seconds.
        #[arg(long)]
        stale: Option<u64>,
        #[command(flatten)]
        at: AdminArgs,
    },
}

#[derive(Args, Debug)]
struct AdminArgs {
    #[arg(long, default_value = "atelier-data", env = "ATELIER_DATA")]
    data: PathBuf,
    /// postgres://… of the deployment (default: SQLite in --data).
    #[arg(long, env = "ATELIER_DATABASE_URL")]
    database: Option<String>,
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key for a tenant (created if new); the key is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "atelier-data", env = "ATELIER_DATA")]
        data: PathBuf,
        /// postgres://… of the deployment (default: SQLite in --data).
        #[arg(long, env = "ATELIER_DATABASE_URL")]
        database: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Show the models installed in a folder.
    List {
        #[arg(long, default_value = "models", env = "ATELIER_MODELS")]
        dir: PathBuf,
    },
    /// Download a diffusers repository, a language model (safetensors) or one file (GGUF) from
    /// the Hugging Face hub (honours HF_ENDPOINT, HF_HOME, HF_TOKEN).
    Pull {
        /// e.g. stabilityai/sd-turbo
        repo_id: String,
        #[arg(long, default_value = "main")]
        revision: String,
        #[arg(long, default_value = "models", env = "ATELIER_MODELS")]
        dir: PathBuf,
        /// Also fetch fp16 variants and other weights not needed by atelier.
        #[arg(long)]
        all_files: bool,
        /// Fetch only this file (e.g. one quantization from a GGUF repository).
        #[arg(long)]
        file: Option<String>,
    },
}

/// Keeps freed memory in the process for reuse (glibc). Each UNet layer and VAE stage allocates
/// outputs of tens to hundreds of MB; by default glibc maps every block over 32 MB fresh from the
/// kernel and unmaps it on free, so every such allocation paid a page fault per 4 KiB page
/// (measured: a 128x512x512 nearest upsample took 174 ms, 95 ms with reuse). The cost is that
/// RSS stays at its peak instead of shrinking between generations.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    if std::env::var_os("ATELIER_MALLOC_DEFAULT").is_some() {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    // The server logs its lifecycle; one-shot commands stay quiet unless asked.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Worker(_) => "info,sqlx=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATELIER_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(a) => serve(a),
        Command::Worker(a) => worker(a),
        Command::Admin(c) => runtime().and_then(|rt| rt.block_on(admin(c))),
        Command::Keys(KeysCommand::Create {
            tenant,
            data,
            database,
        }) => keys_create(&tenant, &data, database.as_deref()),
        Command::Generate(a) => generate(a),
        Command::Diary(c) => runtime().and_then(|rt| diary::run(c, rt)),
        Command::Write(a) => write(a),
        Command::Parity(a) => parity(a),
        Command::Bench(a) => bench::run(a),
        Command::Models(ModelsCommand::List { dir }) => models_list(&dir),
        Command::Models(ModelsCommand::Pull {
            repo_id,
            revision,
            dir,
            all_files,
            file,
        }) => models_pull(&repo_id, &revision, &dir, all_files, file.as_deref()),
        Command::Screen(a) => screen(a),
        Command::Inspect(a) => inspect(a),
        Command::Compose(c) => compose::run(c),
        Command::Ticket(a) => ticket::run(a),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    let cfg = serve_config(a)?;
    runtime()?.block_on(atelier_server::serve(cfg))?;
    Ok(0)
}

fn worker(a: WorkerArgs) -> anyhow::Result<i32> {
    let cfg = serve_config(a.serve)?;
    let wc = atelier_server::fleet::WorkerConfig {
        id: a.id,
        http: !a.no_http,
    };
    runtime()?.block_on(atelier_server::fleet::run_worker_node(cfg, wc))?;
    Ok(0)
}

async fn admin(c: AdminCommand) -> anyhow::Result<i32> {
    let at = match &c {
        AdminCommand::Workers(at)
        | AdminCommand::Drain { at, .. }
        | AdminCommand::Resume { at, .. }
        | AdminCommand::Requeue { at, .. } => at,
    };
    let b = atelier_server::open_backends(&at.data, at.database.as_deref(), None).await?;
    let store = b.store;
    let now = atelier_platform::now_ms();
    match &c {
        AdminCommand::Workers(_) => {
            for w in store.list_workers().await? {
                let mut v = serde_json::to_value(&w)?;
                v["seen_s_ago"] = serde_json::json!((now - w.last_seen) / 1000);
                println!("{v}");
            }
        }
        AdminCommand::Drain { id, .. } | AdminCommand::Resume { id, .. } => {
            let draining = matches!(c, AdminCommand::Drain { .. });
            if !store.set_draining(id, draining).await? {
                bail!("no worker {id:?} (see `atelier admin workers`)");
            }
            eprintln!(
                "worker {id} {} (it notices within {} s)",
                if draining { "drains" } else { "claims again" },
                atelier_server::fleet::WORKER_HEARTBEAT.as_secs()
            );
        }
        AdminCommand::Requeue { id, stale, .. } => {
            let mut owners: Vec<String> = id.iter().cloned().collect();
            if let Some(secs) = stale {
                let cutoff = now - i64::try_from(*secs).unwrap_or(i64::MAX / 2) * 1000;
                owners.extend(
                    store
                        .list_workers()
                        .await?
                        .into_iter()
                        .filter(|w| w.last_seen < cutoff)
                        .map(|w| w.id),
                );
            }
            let mut n = 0;
            for owner in &owners {
                n += store.expire_leases(owner).await?.len();
            }
            let r = store.recover_expired(now).await?;
            println!(
                "{}",
                serde_json::json!({"workers": owners, "leases_ended": n, "requeued": r.requeued, "failed": r.failed})
            );
        }
    }
    Ok(0)
}

fn serve_config(a: ServeArgs) -> anyhow::Result<atelier_server::ServeConfig> {
    let load = a.device.load_options()?;
    let max_batch = a
        .max_batch
        .map_or(if load.device.is_cpu() { 1 } else { 4 }, usize::from);
    Ok(atelier_server::ServeConfig {
        listen: a.listen,
        data: a.data,
        database: a.shared.database,
        objects: a.shared.objects,
        no_workers: a.no_workers,
        models: a.models,
        workers: a.workers.unwrap_or(1),
        load,
        allow_private_webhooks: a.allow_private_webhooks,
        public_url: a.public_url,
        limits: atelier_platform::Limits {
            max_queue: a.max_queue,
            max_attempts: a.max_attempts.max(1),
            max_batch,
            batch_wait: std::time::Duration::from_millis(a.batch_wait_ms),
            ..Default::default()
        },
        max_loaded_models: a.max_loaded_models,
        policy: a.policy,
        safety_checker: a.safety_checker,
        service_id: a.service_id,
        watermark: !a.no_watermark,
        llm: a.llm.config(),
        presets: a.presets,
        toon: atelier_workflows::diary::ToonSettings {
            model: a.diary_model,
            size: a.diary_size,
            steps: a.diary_steps,
            grid_width: a.diary_comic_width,
            strip_width: (a.diary_comic_width * 0.7).max(200.0),
            ..Default::default()
        },
        embedding_model: a.embedding_model,
        allow_model_pull: a.allow_model_pull,
        http: atelier_server::limits::HttpLimitSettings {
            rate_per_s: a.rate_limit,
            burst: a.rate_burst,
            max_streams_per_key: a.max_streams_per_key.max(1),
            body_timeout: std::time::Duration::from_secs(a.body_timeout_s),
            header_timeout: std::time::Duration::from_secs(a.header_timeout_s),
        },
        storyboard: atelier_workflows::storyboards::StoryboardSettings {
            model: a.storyboard_model,
            size: a.storyboard_size,
            steps: a.storyboard_steps,
            formats: a.storyboard_formats,
            animatic_size: a.storyboard_video_size,
            sheet_dpi: a.storyboard_sheet_dpi.clamp(36.0, 600.0),
            ..Default::default()
        },
        c2pa: match (a.no_c2pa, a.c2pa_cert, a.c2pa_key) {
            (true, _, _) => atelier_server::C2paConfig::Off,
            (false, Some(cert), Some(key)) => atelier_server::C2paConfig::Pem {
                cert,
                key,
                alg: a.c2pa_alg,
            },
            _ => atelier_server::C2paConfig::Ephemeral,
        },
    })
}

fn write(a: WriteArgs) -> anyhow::Result<i32> {
    let text = if a.input == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        a.input.clone()
    };
    let input: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("--input is not JSON: {e}"))?;
    if a.schema {
        let schema = atelier_writer::Writer::schema_json(&a.task, input)?;
        println!("{}", serde_json::to_string_pretty(&schema)?);
        return Ok(0);
    }
    let llm = match a.llm.config() {
        Some(cfg) => Some(atelier_llm::Llm::open(
            &cfg,
            &a.device.load_options()?.device,
        )?),
        None => None,
    };
    let writer = atelier_writer::Writer::new(llm);
    let opts = atelier_writer::WriteOptions {
        seed: a.seed,
        ..Default::default()
    };
    let out = runtime()?.block_on(writer.write_json(&a.task, input, &opts))?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn keys_create(tenant: &str, data: &Path, database: Option<&str>) -> anyhow::Result<i32> {
    if tenant.trim().is_empty() || tenant.len() > 64 {
        bail!("invalid --tenant: 1 to 64 characters");
    }
    let key = runtime()?.block_on(async {
        let store = atelier_server::open_backends(data, database, None)
            .await?
            .store;
        let k =
            atelier_platform::auth::create_key(store.as_ref(), tenant, atelier_platform::now_ms())
                .await?;
        anyhow::Ok(k)
    })?;
    eprintln!("created a key for tenant {tenant:?}; it is shown only now:");
    println!("{key}");
    Ok(0)
}

fn resolve_model_dir(model: &str, models: &Path) -> PathBuf {
    let direct = PathBuf::from(model);
    if direct.is_dir() {
        return direct;
    }
    let named = models.join(model);
    if named.is_dir() {
        return named;
    }
    direct
}

fn output_paths(out: &Path, n: usize) -> Vec<PathBuf> {
    if n == 1 {
        return vec![out.to_path_buf()];
    }
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let ext = out
        .extension()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "png".into());
    (0..n)
        .map(|i| out.with_file_name(format!("{stem}-{i}.{ext}")))
        .collect()
}

/// The built-in lists, with a policy file's lists on top.
fn screener(policy: Option<&Path>) -> anyhow::Result<atelier_safety::Screener> {
    let mut s = atelier_safety::Screener::builtin()?;
    if let Some(p) = policy {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let pol = atelier_safety::Policy::from_toml(&p.display().to_string(), &text)?;
        let mut eff = atelier_safety::policy::Effective {
            action: atelier_safety::Action::Reject,
            image_action: atelier_safety::Action::Reject,
            label: false,
            screener: s,
        };
        pol.apply(&mut eff);
        s = eff.screener;
    }
    Ok(s)
}

fn screen(a: ScreenArgs) -> anyhow::Result<i32> {
    use std::io::{BufRead, Write};
    let s = screener(a.policy.as_deref())?;
    let input: Box<dyn BufRead> = match &a.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).with_context(|| format!("opening {}", f.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut blocked = 0;
    for line in input.lines() {
        let line = line.context("reading prompts (expected UTF-8 text, one prompt per line)")?;
        let d = s.screen(&line);
        if !d.allowed {
            blocked += 1;
        }
        let mut v = serde_json::json!({
            "allowed": d.allowed,
            "category": d.category,
            "term": d.term,
            "span": d.span,
        });
        if a.verbose {
            v["prompt"] = serde_json::json!(line);
            v["matches"] = serde_json::json!(d.matches);
            v["overridden"] = serde_json::json!(d.overridden);
        }
        writeln!(out, "{v}")?;
    }
    out.flush()?;
    eprintln!("{blocked} blocked");
    Ok(0)
}

fn inspect(a: InspectArgs) -> anyhow::Result<i32> {
    let mut status = 0;
    for f in &a.files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let r = match atelier_provenance::inspect(&bytes) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: {e}", f.display());
                status = 1;
                continue;
            }
        };
        if a.json {
            let mut v = serde_json::to_value(&r)?;
            v["file"] = serde_json::json!(f.display().to_string());
            println!("{v}");
            continue;
        }
        println!("{}", f.display());
        println!("  format:        {} {}x{}", r.format, r.width, r.height);
        println!(
            "  source type:   {}",
            r.digital_source_type
                .as_deref()
                .unwrap_or("(no XMP source type)")
        );
        match &r.provenance {
            Some(p) => {
                println!("  generator:     {}", p.generator);
                println!(
                    "  created:       {}",
                    p.created.as_deref().unwrap_or("(not recorded)")
                );
                println!(
                    "  job id:        {}",
                    p.job_id.as_deref().unwrap_or("(none: made by the CLI)")
                );
                println!("  model:         {}", p.model);
                println!(
                    "  weights hash:  {}",
                    p.weights_sha256.as_deref().unwrap_or("(not recorded)")
                );
                println!("  seed:          {}", p.seed);
                println!(
                    "  label:         {}",
                    p.label.as_deref().unwrap_or("(none)")
                );
                if let Some(s) = &p.screening {
                    println!("  screening:     {s}");
                }
                println!("  parameters:    {}", p.parameters);
                if let Some(w) = &p.watermark {
                    println!("  watermark (recorded): {w}");
                }
            }
            None => println!("  metadata:      (no atelier record: stripped or not ours)"),
        }
        for (k, v) in &r.text {
            if k == "parameters" {
                println!("  parameters text: {}", v.replace('\n', " | "));
            }
        }
        match &r.c2pa {
            Some(m) => println!(
                "  c2pa manifest: {}; source type {}; signer {}; validation {} ({})",
                m["title"].as_str().unwrap_or("(untitled)"),
                m["source_types"][0].as_str().unwrap_or("(none)"),
                m["issuer"].as_str().unwrap_or("(unknown)"),
                m["state"].as_str().unwrap_or("?"),
                m["status"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
            None => println!("  c2pa manifest: (none)"),
        }
        match &r.watermark {
            Some(w) => println!(
                "  watermark:     detected, payload {} (service {}, job hash {:08x}), confidence {:.2}, tile period {:.1} px",
                w.payload.hex(),
                w.payload.service,
                w.payload.job_hash,
                w.confidence,
                w.period
            ),
            None => println!("  watermark:     not detected"),
        }
    }
    Ok(status)
}

fn generate(a: GenerateArgs) -> anyhow::Result<i32> {
    let decision = screener(a.policy.as_deref())?.screen(&a.prompt);
    if !decision.allowed {
        eprintln!(
            "error: content blocked ({}): the prompt matched {:?} at characters {:?}",
            decision.category.unwrap_or_default(),
            decision.term.unwrap_or_default(),
            decision.span.unwrap_or_default()
        );
        return Ok(3);
    }
    let label = (a.label || a.label_text.is_some()).then(|| atelier_provenance::LabelSpec {
        text: a.label_text.clone().unwrap_or_else(|| "AI 생성".into()),
        ..Default::default()
    });
    if let Some(l) = &label {
        l.validate()?;
    }
    let dir = resolve_model_dir(&a.model, &a.models);
    let opts = a.device.load_options()?;
    let scheduler = a
        .scheduler
        .as_deref()
        .map(str::parse::<SchedulerKind>)
        .transpose()?;
    let mut overrides = serde_json::Map::new();
    if let Some(s) = &a.spacing {
        if !matches!(s.as_str(), "linspace" | "leading" | "trailing") {
            bail!("invalid --spacing {s:?}: expected linspace, leading or trailing");
        }
        overrides.insert("timestep_spacing".into(), s.clone().into());
    }
    let started = Instant::now();
    let model =
        DiffusionModel::load(&dir, &opts).with_context(|| format!("loading {}", dir.display()))?;
    let load_s = started.elapsed().as_secs_f64();
    let req = GenerateRequest {
        prompt: a.prompt,
        negative_prompt: a.negative,
        width: a.width,
        height: a.height,
        steps: a.steps,
        guidance_scale: a.guidance,
        scheduler,
        scheduler_overrides: overrides,
        seed: a.seed,
        batch_size: Some(a.batch),
        preview_every: 0,
    };
    let resolved = model.resolve(&req)?;
    let bar = ProgressBar::new(resolved.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg:>10} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let run_started = Instant::now();
    let out = model.generate(
        &req,
        &mut |p| {
            bar.set_position(p.step as u64);
            bar.set_message(match p.phase {
                Phase::EncodingText => "encoding",
                Phase::Denoising => "denoising",
                Phase::Decoding => "decoding",
            });
        },
        &CancelToken::new(),
    )?;
    let generate_s = run_started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let paths = output_paths(&a.out, out.images.len());
    let weights = atelier_provenance::weights_digest(&dir).ok();
    let c2pa_signer = a
        .c2pa
        .then(|| atelier_provenance::c2pa::Signer::ephemeral("atelier.local"))
        .transpose()?;
    let params = serde_json::to_value(&out.request)?;
    for (i, p) in paths.iter().enumerate() {
        let seed = out.seeds[i];
        let mut img = out.images[i].clone();
        if let Some(l) = &label {
            l.draw(&mut img.data, img.width, img.height)?;
        }
        // No job id and no timestamp: the same command writes the same bytes.
        let payload = atelier_provenance::Payload::for_job(a.service_id, &format!("cli:{seed}"));
        let marked = !a.no_watermark
            && atelier_provenance::watermark::embed(
                &mut img.data,
                img.width,
                img.height,
                payload,
                atelier_provenance::watermark::DEFAULT_STRENGTH,
            );
        let mut prov = atelier_provenance::Provenance::new(&out.request.model, seed, {
            let mut v = params.clone();
            v["seed"] = seed.into();
            v
        });
        prov.created = None;
        prov.weights_sha256 = weights.clone();
        prov.watermark = marked.then(|| payload.hex());
        prov.label = label.as_ref().map(|l| l.text.clone());
        prov.screening =
            Some(serde_json::json!({"prompt": "passed", "image_screening": "unavailable"}));
        let mut png = atelier_provenance::metadata::encode_png(
            img.width,
            img.height,
            &img.data,
            &out.request.parameters_text(seed),
            &prov,
        )?;
        if let Some(s) = &c2pa_signer {
            png = atelier_provenance::c2pa::sign(&png, "image/png", &prov, s)?;
        }
        std::fs::write(p, png).with_context(|| format!("writing {}", p.display()))?;
    }
    let r = &out.request;
    println!(
        "generated {} image(s) {}x{} with {} ({} {} steps, guidance {}, seed {}) in {:.2}s (load {:.2}s, then {:.2}s for marking and writing): {}",
        out.images.len(),
        r.width,
        r.height,
        r.model,
        r.scheduler,
        r.steps,
        r.guidance_scale,
        r.seed,
        generate_s,
        load_s,
        run_started.elapsed().as_secs_f64() - generate_s,
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok(0)
}

fn parity(a: ParityArgs) -> anyhow::Result<i32> {
    let opts = a.device.load_options()?;
    let model = DiffusionModel::load(&a.model, &opts)
        .with_context(|| format!("loading {}", a.model.display()))?;
    let report = atelier_engine::parity::run(&model, &a.reference, a.only.as_deref())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{:<44} {:<44} {:>10} {:>9}  ok",
            "case", "stage", "rel err", "tol"
        );
        for row in &report.rows {
            println!(
                "{:<44} {:<44} {:>10.3e} {:>9.0e}  {}{}",
                row.case,
                row.stage,
                row.value,
                row.tolerance,
                if row.pass { "yes" } else { "NO" },
                if row.note.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", row.note)
                }
            );
        }
        let failed = report.rows.iter().filter(|r| !r.pass).count();
        let worst = |prefix: &str| {
            report
                .rows
                .iter()
                .filter(|r| r.stage.starts_with(prefix))
                .map(|r| r.value)
                .fold(0.0f64, f64::max)
        };
        println!(
            "summary: {} stages, {} failed; worst rel err: text {:.1e}, unet {:.1e}, scheduler {:.1e}, vae {:.1e}, e2e latents {:.1e}, e2e image {:.1e}",
            report.rows.len(),
            failed,
            worst("te").max(worst("prompt")).max(worst("pooled")),
            worst("unet"),
            worst("scheduler"),
            worst("vae"),
            worst("end-to-end final"),
            worst("end-to-end image"),
        );
    }
    Ok(if report.passed() { 0 } else { 1 })
}

fn models_list(dir: &Path) -> anyhow::Result<i32> {
    let found = atelier_hub::list(dir)?;
    if found.is_empty() {
        println!(
            "no models in {}: put a diffusers-format folder there, or run `atelier models pull stabilityai/sd-turbo --dir {}`",
            dir.display(),
            dir.display()
        );
        return Ok(0);
    }
    println!(
        "{:<28} {:<22} {:<12} {:<18} {:>6}  path",
        "name", "family", "prediction", "scheduler", "size"
    );
    for m in found {
        match m {
            atelier_hub::Listed::Ok(info) => println!(
                "{:<28} {:<22} {:<12} {:<18} {:>6}  {}",
                info.name,
                info.family.label(),
                info.prediction_type,
                info.default_scheduler.name(),
                info.native_size,
                info.path.display()
            ),
            atelier_hub::Listed::Broken { path, error } => {
                println!(
                    "{:<28} unusable: {error}",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                )
            }
        }
    }
    Ok(0)
}

fn models_pull(
    repo: &str,
    revision: &str,
    dir: &Path,
    all_files: bool,
    file: Option<&str>,
) -> anyhow::Result<i32> {
    match atelier_hub::pull(repo, revision, dir, all_files, file)? {
        atelier_hub::Pulled::Diffusers(path) => {
            let info = atelier_engine::inspect(&path)?;
            println!(
                "pulled {repo}@{revision} into {} ({})",
                path.display(),
                info.family.label()
            );
        }
        atelier_hub::Pulled::LanguageModel(path) => println!(
            "pulled {repo}@{revision} into {} (language model; use it with --llm {})",
            path.display(),
            path.display()
        ),
        atelier_hub::Pulled::File(path) => {
            let hint = if path.extension().is_some_and(|e| e == "gguf") {
                format!(" (use it with --llm {})", path.display())
            } else {
                String::new()
            };
            println!("pulled {repo}@{revision}: {}{hint}", path.display());
        }
    }
    Ok(0)
}
