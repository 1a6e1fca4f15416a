//! The diary-toon site's API (`/v1/diary/...`): cookie sessions with CSRF tokens, posts and
//! their comics, the lounge, Hot TOONs, comments, likes, recommendations, moderation.
//!
//! Browsers authenticate with the `atelier_session` cookie (HttpOnly, SameSite=Lax, Secure
//! behind TLS). Every cookie-authenticated write (POST, PUT, PATCH, DELETE) must also send the
//! session's CSRF token in `X-CSRF-Token`: a page on another site can make the browser send the
//! cookie but cannot read the token.

use std::net::SocketAddr;
use std::sync::Arc;

use atelier_platform::now_ms;
use atelier_workflows::diary::recommend::Scored;
use atelier_workflows::diary::store::Comment;
use atelier_workflows::diary::{accounts, Diary, DiaryError, NewSession, Post, PostInput, User};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query, RawBody, Tenant};
use crate::state::AppState;

/// Name of the session cookie.
pub const COOKIE: &str = "atelier_session";
/// Header carrying the CSRF token on writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest avatar upload body.
pub const AVATAR_LIMIT: usize = accounts::AVATAR_MAX_BYTES + 4096;

impl From<DiaryError> for ApiError {
    fn from(e: DiaryError) -> Self {
        match e {
            DiaryError::Platform(p) => p.into(),
            DiaryError::NotFound(what) => ApiError::not_found(what),
            DiaryError::Unauthenticated => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in first (POST /v1/diary/login)",
            ),
            DiaryError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            DiaryError::EmailTaken => {
                ApiError::new(StatusCode::CONFLICT, "email_taken", e.to_string()).field("email")
            }
            DiaryError::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", e.to_string())
            }
            DiaryError::RateLimited(s) => ApiError {
                retry_after: Some(s.max(1) as u64),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            },
        }
    }
}

fn diary(state: &AppState) -> ApiResult<&Arc<Diary>> {
    state.diary.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "diary_unavailable",
            "the diary site is not enabled on this server",
        )
    })
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the client reached us over TLS (directly configured, or via a proxy that says so).
fn tls(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if tls(state, headers) { "; Secure" } else { "" };
    let v =
        format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v)
        .unwrap_or_else(|_| HeaderValue::from_static("atelier_session=; Max-Age=0"))
}

/// The signed-in user of a request (401 otherwise); writes also need the CSRF header.
pub struct SignedIn {
    pub user: User,
    pub csrf: String,
    pub token: String,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let d = diary(state)?;
        let token = cookie_token(&parts.headers).ok_or(DiaryError::Unauthenticated)?;
        let s = d
            .session(&token)
            .await?
            .ok_or(DiaryError::Unauthenticated)?;
        let write = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if write {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !accounts::csrf_matches(presented, &s.csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_failed",
                    "this write needs the session's CSRF token in the X-CSRF-Token header (GET /v1/diary/me returns it)",
                )
                .field("X-CSRF-Token"));
            }
        }
        Ok(SignedIn {
            user: s.user,
            csrf: s.csrf,
            token,
        })
    }
}

/// The peer address when the server was started with connection info (not in router tests).
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// The signed-in user when there is one (reads work signed out).
pub struct Viewer(pub Option<User>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let d = diary(state)?;
        let Some(token) = cookie_token(&parts.headers) else {
            return Ok(Viewer(None));
        };
        Ok(Viewer(d.session(&token).await?.map(|s| s.user)))
    }
}

fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "display_name": u.display_name,
        "role": u.role,
        "avatar_url": format!("/v1/diary/users/{}/avatar.png", u.id),
        "created_at": u.created_at,
    })
}

