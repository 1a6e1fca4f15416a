//! The workflows' stores (photo tickets, the diary site, storyboards) held to one suite on
//! SQLite (a fresh file) and PostgreSQL (a fresh schema on `ATELIER_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`), plus a comparison of the two schemas' shape.
//! Without a reachable PostgreSQL the PostgreSQL cases say they were skipped; under `CI` they
//! fail.

use std::collections::BTreeMap;

use atelier_platform::store::postgres::PgStore;
use atelier_platform::store::sqlite::SqliteStore;
use atelier_workflows::db::{self, DbPool};
use atelier_workflows::diary::store::{Cursor, NewPost, Target};
use atelier_workflows::diary::{SqlDiary, Visibility};
use atelier_workflows::storyboards::{Board, Comment, SqlStoryboards, Version};
use atelier_workflows::tickets::campaign::Campaign;
use atelier_workflows::tickets::store::{Batch, BatchRow, TicketStatus};
use atelier_workflows::tickets::{SqlTickets, TicketInput, TicketRecord, TicketStore};
use serde_json::json;
use sqlx::Row;

fn pg_url() -> String {
    std::env::var("ATELIER_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A migrated workflows database and what must outlive it.
struct Db {
    pool: DbPool,
    _dir: Option<tempfile::TempDir>,
    schema: Option<String>,
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let s = SqliteStore::open(&path).await.unwrap();
    Db {
        pool: db::open_sqlite(s.pool(), &path).await.unwrap(),
        _dir: Some(dir),
        schema: None,
    }
}

async fn postgres() -> Option<Db> {
    let url = pg_url();
    let admin = match sqlx::PgPool::connect(&url).await {
        Ok(p) => p,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL at {url} is needed under CI: {e}"
            );
            eprintln!("skipped: no PostgreSQL at {url} ({e})");
            return None;
        }
    };
    let schema = format!("apps_{}", atelier_platform::new_id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let store = PgStore::connect(&url).await.unwrap();
    Some(Db {
        pool: db::open_postgres(store.pool(), &url).await.unwrap(),
        _dir: None,
        schema: Some(schema),
    })
}

impl Db {
    async fn close(self) {
        self.pool.close().await;
        if let Some(schema) = self.schema {
            let admin = sqlx::PgPool::connect(&pg_url()).await.unwrap();
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&admin)
                .await
                .unwrap();
        }
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let d = super::sqlite().await;
                    super::$case(d.pool.clone()).await;
                    d.close().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(d) = super::postgres().await else { return };
                    super::$case(d.pool.clone()).await;
                    d.close().await;
                }
            )*
        }
    };
}

conformance!(
    tickets_campaigns_tickets_and_batches,
    diary_accounts_posts_feeds_comments_likes_reports,
    storyboards_versions_and_comments,
);

const T0: i64 = 1_700_000_000_000;

fn campaign(id: &str, tenant: &str, name: &str) -> Campaign {
    Campaign {
        id: id.into(),
        tenant_id: tenant.into(),
        version: 1,
        spec: serde_json::from_value(json!({"name": name, "brand": "아틀리에"})).unwrap(),
        created_at: T0,
        updated_at: T0,
    }
}

fn ticket(id: &str, batch: Option<(&str, i64)>) -> TicketRecord {
    TicketRecord {
        id: id.into(),
        tenant_id: "t".into(),
        campaign_id: "c1".into(),
        campaign_version: 1,
        share_id: format!("share-{id}"),
        batch_id: batch.map(|b| b.0.to_owned()),
        line: batch.map(|b| b.1),
        job_id: None,
        status: TicketStatus::Processing,
        input: TicketInput {
            name: "김하늘".into(),
            text: "첫 영화".into(),
            ..Default::default()
        },
        steps: vec![],
        file: None,
        revoked_at: None,
        created_at: T0,
        updated_at: T0,
    }
}

