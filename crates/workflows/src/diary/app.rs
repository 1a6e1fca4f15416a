//! The diary site's service (accounts, posts, feeds, comments, likes, moderation) and the
//! `atelier/diary-toon` app. The server maps [`DiaryError`] to HTTP; nothing here knows HTTP.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use atelier_platform::store::NewJob;
use atelier_platform::{now_ms, App, JobContext, Platform, PlatformError};
use serde_json::{json, Value};

use super::accounts::{self, LoginLimiter};
use super::recommend::{Recommender, Scored};
use super::store::{
    Comment, Cursor, NewPost, Post, Session, SqlDiary, Target, User, Visibility, HOT_WINDOW_MS,
};
use super::toon::{ToonWorkflow, CAPTION_MAX, PANELS, TEXT_MAX};

/// The app name of a post's comic job.
pub const TOON_APP: &str = "atelier/diary-toon";
/// Longest comment, in characters.
pub const COMMENT_MAX: usize = 500;
/// Longest report reason, in characters.
pub const REASON_MAX: usize = 500;
/// Posts in Hot TOONs.
pub const HOT_N: i64 = 4;
/// How long a computed Hot TOONs list is served before the 7-day window is read again (any
/// comment or post change clears it at once).
pub const HOT_TTL_MS: i64 = 10_000;

/// Why a diary request failed; the server maps each to one status.
#[derive(Debug, thiserror::Error)]
pub enum DiaryError {
    #[error(transparent)]
    Platform(#[from] PlatformError),
    /// 404: missing, deleted, or not visible to this viewer (never says which).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 401: the request needs a signed-in user.
    #[error("sign in first")]
    Unauthenticated,
    /// 403: signed in, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the email has an account.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// 401 at login (one message for unknown email and wrong password).
    #[error("wrong email or password")]
    BadCredentials,
    /// 429: too many failed logins.
    #[error("too many failed logins; retry in {0} s")]
    RateLimited(i64),
}

type Result<T, E = DiaryError> = std::result::Result<T, E>;

fn bad(field: &str, message: impl Into<String>) -> DiaryError {
    PlatformError::invalid(field, message).into()
}

/// Hot TOONs with their recent comment counts.
pub type HotList = Vec<(Post, i64)>;

/// The diary site over its store, the toon workflow and the recommendation index.
pub struct Diary {
    pub store: SqlDiary,
    pub toon: Arc<ToonWorkflow>,
    pub recommender: Arc<Recommender>,
    pub limiter: LoginLimiter,
    /// (computed at, change generation, list).
    hot: Mutex<Option<(i64, u64, HotList)>>,
    /// Bumped by every change that can alter Hot TOONs.
    hot_gen: std::sync::atomic::AtomicU64,
    /// One recomputation at a time; the others wait for it or keep the last list.
    hot_refresh: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Diary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Diary")
            .field("recommender", &self.recommender)
            .finish()
    }
}

/// A new session: the cookie's token and the CSRF token the page sends back on writes.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub user: User,
    pub token: String,
    pub csrf: String,
    pub expires_at: i64,
}

/// A post as written by its author.
#[derive(Debug, Clone, Default)]
pub struct PostInput {
    pub text: String,
    pub visibility: Option<String>,
    pub captions: Option<Vec<String>>,
    pub style: Option<String>,
}

fn check_text(field: &str, v: &str, max: usize) -> Result<()> {
    let n = v.trim().chars().count();
    if n == 0 {
        return Err(bad(field, "is required"));
    }
    if n > max {
        return Err(bad(
            field,
            format!("must be at most {max} characters (got {n})"),
        ));
    }
    Ok(())
}

fn check_captions(c: &Option<Vec<String>>) -> Result<()> {
    if let Some(c) = c {
        if c.len() != PANELS {
            return Err(bad("captions", format!("give exactly {PANELS} captions")));
        }
        for (i, t) in c.iter().enumerate() {
            check_text(&format!("captions[{i}]"), t, CAPTION_MAX)?;
        }
    }
    Ok(())
}