fn post_json(p: &Post, viewer: Option<&User>) -> Value {
    let own = viewer.is_some_and(|u| u.id == p.user_id);
    let moderator = viewer.is_some_and(User::is_moderator);
    let comic = (p.grid_file.is_some()).then(|| {
        json!({
            "grid_url": format!("/v1/diary/posts/{}/comic.png?layout=grid", p.id),
            "webtoon_url": format!("/v1/diary/posts/{}/comic.png?layout=webtoon", p.id),
        })
    });
    let mut v = json!({
        "id": p.id,
        "author": {"id": p.user_id, "display_name": p.author,
                   "avatar_url": format!("/v1/diary/users/{}/avatar.png", p.user_id)},
        "text": p.text,
        "visibility": p.visibility,
        "status": p.status,
        "title": p.title,
        "comic": comic,
        "comment_count": p.comment_count,
        "like_count": p.like_count,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "url": format!("/v1/diary/posts/{}", p.id),
    });
    if own || moderator {
        // What only the author and moderators see: why a post is not in the lounge.
        v["listed"] = json!(p.listed);
        v["flagged"] = json!(p.flagged);
        v["hidden"] = json!(p.hidden);
        v["job_id"] = json!(p.job_id);
        v["captions"] = json!(p.captions);
        v["steps"] = json!(p
            .steps
            .iter()
            .map(|s| json!({"step": s["step"], "status": s["status"], "ms": s["ms"], "error": s.get("error")}))
            .collect::<Vec<_>>());
    }
    v
}

fn comment_json(c: &Comment, hidden: bool) -> Value {
    json!({
        "id": c.id, "post_id": c.post_id,
        "author": {"id": c.user_id, "display_name": c.author,
                   "avatar_url": format!("/v1/diary/users/{}/avatar.png", c.user_id)},
        "text": c.text, "created_at": c.created_at, "updated_at": c.updated_at,
        "hidden": hidden,
    })
}

fn session_response(
    state: &AppState,
    headers: &HeaderMap,
    s: NewSession,
    status: StatusCode,
) -> Response {
    let max_age = ((s.expires_at - now_ms()) / 1000).max(0);
    let mut r = (
        status,
        axum::Json(json!({"user": user_json(&s.user), "csrf_token": s.csrf})),
    )
        .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(state, headers, &s.token, max_age),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `POST /v1/diary/signup` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Creates an account and signs it in (201, session cookie, CSRF token).
pub async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(b): Json<SignupBody>,
) -> ApiResult<Response> {
    let s = diary(&state)?
        .signup(&b.email, &b.password, &b.display_name)
        .await?;
    Ok(session_response(&state, &headers, s, StatusCode::CREATED))
}

/// `POST /v1/diary/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// Signs in; five failures per email or address in 15 minutes answer 429 with Retry-After.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddr(client): ClientAddr,
    Json(b): Json<LoginBody>,
) -> ApiResult<Response> {
    let s = diary(&state)?
        .login(&b.email, &b.password, client.as_deref())
        .await?;
    Ok(session_response(&state, &headers, s, StatusCode::OK))
}

/// Ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    me: SignedIn,
) -> ApiResult<Response> {
    diary(&state)?.logout(&me.token).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&state, &headers, "", 0));
    Ok(r)
}

