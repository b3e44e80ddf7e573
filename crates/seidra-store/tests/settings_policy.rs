//! User settings and the content policy store, on SQLite and PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use seidra_core::Role;
use seidra_core::policy::{Applies, BlockedCategory, PolicyDocument};
use seidra_core::user_settings::apply_patch;
use seidra_store::accounts::{self, NewUser};
use seidra_store::{Backend, content_policy, user_settings};
use seidra_testkit::{TestDb, dual_test};
use serde_json::json;

async fn settings_roundtrip(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let u = accounts::create_user(db, &NewUser { username: "ann".into(), password_hash: "x".into(), role: Role::User })
        .await?;
    assert_eq!(user_settings::get_overrides(db, u.id).await?, (json!({}), 0));
    assert!(user_settings::notification_enabled(db, u.id, "job", "webhook").await);
    let patch = json!({"notifications": {"job": {"webhook": false}}, "theme": "dark"});
    let s = user_settings::update(db, u.id, |cur| apply_patch(cur, &patch)).await??;
    assert_eq!(s.theme, "dark");
    assert!(!user_settings::notification_enabled(db, u.id, "job", "webhook").await);
    assert!(user_settings::notification_enabled(db, u.id, "job", "in_app").await);
    let patch = json!({"theme": null});
    user_settings::update(db, u.id, |cur| apply_patch(cur, &patch)).await??;
    assert_eq!(
        user_settings::get_overrides(db, u.id).await?,
        (json!({"notifications": {"job": {"webhook": false}}}), 2)
    );
    // A refused patch changes nothing.
    let bad = json!({"theme": "neon"});
    let refused = user_settings::update(db, u.id, |cur| apply_patch(cur, &bad)).await?;
    assert_eq!(refused.unwrap_err().field, "theme");
    assert_eq!(user_settings::get_overrides(db, u.id).await?.1, 2);
    // Concurrent patches of different keys both land (optimistic retry).
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let db = db.clone();
        let id = u.id;
        tasks.push(tokio::spawn(async move {
            let key = ["job", "export", "quota", "security", "system", "job"][i as usize];
            let channel = if i == 5 { "websocket" } else { "in_app" };
            let patch = json!({"notifications": {key: {channel: false}}});
            user_settings::update(&db, id, |cur| apply_patch(cur, &patch)).await.map(|r| r.map(|_| ()))
        }));
    }
    for t in tasks {
        t.await?.expect("store").expect("valid");
    }
    let s = user_settings::get(db, u.id).await?;
    for c in ["job", "export", "quota", "security", "system"] {
        assert!(!s.notification_enabled(c, "in_app"), "{c}");
    }
    assert!(!s.notification_enabled("job", "websocket"));
    Ok(())
}

async fn policy_versions(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    assert_eq!(content_policy::version(db).await?, 0);
    assert_eq!(content_policy::load(db).await?, (0, PolicyDocument::default()));
    let doc = PolicyDocument {
        nsfw_allowed: true,
        categories: vec![BlockedCategory { name: "gore".into(), terms: vec!["gore".into()], applies: Applies::Always }],
    };
    assert_eq!(content_policy::save(db, &doc, None).await?, 1);
    assert_eq!(content_policy::save(db, &doc, None).await?, 2);
    assert_eq!(content_policy::version(db).await?, 2);
    assert_eq!(content_policy::load(db).await?, (2, doc));
    Ok(())
}

dual_test!(settings_roundtrip, policy_versions);
