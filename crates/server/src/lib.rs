//! atelier's HTTP layer: the router, and `serve` which wires store, workers and routes.

pub mod error;
pub mod extract;
pub mod fleet;
pub mod limits;
pub mod listen;
pub mod openapi;
pub mod pulls;
pub mod render;
pub mod routes;
pub mod state;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use atelier_engine::LoadOptions;
use atelier_platform::artifacts::Artifacts;
use atelier_platform::links::LinkSigner;
use atelier_platform::store::postgres::PgStore;
use atelier_platform::store::sqlite::SqliteStore;
use atelier_platform::{App, JobStore, Limits, Platform, PlatformConfig};
use atelier_safety::PolicySet;
use atelier_workflows::diary::{Diary, DiaryToonApp, Recommender, SqlDiary, ToonWorkflow};
use atelier_workflows::storyboards::{
    SqlStoryboards, StoryboardApp, StoryboardWorkflow, Storyboards,
};
use atelier_workflows::tickets::{
    PhotoTicketApp, SqlTickets, TicketBatchApp, TicketWorkflow, Tickets,
};
use atelier_workflows::{Guard, ModelRegistry, TextToImage};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::Router;
use tokio::sync::watch;

pub use error::ApiError;
pub use state::AppState;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// The complete router.
pub fn router(state: AppState) -> Router {
    use routes::{chat, diary, files, openai, ops, predictions, storyboards, tickets};
    Router::new()
        .route("/", get(web::index))
        .route("/ui/{*path}", get(web::asset))
        .route("/favicon.ico", get(web::favicon))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/models", get(ops::models))
        .route("/v1/system", get(ops::system))
        .route(
            "/v1/models/pulls",
            post(ops::start_pull).get(ops::list_pulls),
        )
        .route("/v1/models/pulls/{id}", get(ops::get_pull))
        .route(
            "/v1/models/{owner}/{name}/predictions",
            post(predictions::create_for_model),
        )
        .route(
            "/v1/predictions",
            post(predictions::create_with_version).get(predictions::list),
        )
        .route("/v1/predictions/{id}", get(predictions::get))
        .route("/v1/predictions/{id}/cancel", post(predictions::cancel))
        .route("/v1/predictions/{id}/stream", get(predictions::stream))
        .route("/v1/predictions/{id}/preview", get(predictions::preview))
        .route("/v1/images/generations", post(openai::generations))
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/files/{id}", get(files::get))
        .route("/v1/webhooks/default/secret", get(ops::webhook_secret))
        .route("/v1/audit", get(ops::audit))
        .route(
            "/v1/campaigns",
            post(tickets::create_campaign).get(tickets::list_campaigns),
        )
        .route(
            "/v1/campaigns/{id}",
            get(tickets::get_campaign).patch(tickets::update_campaign),
        )
        .route(
            "/v1/campaigns/{id}/tickets",
            post(tickets::create_ticket).get(tickets::list_tickets),
        )
        .route(
            "/v1/campaigns/{id}/batches",
            post(tickets::create_batch).layer(DefaultBodyLimit::max(tickets::CSV_LIMIT)),
        )
        .route("/v1/tickets/{id}", get(tickets::get_ticket))
        .route("/v1/tickets/{id}/rerun", post(tickets::rerun_ticket))
        .route("/v1/tickets/{id}/revoke", post(tickets::revoke_ticket))
        .route("/v1/batches/{id}", get(tickets::get_batch))
        .route("/v1/batches/{id}/links.csv", get(tickets::batch_links))
        .route("/v1/batches/{id}/tickets.zip", get(tickets::batch_zip))
        .route("/t/{share_id}", get(tickets::share_page))
        .route("/t/{share_id}/ticket.png", get(tickets::share_image))
        .route("/v1/diary/signup", post(diary::signup))
        .route("/v1/diary/login", post(diary::login))
        .route("/v1/diary/logout", post(diary::logout))
        .route("/v1/diary/me", get(diary::me).patch(diary::update_me))
        .route("/v1/diary/session", get(diary::session))
        .route(
            "/v1/diary/me/avatar",
            put(diary::put_avatar)
                .delete(diary::delete_avatar)
                .layer(DefaultBodyLimit::max(diary::AVATAR_LIMIT)),
        )
        .route("/v1/diary/users/{id}/avatar.png", get(diary::avatar))
        .route("/v1/diary/users/{id}/role", put(diary::set_role))
        .route("/v1/diary/posts", post(diary::create_post))
        .route(
            "/v1/diary/posts/{id}",
            get(diary::get_post)
                .patch(diary::edit_post)
                .delete(diary::delete_post),
        )
        .route("/v1/diary/posts/{id}/comic.png", get(diary::comic))
        .route(
            "/v1/diary/posts/{id}/comments",
            get(diary::list_comments).post(diary::create_comment),
        )
        .route(
            "/v1/diary/posts/{id}/like",
            put(diary::like).delete(diary::unlike),
        )
        .route("/v1/diary/posts/{id}/recommended", get(diary::recommended))
        .route(
            "/v1/diary/comments/{id}",
            axum::routing::patch(diary::edit_comment).delete(diary::delete_comment),
        )
        .route("/v1/diary/lounge", get(diary::lounge))
        .route("/v1/diary/hot", get(diary::hot))
        .route(
            "/v1/diary/reports",
            post(diary::report).get(diary::list_reports),
        )
        .route("/v1/diary/moderation/hide", post(diary::hide))
        .route(
            "/v1/storyboards",
            post(storyboards::create).get(storyboards::list),
        )
        .route("/v1/storyboards/categories", get(storyboards::categories))
        .route(
            "/v1/storyboards/{id}",
            get(storyboards::get).delete(storyboards::delete),
        )
        .route(
            "/v1/storyboards/{id}/versions",
            get(storyboards::versions).post(storyboards::edit),
        )
        .route(
            "/v1/storyboards/{id}/versions/{n}",
            get(storyboards::version),
        )
        .route(
            "/v1/storyboards/{id}/versions/{n}/restore",
            post(storyboards::restore),
        )
        .route("/v1/storyboards/{id}/diff", get(storyboards::diff))
        .route("/v1/storyboards/{id}/retry", post(storyboards::retry))
        .route("/v1/storyboards/{id}/cuts", post(storyboards::insert_cut))
        .route(
            "/v1/storyboards/{id}/cuts/{cut}",
            axum::routing::patch(storyboards::edit_cut).delete(storyboards::delete_cut),
        )
        .route(
            "/v1/storyboards/{id}/cuts/{cut}/regenerate",
            post(storyboards::regenerate_cut),
        )
        .route(
            "/v1/storyboards/{id}/cuts/{cut}/move",
            post(storyboards::move_cut),
        )
        .route(
            "/v1/storyboards/{id}/cuts/{cut}/comments",
            post(storyboards::add_comment),
        )
        .route("/v1/storyboards/{id}/comments", get(storyboards::comments))
        .route(
            "/v1/storyboards/{id}/comments/{comment}/resolve",
            post(storyboards::resolve_comment),
        )
        .route(
            "/v1/storyboards/{id}/reference",
            put(storyboards::put_reference)
                .layer(DefaultBodyLimit::max(storyboards::REFERENCE_LIMIT)),
        )
        .route("/v1/storyboards/{id}/export.zip", get(storyboards::export))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::body_deadline,
        ))
        // Last line of defence: a handler that panics answers 500 in our error shape and is
        // logged as an internal error, instead of dropping the connection without a word.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .with_state(state)
}