async fn tickets_campaigns_tickets_and_batches(pool: DbPool) {
    let s = SqlTickets::new(pool).await.unwrap();
    s.create_campaign(&campaign("c1", "t", "가을"))
        .await
        .unwrap();
    let mut spec = campaign("c1", "t", "겨울").spec;
    spec.style_prompt = "film grain".into();
    let v2 = s
        .update_campaign("t", "c1", &spec, T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v2.version, 2);
    assert!(s
        .update_campaign("other", "c1", &spec, T0)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.campaign("t", "c1", None)
            .await
            .unwrap()
            .unwrap()
            .spec
            .name,
        "겨울"
    );
    assert_eq!(
        s.campaign("t", "c1", Some(1))
            .await
            .unwrap()
            .unwrap()
            .spec
            .name,
        "가을"
    );
    assert!(s.campaign("other", "c1", None).await.unwrap().is_none());
    assert_eq!(s.list_campaigns("t").await.unwrap().len(), 1);

    let mut t = ticket("k1", None);
    s.put_ticket(&t).await.unwrap();
    t.status = TicketStatus::Ready;
    t.file = Some("atelier-file://f1".into());
    t.updated_at = T0 + 5;
    s.put_ticket(&t).await.unwrap();
    let got = s.ticket("t", "k1").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.file.as_deref()),
        (TicketStatus::Ready, Some("atelier-file://f1"))
    );
    assert_eq!(got.input.name, "김하늘");
    assert!(s.ticket("other", "k1").await.unwrap().is_none());
    assert_eq!(
        s.ticket_by_share("share-k1").await.unwrap().unwrap().id,
        "k1"
    );
    let r = s.revoke_ticket("t", "k1", T0 + 9).await.unwrap().unwrap();
    assert_eq!(r.revoked_at, Some(T0 + 9));
    assert_eq!(
        s.revoke_ticket("t", "k1", T0 + 10)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(T0 + 9),
        "revoking is idempotent"
    );
    assert_eq!(s.list_tickets("t", "c1", 10).await.unwrap().len(), 1);

    let b = Batch {
        id: "b1".into(),
        tenant_id: "t".into(),
        campaign_id: "c1".into(),
        campaign_version: 2,
        digest: "d1".into(),
        filename: Some("고객.csv".into()),
        encoding: "cp949".into(),
        total: 3,
        job_id: None,
        status: "queued".into(),
        created_at: T0,
        completed_at: None,
    };
    let rows: Vec<BatchRow> = (1..=3)
        .map(|line| BatchRow {
            line,
            status: "pending".into(),
            input: Some(TicketInput {
                name: format!("고객{line}"),
                text: "x".into(),
                ..Default::default()
            }),
            ticket_id: None,
            error: None,
            finished_at: None,
        })
        .collect();
    let (made, new) = s.create_batch(&b, &rows).await.unwrap();
    assert!(new);
    let (again, new) = s
        .create_batch(
            &Batch {
                id: "b2".into(),
                ..b.clone()
            },
            &rows,
        )
        .await
        .unwrap();
    assert!(!new, "the same digest returns the first batch");
    assert_eq!(again.id, made.id);
    s.set_batch_job("b1", "job-1").await.unwrap();
    assert_eq!(
        s.batch("t", "b1").await.unwrap().unwrap().job_id.as_deref(),
        Some("job-1")
    );
    assert!(s.batch("other", "b1").await.unwrap().is_none());
    s.put_ticket(&ticket("k2", Some(("b1", 1)))).await.unwrap();
    s.finish_row("b1", 1, "done", Some("k2"), None, T0 + 20)
        .await
        .unwrap();
    s.finish_row(
        "b1",
        2,
        "failed",
        None,
        Some(&json!({"code": "content_blocked"})),
        T0 + 21,
    )
    .await
    .unwrap();
    let c = s.row_counts("b1").await.unwrap();
    assert_eq!((c.pending, c.done, c.failed), (1, 1, 1));
    let pending = s.batch_rows("b1", Some("pending")).await.unwrap();
    assert_eq!(pending.iter().map(|r| r.line).collect::<Vec<_>>(), vec![3]);
    assert_eq!(
        s.batch_rows("b1", None).await.unwrap()[1].error,
        Some(json!({"code": "content_blocked"}))
    );
    s.set_batch_status("b1", "succeeded", Some(T0 + 30))
        .await
        .unwrap();
    let done = s.batch_any("b1").await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.completed_at),
        ("succeeded", Some(T0 + 30))
    );
    assert_eq!(s.batch_tickets("b1").await.unwrap().len(), 1);
}

