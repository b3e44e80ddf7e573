//! Every store function, on SQLite and on PostgreSQL, each test on its own fresh database.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use chrono::{Duration, Utc};
use seidra_core::{ApiKeyScope, Role};
use seidra_store::accounts::{self, NewUser};
use seidra_store::api_keys::{self, NewApiKey};
use seidra_store::audit::{self, NewAuditEntry};
use seidra_store::refresh_tokens::{self, NewRefreshToken};
use seidra_store::{Backend, Db, StoreError};
use seidra_testkit::{TestDb, dual_test};
use uuid::Uuid;

async fn user(db: &Db, name: &str, role: Role) -> anyhow::Result<accounts::User> {
    Ok(accounts::create_user(db, &NewUser { username: name.into(), password_hash: "$argon2id$fake".into(), role })
        .await?)
}

async fn accounts_crud(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    assert_eq!(accounts::count_users(db).await?, 0);
    let alice = user(db, "alice", Role::Admin).await?;
    let bob = user(db, "bob", Role::User).await?;
    assert!(
        matches!(user(db, "alice", Role::User).await, Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Conflict { .. })))
    );

    assert_eq!(accounts::get_user(db, alice.id).await?, alice);
    assert_eq!(accounts::get_user_by_username(db, "bob").await?.id, bob.id);
    assert!(matches!(accounts::get_user(db, Uuid::new_v4()).await, Err(StoreError::NotFound)));

    let (page, total) = accounts::list_users(db, 1, 1).await?;
    assert_eq!(total, 2);
    assert_eq!(page.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(), ["bob"]);

    assert_eq!(accounts::count_active_admins(db).await?, 1);
    let bob = accounts::set_role(db, bob.id, Role::Admin).await?;
    assert_eq!(bob.role, Role::Admin);
    assert_eq!(accounts::count_active_admins(db).await?, 2);
    let bob = accounts::set_disabled(db, bob.id, true).await?;
    assert!(bob.disabled);
    assert_eq!(accounts::count_active_admins(db).await?, 1);
    let bob = accounts::set_password(db, bob.id, "$argon2id$other").await?;
    assert_eq!(bob.password_hash, "$argon2id$other");
    assert!(bob.updated_at >= bob.created_at);
    let alice = accounts::touch_login(db, alice.id).await?;
    assert!(alice.last_login_at.is_some());
    assert!(matches!(accounts::set_disabled(db, Uuid::new_v4(), true).await, Err(StoreError::NotFound)));
    Ok(())
}

async fn refresh_token_rotation(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice", Role::User).await?;
    let family = Uuid::new_v4();
    let new = |hash: &'static str, expires| NewRefreshToken {
        user_id: alice.id,
        family_id: family,
        token_hash: hash,
        expires_at: expires,
        ip: Some("127.0.0.1"),
        user_agent: None,
    };
    let first = refresh_tokens::insert(db, &new("h1", Utc::now() + Duration::days(1))).await?;
    let second = refresh_tokens::insert(db, &new("h2", Utc::now() + Duration::days(1))).await?;
    let old = refresh_tokens::insert(db, &new("h3", Utc::now() - Duration::days(1))).await?;
    assert_eq!(refresh_tokens::find_by_hash(db, "h1").await?, Some(first.clone()));
    assert_eq!(refresh_tokens::find_by_hash(db, "nope").await?, None);

    assert!(refresh_tokens::mark_used(db, first.id).await?);
    assert!(!refresh_tokens::mark_used(db, first.id).await?, "a token is used once");
    assert_eq!(refresh_tokens::revoke_family(db, family).await?, 3);
    assert!(!refresh_tokens::mark_used(db, second.id).await?, "revoked tokens cannot be used");
    assert!(refresh_tokens::find_by_hash(db, "h2").await?.and_then(|t| t.revoked_at).is_some());

    let other = refresh_tokens::insert(
        db,
        &NewRefreshToken { family_id: Uuid::new_v4(), ..new("h4", Utc::now() + Duration::days(1)) },
    )
    .await?;
    assert_eq!(refresh_tokens::revoke_all_for_user(db, alice.id).await?, 1);
    assert!(refresh_tokens::find_by_hash(db, "h4").await?.and_then(|t| t.revoked_at).is_some());
    assert_eq!(refresh_tokens::prune_expired(db, Utc::now()).await?, 1);
    assert_eq!(refresh_tokens::find_by_hash(db, "h3").await?.map(|t| t.id), None);
    let _ = (old, other);
    Ok(())
}

async fn api_key_lifecycle(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice", Role::User).await?;
    let bob = user(db, "bob", Role::User).await?;
    let id = Uuid::new_v4();
    let key = api_keys::create(
        db,
        &NewApiKey {
            id,
            user_id: alice.id,
            name: "ci",
            secret_hash: "abc",
            scopes: &[ApiKeyScope::Generate, ApiKeyScope::Read],
            expires_at: None,
        },
    )
    .await?;
    assert_eq!(key.scopes, vec![ApiKeyScope::Read, ApiKeyScope::Generate]);
    assert_eq!(api_keys::get(db, id).await?, key);
    assert_eq!(api_keys::list_for_user(db, alice.id).await?.len(), 1);
    assert!(api_keys::list_for_user(db, bob.id).await?.is_empty());

    let now = Utc::now();
    api_keys::touch(db, id, now).await?;
    let touched = api_keys::get(db, id).await?.last_used_at.map(|t| t.timestamp_millis());
    assert_eq!(touched, Some(now.timestamp_millis()));

    assert!(!api_keys::revoke(db, id, bob.id).await?, "only the owner revokes");
    assert!(api_keys::revoke(db, id, alice.id).await?);
    assert!(!api_keys::revoke(db, id, alice.id).await?, "revoking twice reports nothing to do");
    assert!(api_keys::get(db, id).await?.revoked_at.is_some());
    Ok(())
}

async fn audit_log(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice", Role::User).await?;
    for (actor, action, success) in
        [(Some(alice.id), "auth.login", false), (Some(alice.id), "auth.login", true), (None, "user.create", true)]
    {
        let entry = NewAuditEntry {
            actor_id: actor,
            action,
            target: Some("t".into()),
            success,
            ip: Some("10.0.0.1".into()),
            details: serde_json::json!({ "k": 1 }),
        };
        audit::record(db, &entry).await?;
    }
    let all = audit::list(db, None, 10, 0).await?;
    assert_eq!(all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(), ["user.create", "auth.login", "auth.login"]);
    assert_eq!(all.get(2).map(|e| e.outcome.as_str()), Some("failure"));
    assert_eq!(all.first().map(|e| e.details.0.clone()), Some(serde_json::json!({ "k": 1 })));
    assert_eq!(audit::list(db, Some(alice.id), 10, 0).await?.len(), 2);
    assert_eq!(audit::list(db, None, 1, 2).await?.len(), 1);
    Ok(())
}

async fn ping_and_pool(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    assert!(t.db.ping().await? < std::time::Duration::from_secs(1));
    assert_eq!(t.db.backend(), backend);
    Ok(())
}

dual_test!(accounts_crud, refresh_token_rotation, api_key_lifecycle, audit_log, ping_and_pool);