/// The answer to a request whose handler panicked.
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!("internal error: a request handler panicked: {what}");
    axum::response::IntoResponse::into_response(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the server log",
    ))
}

/// `atelier serve` settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: String,
    pub data: PathBuf,
    /// `postgres://…` to share state between nodes; `None`: SQLite in `data`.
    pub database: Option<String>,
    /// `s3://bucket/prefix` (or a folder) for artifacts; `None`: `data/artifacts`.
    pub objects: Option<String>,
    /// Serve the API only; workers run elsewhere (`atelier worker`).
    pub no_workers: bool,
    pub models: Vec<PathBuf>,
    pub workers: usize,
    pub load: LoadOptions,
    pub allow_private_webhooks: bool,
    pub public_url: Option<String>,
    pub limits: Limits,
    pub max_loaded_models: usize,
    /// Safety policy file (TOML: `[default]`, `[tenants.<id>]`, `[campaigns.<id>]`).
    pub policy: Option<PathBuf>,
    /// Safety checker folder; when unset, the first installed model that ships a
    /// `safety_checker/` is used; when none does, images are reported as not screened.
    pub safety_checker: Option<PathBuf>,
    /// This deployment's id inside invisible watermarks.
    pub service_id: u16,
    /// Embed invisible watermarks (on unless turned off).
    pub watermark: bool,
    /// How outputs get C2PA manifests.
    pub c2pa: C2paConfig,
    /// The language model for chat completions and writer tasks (none: those say how to
    /// configure one).
    pub llm: Option<atelier_llm::LlmConfig>,
    /// Extra ticket presets: a folder of `<name>/preset.toml` (+ SVG) directories.
    pub presets: Option<PathBuf>,
    /// How diary toons are drawn (model, panel size, steps, style).
    pub toon: atelier_workflows::diary::ToonSettings,
    /// How storyboard cuts, sheets and animatics are made.
    pub storyboard: atelier_workflows::storyboards::StoryboardSettings,
    /// A sentence-embedding model folder (BERT / XLM-RoBERTa family) for recommendations.
    pub embedding_model: Option<PathBuf>,
    /// Let API-key holders pull models over the API (open mode always may).
    pub allow_model_pull: bool,
    /// Per-key rate and stream limits; request head and body deadlines.
    pub http: limits::HttpLimitSettings,
}