fn post(id: &str, user: &str, at: i64) -> NewPost {
    NewPost {
        id: id.into(),
        user_id: user.into(),
        text: format!("오늘의 일기 {id}"),
        captions: Some(vec!["첫 컷".into()]),
        style: None,
        visibility: Visibility::Public,
        created_at: at,
    }
}

async fn diary_accounts_posts_feeds_comments_likes_reports(pool: DbPool) {
    let s = SqlDiary::new(pool).await.unwrap();
    let u = s
        .create_user("u1", "a@example.kr", "hash", "하늘", T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.role, "member");
    assert!(
        s.create_user("u9", "a@example.kr", "h", "dup", T0)
            .await
            .unwrap()
            .is_none(),
        "an email registers once"
    );
    s.create_user("u2", "b@example.kr", "hash", "바다", T0)
        .await
        .unwrap();
    assert_eq!(
        s.credentials("a@example.kr").await.unwrap().unwrap().1,
        "hash"
    );
    assert!(s.set_role("u1", "moderator").await.unwrap());
    s.create_session("tok", "u1", "csrf", T0, T0 + 1000)
        .await
        .unwrap();
    assert_eq!(
        s.session("tok", T0 + 1).await.unwrap().unwrap().user.id,
        "u1"
    );
    assert!(
        s.session("tok", T0 + 2000).await.unwrap().is_none(),
        "expired"
    );
    s.delete_session("tok").await.unwrap();
    assert!(s.session("tok", T0 + 1).await.unwrap().is_none());

    for (i, id) in ["p1", "p2", "p3"].iter().enumerate() {
        s.create_post(&post(id, "u1", T0 + i as i64)).await.unwrap();
    }
    assert_eq!(s.post_count().await.unwrap(), 3);
    assert!(
        s.lounge(None, 10).await.unwrap().is_empty(),
        "pending posts are not listed"
    );
    for id in ["p1", "p2", "p3"] {
        let mut p = s.post(id).await.unwrap().unwrap();
        p.status = "ready".into();
        p.title = Some("제목".into());
        s.save_toon(&p).await.unwrap();
    }
    let feed = s.lounge(None, 2).await.unwrap();
    assert_eq!(
        feed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["p3", "p2"]
    );
    let cursor = Cursor {
        created_at: feed[1].created_at,
        id: feed[1].id.clone(),
    };
    let next = s.lounge(Some(&cursor), 2).await.unwrap();
    assert_eq!(
        next.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        vec!["p1"]
    );
    assert!(s.post("p1").await.unwrap().unwrap().listed);
    assert!(s.hide_post("p1", true).await.unwrap());
    assert!(
        !s.post("p1").await.unwrap().unwrap().listed,
        "hidden posts leave the lounge"
    );
    s.hide_post("p1", false).await.unwrap();
    s.edit_post(
        "p2",
        Some("고친 글"),
        None,
        None,
        Some(Visibility::Private),
        T0 + 50,
    )
    .await
    .unwrap();
    assert!(
        !s.post("p2").await.unwrap().unwrap().listed,
        "private posts leave the lounge"
    );
    assert_eq!(
        s.posts(&["p1".into(), "p3".into(), "nope".into()])
            .await
            .unwrap()
            .len(),
        2
    );

    s.add_comment("c1", "p3", "u2", "좋아요", T0 + 100)
        .await
        .unwrap();
    s.add_comment("c2", "p3", "u1", "고마워요", T0 + 101)
        .await
        .unwrap();
    s.add_comment("c3", "p1", "u2", "멋져요", T0 + 102)
        .await
        .unwrap();
    let hot = s.hot(T0, 10).await.unwrap();
    assert_eq!(hot[0].0.id, "p3");
    assert_eq!(hot[0].1, 2);
    assert_eq!(s.post("p3").await.unwrap().unwrap().comment_count, 2);
    let co = s.co_commented("p3").await.unwrap();
    assert_eq!(co.get("p1"), Some(&1), "u2 commented on p1 too: {co:?}");
    s.edit_comment("c1", "정말 좋아요", T0 + 110).await.unwrap();
    let cs = s.comments("p3", None, 10).await.unwrap();
    assert_eq!(cs[0].text, "정말 좋아요");
    assert!(s.remove_comment("c2", Some(T0 + 120), None).await.unwrap());
    assert_eq!(s.post("p3").await.unwrap().unwrap().comment_count, 1);
    assert_eq!(s.comments("p3", None, 10).await.unwrap().len(), 1);

    assert_eq!(s.like("p3", "u2", true, T0).await.unwrap(), 1);
    assert_eq!(
        s.like("p3", "u2", true, T0).await.unwrap(),
        1,
        "liking twice counts once"
    );
    assert!(s.likes("p3", "u2").await.unwrap());
    assert_eq!(s.like("p3", "u2", false, T0).await.unwrap(), 0);

    s.report("r1", Target::Post, "p3", "u2", "spam", T0)
        .await
        .unwrap();
    s.report("r2", Target::Post, "p3", "u2", "spam", T0)
        .await
        .unwrap();
    assert_eq!(
        s.open_reports(10).await.unwrap().len(),
        1,
        "one report per user and target"
    );
    s.resolve_reports(Target::Post, "p3", "kept", T0 + 1)
        .await
        .unwrap();
    assert!(s.open_reports(10).await.unwrap().is_empty());
    let texts = s.listed_texts().await.unwrap();
    assert_eq!(texts.len(), 2);
    s.delete_post("p3", T0 + 200).await.unwrap();
    assert!(s.post("p3").await.unwrap().unwrap().deleted_at.is_some());
    assert_eq!(s.lounge(None, 10).await.unwrap().len(), 1);
}