fn visibility(v: &Option<String>) -> Result<Option<Visibility>> {
    v.as_deref()
        .map(|s| Visibility::parse(s).ok_or_else(|| bad("visibility", "must be public or private")))
        .transpose()
}

impl Diary {
    /// The service; fills the recommendation index from the listed posts.
    pub async fn new(
        store: SqlDiary,
        toon: Arc<ToonWorkflow>,
        recommender: Arc<Recommender>,
    ) -> Result<Self> {
        let started = std::time::Instant::now();
        let posts = store.listed_texts().await?;
        let n = posts.len();
        let r = recommender.clone();
        tokio::task::spawn_blocking(move || {
            for chunk in posts.chunks(256) {
                r.upsert_many(chunk);
            }
        })
        .await
        .map_err(|e| PlatformError::Corrupt(format!("index build panicked: {e}")))?;
        tracing::info!(posts = n, ms = started.elapsed().as_millis() as u64, embedder = ?recommender.embedder(), "diary recommendation index ready");
        Ok(Self {
            store,
            toon,
            recommender,
            limiter: LoginLimiter::default(),
            hot: Mutex::new(None),
            hot_gen: std::sync::atomic::AtomicU64::new(0),
            hot_refresh: tokio::sync::Mutex::new(()),
        })
    }