/// The bundled ticket presets plus those in `dir`.
pub fn presets(
    dir: Option<&std::path::Path>,
) -> Result<atelier_compose::ticket::Presets, ServeError> {
    let mut p = atelier_compose::ticket::Presets::builtin()?;
    if let Some(d) = dir {
        p.load_dir(d)?;
    }
    Ok(p)
}

/// C2PA signing for `serve`.
#[derive(Debug, Clone, Default)]
pub enum C2paConfig {
    /// No manifests.
    Off,
    /// An ephemeral self-signed certificate made at start (manifests read as untrusted).
    #[default]
    Ephemeral,
    /// The deployment's certificate chain and key (PEM files) and algorithm.
    Pem {
        cert: PathBuf,
        key: PathBuf,
        alg: String,
    },
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Platform(#[from] atelier_platform::PlatformError),
    #[error("cannot use {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid --database {0:?}: expected postgres://user@host:port/db (or leave it out for SQLite in --data)")]
    Database(String),
    #[error("invalid --listen {0:?}: expected ADDR:PORT")]
    Listen(String),
    #[error(transparent)]
    Safety(#[from] atelier_safety::SafetyError),
    #[error(transparent)]
    Provenance(#[from] atelier_provenance::ProvenanceError),
    #[error("language model: {0}")]
    Llm(#[from] atelier_llm::LlmError),
    #[error("ticket presets: {0}")]
    Compose(#[from] atelier_compose::ComposeError),
    #[error("diary: {0}")]
    Diary(#[from] atelier_workflows::diary::DiaryError),
}

/// Builds the safety/provenance guard from the serve settings.
pub fn guard(cfg: &ServeConfig, models: &ModelRegistry) -> Result<Guard, ServeError> {
    let policies = match &cfg.policy {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| ServeError::Io {
                path: p.display().to_string(),
                source,
            })?;
            PolicySet::from_toml(&p.display().to_string(), &text)?
        }
        None => PolicySet::default(),
    };
    let dir = cfg.safety_checker.clone().or_else(|| {
        models
            .list()
            .into_iter()
            .map(|m| m.path)
            .find(|p| atelier_safety::SafetyChecker::find(&p.join("safety_checker")).is_some())
    });
    let checker = match dir {
        Some(d) => Some(atelier_workflows::guard::load_checker(
            &d,
            &cfg.load.device,
        )?),
        None => {
            tracing::warn!(
                "no safety checker installed: images are not screened (results say image_screening: unavailable)"
            );
            None
        }
    };
    let mut g = Guard::new(policies, checker, cfg.service_id)?;
    g.watermark = cfg.watermark;
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|source| ServeError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    g.c2pa = match &cfg.c2pa {
        C2paConfig::Off => None,
        C2paConfig::Ephemeral => {
            let s = atelier_provenance::c2pa::Signer::ephemeral("atelier.local")?;
            tracing::warn!(
                "C2PA manifests are signed with an ephemeral self-signed certificate; validators will report them as untrusted (pass --c2pa-cert/--c2pa-key for your own)"
            );
            Some(Arc::new(s))
        }
        C2paConfig::Pem { cert, key, alg } => Some(Arc::new(
            atelier_provenance::c2pa::Signer::from_pem(&read(cert)?, &read(key)?, alg)?,
        )),
    };
    Ok(g)
}

/// Where a node keeps state and files, and the secret that signs file links (the same on
/// every node of a deployment).
pub struct Backends {
    pub store: Arc<dyn JobStore>,
    /// The workflows' own tables, in the same database.
    pub apps: atelier_workflows::db::DbPool,
    /// The embedded database's pool (bulk seeding tools); `None` on PostgreSQL.
    pub sqlite: Option<sqlx::SqlitePool>,
    pub artifacts: Artifacts,
    pub links: LinkSigner,
}

/// Opens the job store (`database`: `postgres://…`, else SQLite in `data`), the artifact
/// store (`objects`: `s3://bucket/prefix` or a folder, else `data/artifacts`) and the link
/// secret (a file in `data` beside SQLite, a setting in the shared database otherwise).
pub async fn open_backends(
    data: &std::path::Path,
    database: Option<&str>,
    objects: Option<&str>,
) -> Result<Backends, ServeError> {
    let io = |p: &std::path::Path| {
        let path = p.display().to_string();
        move |source| ServeError::Io { path, source }
    };
    let artifacts = match objects {
        Some(spec) => Artifacts::open(spec)?,
        None => {
            std::fs::create_dir_all(data).map_err(io(data))?;
            Artifacts::local(data.join("artifacts"))?
        }
    };
    match database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = Arc::new(PgStore::connect(url).await?);
            let secret = store
                .setting("link_secret", &atelier_platform::auth::new_link_secret())
                .await?;
            let apps = atelier_workflows::db::open_postgres(store.pool(), url).await?;
            return Ok(Backends {
                store,
                apps,
                sqlite: None,
                artifacts,
                links: LinkSigner::new(secret.as_bytes()),
            });
        }
        Some(other) => return Err(ServeError::Database(other.to_owned())),
        None => {}
    }
    std::fs::create_dir_all(data).map_err(io(data))?;
    let db_path = data.join("atelier.db");
    let store = SqliteStore::open(&db_path).await?;
    let apps = atelier_workflows::db::open_sqlite(store.pool(), &db_path).await?;
    let secret_path = data.join("link.secret");
    let secret = match std::fs::read_to_string(&secret_path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => {
            let s = atelier_platform::auth::new_link_secret();
            std::fs::write(&secret_path, &s).map_err(io(&secret_path))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600));
            }
            s
        }
    };
    Ok(Backends {
        apps,
        sqlite: Some(store.pool().clone()),
        store: Arc::new(store),
        artifacts,
        links: LinkSigner::new(secret.as_bytes()),
    })
}