fn version(board: &str, n: i64, parent: Option<i64>) -> Version {
    Version {
        storyboard_id: board.into(),
        version: n,
        parent,
        action: json!({"kind": "create"}),
        title: format!("v{n}"),
        cuts: vec![],
        status: "pending".into(),
        job_id: None,
        steps: vec![],
        outputs: json!({}),
        created_at: T0 + n,
        updated_at: T0 + n,
    }
}

async fn storyboards_versions_and_comments(pool: DbPool) {
    let s = SqlStoryboards::new(pool).await.unwrap();
    let brief = serde_json::from_value(json!({
        "product": "제주 녹차", "category": "food", "brief": "아침의 차 한 잔",
        "tone": "calm", "cuts": 4, "aspect": "16:9", "seed": 1
    }))
    .unwrap();
    let b = Board {
        id: "s1".into(),
        tenant_id: "t".into(),
        brief,
        head: 1,
        created_at: T0,
        updated_at: T0,
    };
    s.create(&b, &version("s1", 1, None)).await.unwrap();
    assert_eq!(
        s.board("t", "s1").await.unwrap().unwrap().brief.product,
        "제주 녹차"
    );
    assert!(s.board("other", "s1").await.unwrap().is_none());
    assert!(s.push_version(1, &version("s1", 2, Some(1))).await.unwrap());
    assert!(
        !s.push_version(1, &version("s1", 3, Some(1))).await.unwrap(),
        "a stale head loses"
    );
    assert_eq!(s.board_by_id("s1").await.unwrap().unwrap().head, 2);
    s.set_job("s1", 2, "job-2").await.unwrap();
    let mut v2 = s.version("s1", 2).await.unwrap().unwrap();
    assert_eq!(v2.job_id.as_deref(), Some("job-2"));
    v2.status = "ready".into();
    v2.outputs = json!({"sheet": "atelier-file://x"});
    s.save_progress(&v2).await.unwrap();
    assert_eq!(
        s.version("s1", 2).await.unwrap().unwrap().outputs["sheet"],
        "atelier-file://x"
    );
    assert_eq!(s.versions("s1").await.unwrap().len(), 2);
    let c = Comment {
        id: "m1".into(),
        storyboard_id: "s1".into(),
        cut_id: "cut-1".into(),
        version: 2,
        author: "감독".into(),
        text: "더 밝게".into(),
        created_at: T0,
        resolved_at: None,
        resolved_by: None,
    };
    s.add_comment(&c).await.unwrap();
    assert_eq!(s.comments("s1", Some("cut-1")).await.unwrap().len(), 1);
    assert!(s.comments("s1", Some("cut-2")).await.unwrap().is_empty());
    let r = s
        .resolve_comment("s1", "m1", Some("pd"), T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.resolved_at, r.resolved_by.as_deref()),
        (Some(T0 + 5), Some("pd"))
    );
    assert_eq!(s.list("t", 10).await.unwrap().len(), 1);
    assert!(s.delete("t", "s1", T0 + 9).await.unwrap());
    assert!(s.list("t", 10).await.unwrap().is_empty());
}