    fn invalidate_hot(&self) {
        self.hot_gen
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Brings a post's presence in the index in line with its state.
    pub fn reindex(&self, p: &Post) {
        if p.listed && self.recommender.embedder().is_some() {
            // A model forward pass does not belong on the async runtime's threads.
            let (r, id, text) = (self.recommender.clone(), p.id.clone(), p.text.clone());
            tokio::task::spawn_blocking(move || r.upsert(&id, &text));
        } else if p.listed {
            self.recommender.upsert(&p.id, &p.text);
        } else {
            self.recommender.remove(&p.id);
        }
        self.invalidate_hot();
    }

    // --- accounts -------------------------------------------------------------------

    async fn start_session(&self, user: User) -> Result<NewSession> {
        let token = accounts::new_token();
        let csrf = accounts::new_token();
        let now = now_ms();
        let expires_at = now + accounts::SESSION_TTL_MS;
        self.store
            .create_session(
                &accounts::token_hash(&token),
                &user.id,
                &csrf,
                now,
                expires_at,
            )
            .await?;
        Ok(NewSession {
            user,
            token,
            csrf,
            expires_at,
        })
    }

    /// Creates an account and signs it in.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> Result<NewSession> {
        accounts::check_signup(email, password, display_name)?;
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || accounts::hash_password(&pw))
            .await
            .map_err(|e| PlatformError::Corrupt(e.to_string()))??;
        let user = self
            .store
            .create_user(
                &atelier_platform::new_id(),
                &accounts::normalize_email(email),
                &hash,
                display_name.trim(),
                now_ms(),
            )
            .await?
            .ok_or(DiaryError::EmailTaken)?;
        self.start_session(user).await
    }

    /// Signs in; failures count against the email and the client address.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: Option<&str>,
    ) -> Result<NewSession> {
        let email = accounts::normalize_email(email);
        let mut keys = vec![format!("email:{email}")];
        if let Some(c) = client {
            keys.push(format!("ip:{c}"));
        }
        let now = now_ms();
        self.limiter
            .check(&keys, now)
            .map_err(DiaryError::RateLimited)?;
        let found = self.store.credentials(&email).await?;
        let pw = password.to_owned();
        let phc = found
            .as_ref()
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| accounts::dummy_hash().to_owned());
        let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&pw, &phc))
            .await
            .map_err(|e| PlatformError::Corrupt(e.to_string()))?;
        match found {
            Some((user, _)) if ok => {
                self.limiter.clear(&keys[0]);
                self.start_session(user).await
            }
            _ => {
                self.limiter.fail(&keys, now);
                Err(DiaryError::BadCredentials)
            }
        }
    }

    /// The live session of a cookie token.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        Ok(self
            .store
            .session(&accounts::token_hash(token), now_ms())
            .await?)
    }

    /// Ends a session.
    pub async fn logout(&self, token: &str) -> Result<()> {
        Ok(self
            .store
            .delete_session(&accounts::token_hash(token))
            .await?)
    }

    // --- posts ----------------------------------------------------------------------

    /// Bumps the post's comic revision, then queues a job for that revision.
    async fn queue_toon(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        post_id: &str,
    ) -> Result<String> {
        let rev = self.store.requeue(post_id, now_ms()).await?;
        let (job, _) = platform
            .submit(NewJob {
                tenant_id: tenant.to_owned(),
                app: TOON_APP.into(),
                input: json!({"post": post_id, "rev": rev}),
                ..NewJob::default()
            })
            .await?;
        self.store.set_job(post_id, rev, &job.id).await?;
        Ok(job.id)
    }

    /// Writes a post and queues its comic.
    pub async fn create_post(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        user: &User,
        i: PostInput,
    ) -> Result<Post> {
        check_text("text", &i.text, TEXT_MAX)?;
        check_captions(&i.captions)?;
        if let Some(s) = &i.style {
            if s.chars().count() > 200 {
                return Err(bad("style", "must be at most 200 characters"));
            }
        }
        if self.toon.writer.llm().is_none() && i.captions.is_none() {
            return Err(bad(
                "captions",
                format!("no language model is configured on this server: write the {PANELS} panel captions yourself"),
            ));
        }
        let id = atelier_platform::new_id();
        self.store
            .create_post(&NewPost {
                id: id.clone(),
                user_id: user.id.clone(),
                text: i.text.trim().to_owned(),
                captions: i
                    .captions
                    .map(|c| c.into_iter().map(|s| s.trim().to_owned()).collect()),
                style: i.style,
                visibility: visibility(&i.visibility)?.unwrap_or(Visibility::Public),
                created_at: now_ms(),
            })
            .await?;
        self.queue_toon(platform, tenant, &id).await?;
        self.store
            .post(&id)
            .await?
            .ok_or(DiaryError::NotFound("post"))
    }

    /// A post as `viewer` may see it: authors see their own, moderators everything not
    /// deleted, others only listed posts.
    pub async fn visible_post(&self, viewer: Option<&User>, id: &str) -> Result<Post> {
        let p = self
            .store
            .post(id)
            .await?
            .ok_or(DiaryError::NotFound("post"))?;
        let own = viewer.is_some_and(|u| u.id == p.user_id);
        let moderator = viewer.is_some_and(User::is_moderator);
        if p.deleted_at.is_some() || !(p.listed || own || moderator) {
            return Err(DiaryError::NotFound("post"));
        }
        Ok(p)
    }

    async fn own_post(&self, user: &User, id: &str) -> Result<Post> {
        let p = self.visible_post(Some(user), id).await?;
        if p.user_id != user.id {
            return Err(DiaryError::Forbidden(
                "only the author can change this post".into(),
            ));
        }
        Ok(p)
    }

    /// Edits a post. A new text, captions or style draw a new comic (as does
    /// `regenerate`); visibility alone does not.
    pub async fn edit_post(
        &self,
        platform: &Arc<Platform>,
        tenant: &str,
        user: &User,
        id: &str,
        i: PostInput,
        regenerate: bool,
    ) -> Result<Post> {
        let p = self.own_post(user, id).await?;
        let text = (!i.text.is_empty()).then_some(i.text.as_str());
        if let Some(t) = text {
            check_text("text", t, TEXT_MAX)?;
        }
        check_captions(&i.captions)?;
        let vis = visibility(&i.visibility)?;
        let redraw = regenerate || text.is_some() || i.captions.is_some() || i.style.is_some();
        if redraw
            && self.toon.writer.llm().is_none()
            && i.captions.is_none()
            && p.captions.is_none()
        {
            return Err(bad(
                "captions",
                format!("no language model is configured: give the {PANELS} panel captions"),
            ));
        }
        self.store
            .edit_post(
                id,
                text.map(str::trim),
                i.captions.as_deref().map(Some),
                i.style.as_deref().map(Some),
                vis,
                now_ms(),
            )
            .await?;
        if redraw {
            if let Some(old) = &p.job_id {
                // A comic still being drawn for the old text is not wanted any more.
                let _ = platform.cancel(tenant, old).await;
            }
            self.queue_toon(platform, tenant, id).await?;
        }
        let p = self
            .store
            .post(id)
            .await?
            .ok_or(DiaryError::NotFound("post"))?;
        self.reindex(&p);
        Ok(p)
    }

    /// Soft-deletes a post (the author, or a moderator).
    pub async fn delete_post(&self, user: &User, id: &str) -> Result<()> {
        let p = self.visible_post(Some(user), id).await?;
        if p.user_id != user.id && !user.is_moderator() {
            return Err(DiaryError::Forbidden(
                "only the author can delete this post".into(),
            ));
        }
        self.store.delete_post(id, now_ms()).await?;
        self.recommender.remove(id);
        self.invalidate_hot();
        Ok(())
    }

    /// The newest listed posts after `cursor`; the next cursor when there may be more.
    pub async fn lounge(
        &self,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<(Vec<Post>, Option<String>)> {
        let c = match cursor {
            Some(s) => Some(
                Cursor::decode(s)
                    .ok_or_else(|| bad("cursor", "is not a cursor this server returned"))?,
            ),
            None => None,
        };
        if !(1..=100).contains(&limit) {
            return Err(bad("limit", "must be between 1 and 100"));
        }
        let mut posts = self.store.lounge(c.as_ref(), limit + 1).await?;
        let more = posts.len() as i64 > limit;
        posts.truncate(limit as usize);
        let next = more
            .then(|| {
                posts.last().map(|p| {
                    Cursor {
                        created_at: p.created_at,
                        id: p.id.clone(),
                    }
                    .encode()
                })
            })
            .flatten();
        Ok((posts, next))
    }

    /// Hot TOONs with their comment counts of the last 7 days. After a change (a comment, a
    /// deleted or hidden post) the next readers wait for one recomputation, so what was removed
    /// is gone at once; when the list is merely older than [`HOT_TTL_MS`], one reader refreshes
    /// it while the others are served the last list.
    pub async fn hot(&self) -> Result<HotList> {
        use std::sync::atomic::Ordering::SeqCst;
        let cached = self.hot.lock().ok().and_then(|h| h.clone());
        if let Some((at, g, list)) = cached {
            if g == self.hot_gen.load(SeqCst) {
                if now_ms() - at < HOT_TTL_MS {
                    return Ok(list);
                }
                return match self.hot_refresh.try_lock() {
                    Ok(_one) => self.compute_hot().await,
                    Err(_) => Ok(list),
                };
            }
        }
        let _one = self.hot_refresh.lock().await;
        if let Some((_, g, list)) = self.hot.lock().ok().and_then(|h| h.clone()) {
            if g == self.hot_gen.load(SeqCst) {
                return Ok(list);
            }
        }
        self.compute_hot().await
    }

    async fn compute_hot(&self) -> Result<HotList> {
        // The generation is read before the query: a change during it leaves the list outdated.
        let gen = self.hot_gen.load(std::sync::atomic::Ordering::SeqCst);
        let now = now_ms();
        let v = self.store.hot(now - HOT_WINDOW_MS, HOT_N).await?;
        if let Ok(mut h) = self.hot.lock() {
            *h = Some((now, gen, v.clone()));
        }
        Ok(v)
    }

    /// Posts similar to `id` (text, meaning, co-engagement), listed ones only.
    pub async fn recommended(
        &self,
        viewer: Option<&User>,
        id: &str,
        k: usize,
    ) -> Result<Vec<(Post, Scored)>> {
        let p = self.visible_post(viewer, id).await?;
        if !(1..=20).contains(&k) {
            return Err(bad("k", "must be between 1 and 20"));
        }
        let co = self.store.co_commented(id).await?;
        let r = self.recommender.clone();
        let (pid, text) = (p.id.clone(), p.text.clone());
        // A few extra in case a post changed since it was indexed.
        let scored = tokio::task::spawn_blocking(move || r.similar(&pid, &text, &co, k + 4))
            .await
            .map_err(|e| PlatformError::Corrupt(e.to_string()))?;
        let ids: Vec<String> = scored.iter().map(|s| s.id.clone()).collect();
        let mut posts: std::collections::HashMap<String, Post> = self
            .store
            .posts(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        Ok(scored
            .into_iter()
            .filter_map(|s| posts.remove(&s.id).filter(|p| p.listed).map(|p| (p, s)))
            .take(k)
            .collect())
    }

    // --- comments, likes ------------------------------------------------------------

    async fn screen(&self, tenant: &str, stage: &str, text: &str) -> Result<bool> {
        struct NoAudit;
        #[async_trait]
        impl crate::guard::Audit for NoAudit {
            async fn audit(
                &self,
                _: &str,
                _: Option<&str>,
                _: Value,
            ) -> atelier_platform::Result<()> {
                Ok(())
            }
        }
        let g = &self.toon.guard;
        let v = g
            .screen_text(&NoAudit, g.policy(tenant, None, None), None, stage, text)
            .await?;
        Ok(v.flagged.is_some())
    }

    /// Adds a comment after screening it: blocked text is refused (422 naming `text`),
    /// flagged text is kept hidden for a moderator.
    pub async fn comment(
        &self,
        tenant: &str,
        user: &User,
        post_id: &str,
        text: &str,
    ) -> Result<(Comment, bool)> {
        let p = self.visible_post(Some(user), post_id).await?;
        check_text("text", text, COMMENT_MAX)?;
        let flagged = self.screen(tenant, "comment", text).await?;
        let id = atelier_platform::new_id();
        self.store
            .add_comment(&id, &p.id, &user.id, text.trim(), now_ms())
            .await?;
        if flagged {
            self.store.remove_comment(&id, None, Some(true)).await?;
        }
        self.invalidate_hot();
        let (c, hidden) = self
            .store
            .comment(&id)
            .await?
            .ok_or(DiaryError::NotFound("comment"))?;
        Ok((c, hidden))
    }

    async fn own_comment(&self, user: &User, id: &str) -> Result<Comment> {
        let (c, _) = self
            .store
            .comment(id)
            .await?
            .ok_or(DiaryError::NotFound("comment"))?;
        if c.user_id != user.id {
            return Err(DiaryError::Forbidden(
                "only the author can change this comment".into(),
            ));
        }
        Ok(c)
    }

    /// Edits your own comment (screened again).
    pub async fn edit_comment(
        &self,
        tenant: &str,
        user: &User,
        id: &str,
        text: &str,
    ) -> Result<(Comment, bool)> {
        self.own_comment(user, id).await?;
        check_text("text", text, COMMENT_MAX)?;
        let flagged = self.screen(tenant, "comment", text).await?;
        self.store.edit_comment(id, text.trim(), now_ms()).await?;
        if flagged {
            self.store.remove_comment(id, None, Some(true)).await?;
            self.invalidate_hot();
        }
        self.store
            .comment(id)
            .await?
            .ok_or(DiaryError::NotFound("comment"))
    }

    /// Deletes your own comment (a moderator may delete any).
    pub async fn delete_comment(&self, user: &User, id: &str) -> Result<()> {
        if !user.is_moderator() {
            self.own_comment(user, id).await?;
        }
        if !self.store.remove_comment(id, Some(now_ms()), None).await? {
            return Err(DiaryError::NotFound("comment"));
        }
        self.invalidate_hot();
        Ok(())
    }

    /// Likes or unlikes a post you can see; the new like count.
    pub async fn like(&self, user: &User, post_id: &str, on: bool) -> Result<i64> {
        let p = self.visible_post(Some(user), post_id).await?;
        Ok(self.store.like(&p.id, &user.id, on, now_ms()).await?)
    }

    // --- moderation -----------------------------------------------------------------

    /// Reports a post or comment you can see.
    pub async fn report(&self, user: &User, kind: &str, id: &str, reason: &str) -> Result<()> {
        let target = Target::parse(kind).ok_or_else(|| bad("kind", "must be post or comment"))?;
        if reason.chars().count() > REASON_MAX {
            return Err(bad(
                "reason",
                format!("must be at most {REASON_MAX} characters"),
            ));
        }
        match target {
            Target::Post => {
                self.visible_post(Some(user), id).await?;
            }
            Target::Comment => {
                self.store
                    .comment(id)
                    .await?
                    .ok_or(DiaryError::NotFound("comment"))?;
            }
        }
        self.store
            .report(
                &atelier_platform::new_id(),
                target,
                id,
                &user.id,
                reason.trim(),
                now_ms(),
            )
            .await?;
        Ok(())
    }

    /// Hides (or shows again) a post or comment; moderators only. Closes its reports.
    pub async fn hide(&self, user: &User, kind: &str, id: &str, hidden: bool) -> Result<()> {
        if !user.is_moderator() {
            return Err(DiaryError::Forbidden(
                "only moderators can hide content".into(),
            ));
        }
        let target = Target::parse(kind).ok_or_else(|| bad("kind", "must be post or comment"))?;
        let found = match target {
            Target::Post => {
                let ok = self.store.hide_post(id, hidden).await?;
                if let Some(p) = self.store.post(id).await? {
                    self.reindex(&p);
                }
                ok
            }
            Target::Comment => self.store.remove_comment(id, None, Some(hidden)).await?,
        };
        if !found {
            return Err(DiaryError::NotFound(target.as_str()));
        }
        self.invalidate_hot();
        self.store
            .resolve_reports(target, id, if hidden { "hidden" } else { "kept" }, now_ms())
            .await?;
        Ok(())
    }
}

/// `atelier/diary-toon`: draws (or finishes drawing) a post's comic. Input: `{"post": id}`.
pub struct DiaryToonApp {
    pub diary: Arc<Diary>,
}

#[async_trait]
impl App for DiaryToonApp {
    fn resumes(&self) -> bool {
        // Recorded steps point at files earlier attempts stored; a retry reuses them.
        true
    }

    fn name(&self) -> &str {
        TOON_APP
    }

    fn validate(&self, input: &Value) -> atelier_platform::Result<Value> {
        let o = input
            .as_object()
            .ok_or_else(|| PlatformError::invalid("input", "must be a JSON object"))?;
        if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "post" | "rev")) {
            return Err(PlatformError::invalid(
                format!("input.{k}"),
                "unknown field; accepted: post, rev",
            ));
        }
        o.get("post")
            .and_then(Value::as_str)
            .ok_or_else(|| PlatformError::invalid("input.post", "is required (a post id)"))?;
        Ok(input.clone())
    }

    fn input_schema(&self) -> Value {
        json!({
            "type": "object", "additionalProperties": false, "required": ["post"],
            "description": "Draws a diary post's four-panel comic (posts are made with POST /v1/diary/posts).",
            "properties": {"post": {"type": "string"}, "rev": {"type": "integer", "description": "the comic revision to draw (default: the current one)"}},
        })
    }

    async fn run(&self, ctx: JobContext) -> atelier_platform::Result<Value> {
        let d = &self.diary;
        let id = ctx.job.input["post"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut post = d
            .store
            .post(&id)
            .await?
            .ok_or_else(|| PlatformError::invalid("input.post", format!("no post {id:?}")))?;
        if ctx.job.input["rev"].as_i64().is_some_and(|r| r != post.rev) {
            // An edit queued a newer revision; this one is not wanted.
            return Ok(json!({"post": id, "superseded_by_rev": post.rev}));
        }
        if post.deleted_at.is_some() {
            return Ok(json!({"post": id, "deleted": true}));
        }
        let store = d.store.clone();
        let res = d
            .toon
            .run(&ctx, &mut post, |p| {
                let store = store.clone();
                async move { store.save_toon(&p).await }
            })
            .await;
        if let Some(p) = d.store.post(&id).await? {
            d.reindex(&p);
        }
        res?;
        Ok(json!({
            "post": id,
            "status": post.status,
            "title": post.title,
            "grid": post.grid_file,
            "strip": post.strip_file,
            "flagged": post.flagged,
        }))
    }
}