/// A node's assembled platform: what `serve` puts behind HTTP and `worker` runs jobs with.
pub struct Node {
    pub platform: Arc<Platform>,
    pub state: AppState,
    pub models: Arc<ModelRegistry>,
    pub store: Arc<dyn JobStore>,
}

/// Opens the backends and assembles the platform, its apps and the HTTP state.
pub async fn open_node(cfg: &ServeConfig) -> Result<Node, ServeError> {
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| ServeError::Listen(cfg.listen.clone()))?;
    let Backends {
        store,
        apps: apps_db,
        sqlite,
        artifacts,
        links,
    } = open_backends(&cfg.data, cfg.database.as_deref(), cfg.objects.as_deref()).await?;
    tracing::info!(
        database = if sqlite.is_some() {
            "sqlite"
        } else {
            "postgres"
        },
        artifacts = artifacts.location(),
        "storage open"
    );
    let now = atelier_platform::now_ms();
    let default_tenant = store.ensure_tenant("default", now).await?.id;
    let models = Arc::new(ModelRegistry::new(
        cfg.models.clone(),
        cfg.load.clone(),
        cfg.max_loaded_models,
    ));
    let guard = Arc::new(guard(cfg, &models)?);
    let system = state::SystemInfo {
        image_checker: guard.has_checker(),
        watermark: cfg.watermark,
        c2pa: !matches!(cfg.c2pa, C2paConfig::Off),
        workers: if cfg.no_workers {
            0
        } else {
            cfg.workers.max(1)
        },
        allow_model_pull: cfg.allow_model_pull,
    };
    let llm = match cfg.llm.clone() {
        Some(c) => {
            let device = cfg.load.device.clone();
            let llm = tokio::task::spawn_blocking(move || atelier_llm::Llm::open(&c, &device))
                .await
                .map_err(|e| atelier_llm::LlmError::Internal(e.to_string()))??;
            tracing::info!(model = llm.id(), kind = llm.kind(), "language model ready");
            Some(llm)
        }
        None => {
            tracing::info!("no language model configured (--llm or --llm-url): writer tasks and /v1/chat/completions will say so");
            None
        }
    };
    let share_base = cfg
        .public_url
        .clone()
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    let fonts = Arc::new(std::sync::Mutex::new(atelier_compose::Fonts::new()));
    let embedder = match &cfg.embedding_model {
        Some(dir) => {
            let (dir, device) = (dir.clone(), cfg.load.device.clone());
            let e = tokio::task::spawn_blocking(move || {
                atelier_llm::embed::Embedder::open(&dir, &device)
            })
            .await
            .map_err(|e| atelier_llm::LlmError::Internal(e.to_string()))??;
            tracing::info!(
                model = e.id(),
                "embedding model ready: recommendations use meaning as well as words"
            );
            Some(Arc::new(e) as Arc<dyn atelier_workflows::diary::TextEmbedder>)
        }
        None => None,
    };
    let diary = Arc::new(
        Diary::new(
            SqlDiary::new(apps_db.clone()).await?,
            Arc::new(ToonWorkflow {
                models: models.clone(),
                guard: guard.clone(),
                writer: atelier_writer::Writer::new(llm.clone()),
                fonts: fonts.clone(),
                settings: cfg.toon.clone(),
            }),
            Arc::new(Recommender::new(embedder)),
        )
        .await?,
    );
    let tickets = Arc::new(Tickets {
        store: Arc::new(SqlTickets::new(apps_db.clone()).await?),
        workflow: Arc::new(TicketWorkflow {
            models: models.clone(),
            guard: guard.clone(),
            writer: atelier_writer::Writer::new(llm.clone()),
            presets: Arc::new(presets(cfg.presets.as_deref())?),
            fonts: fonts.clone(),
            share_base,
        }),
    });
    let storyboards = Arc::new(Storyboards {
        store: SqlStoryboards::new(apps_db.clone()).await?,
        workflow: Arc::new(StoryboardWorkflow {
            models: models.clone(),
            guard: guard.clone(),
            writer: atelier_writer::Writer::new(llm.clone()),
            fonts: fonts.clone(),
            settings: cfg.storyboard.clone(),
        }),
    });
    let apps: Vec<Arc<dyn App>> = vec![
        Arc::new(TextToImage::new(models.clone(), guard)),
        Arc::new(PhotoTicketApp {
            tickets: tickets.clone(),
        }),
        Arc::new(TicketBatchApp {
            tickets: tickets.clone(),
        }),
        Arc::new(DiaryToonApp {
            diary: diary.clone(),
        }),
        Arc::new(StoryboardApp {
            storyboards: storyboards.clone(),
        }),
    ];
    let platform = Platform::new(
        store.clone() as Arc<dyn JobStore>,
        artifacts,
        links,
        PlatformConfig {
            limits: cfg.limits.clone(),
            allow_private_webhooks: cfg.allow_private_webhooks,
        },
        apps,
    );
    let state = AppState {
        platform: platform.clone(),
        models: models.clone(),
        default_tenant,
        loopback: addr.ip().is_loopback(),
        listen: cfg.listen.clone(),
        public_url: cfg
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned()),
        link_ttl_s: 24 * 3600,
        llm,
        tickets: Some(tickets),
        diary: Some(diary),
        storyboards: Some(storyboards),
        system,
        pulls: Arc::new(pulls::Pulls::default()),
        http: Arc::new(limits::HttpLimits::new(cfg.http.clone())),
    };
    let base = state
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", cfg.listen));
    {
        let links = platform.links.clone();
        let ttl = state.link_ttl_s;
        // Webhook payloads are the same document as GET /v1/predictions/{id}.
        platform.set_renderer(Arc::new(move |job| {
            render::job_json(job, None, &base, &links, ttl)
        }));
    }
    Ok(Node {
        platform,
        state,
        models,
        store,
    })
}