/// Columns (name, nullability, broad type) of the workflows' tables.
type Shape = BTreeMap<String, Vec<(String, bool, &'static str)>>;

fn broad(t: &str) -> &'static str {
    let t = t.to_ascii_lowercase();
    if t.contains("int") {
        "integer"
    } else if t.contains("char") || t.contains("text") {
        "text"
    } else if t.contains("real") || t.contains("double") || t.contains("float") {
        "real"
    } else if t.contains("blob") || t.contains("bytea") {
        "bytes"
    } else {
        "other"
    }
}

const APP_TABLES: &[&str] = &[
    "campaigns",
    "campaign_versions",
    "tickets",
    "batches",
    "batch_rows",
    "diary_users",
    "diary_sessions",
    "diary_posts",
    "diary_comments",
    "diary_likes",
    "diary_reports",
    "storyboards",
    "storyboard_versions",
    "storyboard_comments",
];

#[tokio::test]
async fn app_schemas_have_the_same_shape_on_both_backends() {
    let Some(pg) = postgres().await else { return };
    let lite = sqlite().await;
    let mut a = Shape::new();
    let mut b = Shape::new();
    for t in APP_TABLES {
        let rows = sqlx::query(&format!(
            "SELECT name, type, \"notnull\" AS nn, pk FROM pragma_table_xinfo('{t}') ORDER BY cid"
        ))
        .fetch_all(&lite.pool)
        .await
        .unwrap();
        let mut cols: Vec<_> = rows
            .iter()
            .map(|r| {
                let name: String = r.get("name");
                let ty: String = r.get("type");
                let nn = r.get::<i64, _>("nn") != 0 || r.get::<i64, _>("pk") != 0;
                (name, !nn, broad(&ty))
            })
            .collect();
        cols.sort();
        a.insert(t.to_string(), cols);
        let rows = sqlx::query(
            "SELECT column_name::TEXT AS name, data_type::TEXT AS ty, is_nullable::TEXT AS nullable \
             FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(*t)
        .fetch_all(&pg.pool)
        .await
        .unwrap();
        let mut cols: Vec<_> = rows
            .iter()
            .map(|r| {
                let ty: String = r.get("ty");
                let nullable: String = r.get("nullable");
                (r.get::<String, _>("name"), nullable == "YES", broad(&ty))
            })
            .collect();
        cols.sort();
        b.insert(t.to_string(), cols);
    }
    assert!(
        a.values().all(|c| !c.is_empty()),
        "every table exists: {a:?}"
    );
    assert_eq!(a, b, "SQLite and PostgreSQL app schemas differ");
    lite.close().await;
    pg.close().await;
}