/// The signed-in user and the CSRF token for writes.
pub async fn me(me: SignedIn) -> ApiResult<Response> {
    let mut r =
        axum::Json(json!({"user": user_json(&me.user), "csrf_token": me.csrf})).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The session as a page sees it: `{"user": null}` when signed out (200, so a page can ask
/// without an error), else the user and the CSRF token that writes need.
pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let d = diary(&state)?;
    let s = match cookie_token(&headers) {
        Some(token) => d.session(&token).await?,
        None => None,
    };
    let body = match s {
        Some(s) => json!({"user": user_json(&s.user), "csrf_token": s.csrf}),
        None => json!({"user": null, "csrf_token": null}),
    };
    let mut r = axum::Json(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// `PATCH /v1/diary/me` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub display_name: Option<String>,
}

/// Changes the display name.
pub async fn update_me(
    State(state): State<AppState>,
    me: SignedIn,
    Json(b): Json<ProfileBody>,
) -> ApiResult<axum::Json<Value>> {
    let d = diary(&state)?;
    if let Some(n) = &b.display_name {
        accounts::check_name(n).map_err(DiaryError::from)?;
        d.store
            .update_profile(&me.user.id, Some(n.trim()), None)
            .await?;
    }
    let u = d
        .store
        .user(&me.user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(json!({"user": user_json(&u)})))
}

/// Uploads an avatar (raw PNG, JPEG or WebP body, at most 2 MiB); stored as a 256 px square.
pub async fn put_avatar(
    State(state): State<AppState>,
    me: SignedIn,
    RawBody(body): RawBody,
) -> ApiResult<axum::Json<Value>> {
    let d = diary(&state)?;
    let raw = body.to_vec();
    let png = tokio::task::spawn_blocking(move || accounts::avatar_from_upload(&raw))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(DiaryError::from)?;
    let p = &state.platform;
    let rec = p
        .artifacts
        .put(
            &state.default_tenant,
            None,
            "image/png",
            "png",
            png,
            now_ms(),
        )
        .await?;
    p.store.put_file(&rec).await?;
    let reference = format!("{}{}", atelier_platform::FILE_REF, rec.id);
    d.store
        .update_profile(&me.user.id, None, Some(Some(&reference)))
        .await?;
    Ok(axum::Json(
        json!({"avatar_url": format!("/v1/diary/users/{}/avatar.png", me.user.id)}),
    ))
}

/// Goes back to the generated avatar.
pub async fn delete_avatar(State(state): State<AppState>, me: SignedIn) -> ApiResult<StatusCode> {
    diary(&state)?
        .store
        .update_profile(&me.user.id, None, Some(None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn file_bytes(state: &AppState, reference: &str) -> ApiResult<Vec<u8>> {
    let id = reference
        .strip_prefix(atelier_platform::FILE_REF)
        .ok_or_else(|| ApiError::not_found("file"))?;
    let rec = state
        .platform
        .store
        .get_file(&state.default_tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(state.platform.artifacts.get(&rec.storage_key).await?)
}

fn png_response(bytes: Vec<u8>, cache: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        bytes,
    )
        .into_response()
}

/// A user's avatar (uploaded, or generated from the account id).
pub async fn avatar(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let d = diary(&state)?;
    let u = d
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let bytes = match &u.avatar {
        Some(r) => file_bytes(&state, r).await?,
        None => accounts::generated_avatar(&u.id)?,
    };
    Ok(png_response(bytes, "public, max-age=300"))
}

/// `POST /v1/diary/posts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostBody {
    pub text: Option<String>,
    /// `public` (default) or `private`.
    pub visibility: Option<String>,
    /// Four panel captions, required when the server has no language model.
    pub captions: Option<Vec<String>>,
    /// A drawing style for this post's panels.
    pub style: Option<String>,
    /// `PATCH` only: draw the comic again with the same text.
    #[serde(default)]
    pub regenerate: bool,
}

impl PostBody {
    fn input(self) -> (PostInput, bool) {
        (
            PostInput {
                text: self.text.unwrap_or_default(),
                visibility: self.visibility,
                captions: self.captions,
                style: self.style,
            },
            self.regenerate,
        )
    }
}

/// Writes a post and queues its comic (202 with the post; its `job_id` streams progress).
pub async fn create_post(
    State(state): State<AppState>,
    me: SignedIn,
    Json(b): Json<PostBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    if b.regenerate {
        return Err(ApiError::invalid(
            "regenerate",
            "only PATCH takes regenerate",
        ));
    }
    let (i, _) = b.input();
    let p = diary(&state)?
        .create_post(&state.platform, &state.default_tenant, &me.user, i)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(post_json(&p, Some(&me.user))),
    ))
}

/// A post you may see (the liked flag when signed in).
pub async fn get_post(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let d = diary(&state)?;
    let p = d.visible_post(viewer.as_ref(), &id).await?;
    let mut v = post_json(&p, viewer.as_ref());
    if let Some(u) = &viewer {
        v["liked"] = json!(d.store.likes(&p.id, &u.id).await?);
    }
    Ok(axum::Json(v))
}

/// Edits a post (new text, captions or style draw a new comic; `regenerate` redraws).
pub async fn edit_post(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    Json(b): Json<PostBody>,
) -> ApiResult<axum::Json<Value>> {
    let (i, regen) = b.input();
    let p = diary(&state)?
        .edit_post(
            &state.platform,
            &state.default_tenant,
            &me.user,
            &id,
            i,
            regen,
        )
        .await?;
    Ok(axum::Json(post_json(&p, Some(&me.user))))
}

/// Soft-deletes a post: gone from the lounge, hot and recommendations at once.
pub async fn delete_post(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    diary(&state)?.delete_post(&me.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `?layout=grid|webtoon`.
#[derive(Debug, Deserialize)]
pub struct ComicQuery {
    pub layout: Option<String>,
}

/// A post's comic (2×2 page or webtoon strip), with its provenance metadata.
pub async fn comic(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    Query(q): Query<ComicQuery>,
) -> ApiResult<Response> {
    let d = diary(&state)?;
    let p = d.visible_post(viewer.as_ref(), &id).await?;
    let f = match q.layout.as_deref().unwrap_or("grid") {
        "grid" => p.grid_file.clone(),
        "webtoon" | "strip" => p.strip_file.clone(),
        _ => return Err(ApiError::invalid("layout", "must be grid or webtoon")),
    };
    let f = f.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!("the comic is {}", p.status),
        )
    })?;
    Ok(png_response(
        file_bytes(&state, &f).await?,
        "private, max-age=60",
    ))
}

/// `?cursor=&limit=`.
#[derive(Debug, Deserialize)]
pub struct LoungeQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// The newest public posts, `limit` (default 20) at a time; `next_cursor` fetches more.
pub async fn lounge(
    State(state): State<AppState>,
    Query(q): Query<LoungeQuery>,
) -> ApiResult<axum::Json<Value>> {
    let (posts, next) = diary(&state)?
        .lounge(q.cursor.as_deref(), q.limit.unwrap_or(20))
        .await?;
    Ok(axum::Json(json!({
        "posts": posts.iter().map(|p| post_json(p, None)).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

/// Hot TOONs: the top 4 public posts by comments in the last 7 days (ties: newer first).
pub async fn hot(State(state): State<AppState>) -> ApiResult<axum::Json<Value>> {
    let v = diary(&state)?.hot().await?;
    Ok(axum::Json(json!({
        "window_days": 7,
        "posts": v.iter().map(|(p, n)| {
            let mut j = post_json(p, None);
            j["recent_comments"] = json!(n);
            j
        }).collect::<Vec<_>>(),
    })))
}

/// `?k=`.
#[derive(Debug, Deserialize)]
pub struct RecommendQuery {
    pub k: Option<usize>,
}

/// Similar posts under a post (default 5), with the scores that chose them.
pub async fn recommended(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    Query(q): Query<RecommendQuery>,
) -> ApiResult<axum::Json<Value>> {
    let d = diary(&state)?;
    let v = d
        .recommended(viewer.as_ref(), &id, q.k.unwrap_or(5))
        .await?;
    let item = |(p, s): &(Post, Scored)| {
        let mut j = post_json(p, None);
        j["score"] = json!(s.score);
        j["similarity"] = json!(s.text);
        j["co_commenters"] = json!(s.co_commenters);
        j
    };
    Ok(axum::Json(json!({
        "posts": v.iter().map(item).collect::<Vec<_>>(),
        "method": if d.recommender.embedder().is_some() { "tfidf+embedding+co-engagement" } else { "tfidf+co-engagement" },
        "embedding_model": d.recommender.embedder(),
    })))
}

/// `?after=&limit=`.
#[derive(Debug, Deserialize)]
pub struct CommentsQuery {
    /// Creation time (ms) of the last comment already shown.
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// A post's visible comments, oldest first.
pub async fn list_comments(
    State(state): State<AppState>,
    Viewer(viewer): Viewer,
    Path(id): Path<String>,
    Query(q): Query<CommentsQuery>,
) -> ApiResult<axum::Json<Value>> {
    let d = diary(&state)?;
    let p = d.visible_post(viewer.as_ref(), &id).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 200"));
    }
    let cs = d.store.comments(&p.id, q.after, limit).await?;
    Ok(axum::Json(json!({
        "comments": cs.iter().map(|c| comment_json(c, false)).collect::<Vec<_>>(),
    })))
}

/// `{"text": ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    pub text: String,
}

/// Comments on a post (screened: blocked text is refused, flagged text held for review).
pub async fn create_comment(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    Json(b): Json<CommentBody>,
) -> ApiResult<(StatusCode, axum::Json<Value>)> {
    let (c, hidden) = diary(&state)?
        .comment(&state.default_tenant, &me.user, &id, &b.text)
        .await
        .map_err(text_field)?;
    Ok((StatusCode::CREATED, axum::Json(comment_json(&c, hidden))))
}

/// Blocked comment text names the field the client sent.
fn text_field(e: DiaryError) -> ApiError {
    let blocked = matches!(
        &e,
        DiaryError::Platform(atelier_platform::PlatformError::ContentBlocked(_))
    );
    let err: ApiError = e.into();
    if blocked {
        err.field("text")
    } else {
        err
    }
}

/// Edits your own comment.
pub async fn edit_comment(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    Json(b): Json<CommentBody>,
) -> ApiResult<axum::Json<Value>> {
    let (c, hidden) = diary(&state)?
        .edit_comment(&state.default_tenant, &me.user, &id, &b.text)
        .await
        .map_err(text_field)?;
    Ok(axum::Json(comment_json(&c, hidden)))
}

/// Deletes your own comment.
pub async fn delete_comment(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    diary(&state)?.delete_comment(&me.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Likes a post (idempotent).
pub async fn like(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let n = diary(&state)?.like(&me.user, &id, true).await?;
    Ok(axum::Json(json!({"liked": true, "like_count": n})))
}

/// Takes a like back (idempotent).
pub async fn unlike(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let n = diary(&state)?.like(&me.user, &id, false).await?;
    Ok(axum::Json(json!({"liked": false, "like_count": n})))
}

/// `{"kind": "post"|"comment", "id": ..., "reason": ...}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub reason: String,
}

/// Reports a post or comment to the moderators.
pub async fn report(
    State(state): State<AppState>,
    me: SignedIn,
    Json(b): Json<ReportBody>,
) -> ApiResult<StatusCode> {
    diary(&state)?
        .report(&me.user, &b.kind, &b.id, &b.reason)
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Open reports (moderators).
pub async fn list_reports(
    State(state): State<AppState>,
    me: SignedIn,
) -> ApiResult<axum::Json<Value>> {
    if !me.user.is_moderator() {
        return Err(DiaryError::Forbidden("only moderators can read reports".into()).into());
    }
    let r = diary(&state)?.store.open_reports(200).await?;
    Ok(axum::Json(json!({"reports": r})))
}

/// `{"kind": "post"|"comment", "id": ..., "hidden": true}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HideBody {
    pub kind: String,
    pub id: String,
    #[serde(default = "yes")]
    pub hidden: bool,
}

fn yes() -> bool {
    true
}

/// Hides (or restores) a post or comment; closes its reports (moderators).
pub async fn hide(
    State(state): State<AppState>,
    me: SignedIn,
    Json(b): Json<HideBody>,
) -> ApiResult<StatusCode> {
    diary(&state)?
        .hide(&me.user, &b.kind, &b.id, b.hidden)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"role": "moderator"|"member"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: String,
}

/// Grants or removes the moderator role: an operator action (API key, or open mode on
/// loopback), never a cookie one.
pub async fn set_role(
    State(state): State<AppState>,
    _operator: Tenant,
    Path(id): Path<String>,
    Json(b): Json<RoleBody>,
) -> ApiResult<axum::Json<Value>> {
    if !matches!(b.role.as_str(), "moderator" | "member") {
        return Err(ApiError::invalid("role", "must be moderator or member"));
    }
    let d = diary(&state)?;
    if !d.store.set_role(&id, &b.role).await? {
        return Err(ApiError::not_found("user"));
    }
    let u = d
        .store
        .user(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(axum::Json(json!({"user": user_json(&u)})))
}