/// Runs the server until SIGINT/SIGTERM; then stops taking requests and returns running jobs
/// to the queue.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    let started = std::time::Instant::now();
    let Node {
        platform,
        state,
        models,
        store,
    } = open_node(&cfg).await?;
    let addr: SocketAddr = cfg
        .listen
        .parse()
        .map_err(|_| ServeError::Listen(cfg.listen.clone()))?;

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Io {
            path: cfg.listen.clone(),
            source: e,
        })?;
    let installed = models.list();
    if installed.is_empty() {
        tracing::warn!("{}", routes::ops::no_models_message(&state));
    } else {
        tracing::info!(models = ?installed.iter().map(|m| m.name.clone()).collect::<Vec<_>>(), "models installed");
    }
    let keys = store.key_count().await?;
    if keys == 0 && state.loopback {
        tracing::warn!("no API keys exist: running open (single-user) on loopback; create a key with `atelier keys create --tenant NAME` to require one");
    } else if keys == 0 {
        tracing::warn!("no API keys exist and the bind is not loopback: every request will be refused until you run `atelier keys create --tenant NAME`");
    }

    // A shared store's changes from other processes reach this node (no-op on SQLite).
    platform.follow_store().await?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(atelier_platform::worker::run_reaper(
        platform.clone(),
        shutdown_rx.clone(),
    )));
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    let workers = if cfg.no_workers {
        0
    } else {
        cfg.workers.max(1)
    };
    for i in 0..workers {
        let owner = format!(
            "{host}-{}-w{i}-{}",
            std::process::id(),
            atelier_platform::new_id()
        );
        tasks.push(tokio::spawn(atelier_platform::worker::run_worker(
            platform.clone(),
            owner,
            fleet::worker_options(&platform, &models, None),
            shutdown_rx.clone(),
        )));
    }
    tracing::info!(listen = %cfg.listen, data = %cfg.data.display(), workers, startup_ms = started.elapsed().as_millis() as u64, "atelier serving");
    eprintln!(
        "atelier listening on http://{} (data: {})",
        cfg.listen,
        cfg.data.display()
    );

    let header_timeout = state.http.settings().header_timeout;
    let app = router(state);
    let stx = shutdown_tx.clone();
    listen::serve(listener, app, header_timeout, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new requests; running jobs return to the queue");
        let _ = stx.send(true);
    })
    .await;
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
