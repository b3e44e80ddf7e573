//! The media pipeline's store functions on both databases: uploads, the durable thumbnail
//! sweep (leases, crash recovery, giving up), and export records.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use chrono::{Duration, Utc};
use seidra_core::Role;
use seidra_store::accounts::{self, NewUser};
use seidra_store::media::MediaFilter;
use seidra_store::media_pipeline::{self, ExportFilter, ExportSelection, MAX_THUMB_ATTEMPTS, MediaExport, NewUpload};
use seidra_store::{Backend, StoreError, media};
use seidra_testkit::{TestDb, dual_test};
use uuid::Uuid;

async fn user(db: &seidra_store::Db, name: &str) -> anyhow::Result<Uuid> {
    let new = NewUser { username: name.into(), password_hash: "$argon2id$fake".into(), role: Role::User };
    Ok(accounts::create_user(db, &new).await?.id)
}

fn upload(owner: Uuid, mime: &str) -> NewUpload {
    let id = Uuid::now_v7();
    NewUpload {
        id,
        storage_key: format!("uploads/{owner}/{id}.bin"),
        mime: mime.to_owned(),
        bytes: 10,
        width: Some(2),
        height: Some(3),
        duration_ms: None,
        sha256: "00".repeat(32),
        original_name: "x.png".to_owned(),
        tags: vec!["b".to_owned(), "a".to_owned(), "a".to_owned()],
    }
}

async fn thumbnail_sweep_and_exports(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice").await?;
    let bob = user(db, "bob").await?;

    let items =
        media_pipeline::insert_uploads(db, alice, &[upload(alice, "image/png"), upload(alice, "audio/wav")]).await?;
    assert_eq!(items[0].thumb_state, "pending");
    assert_eq!(items[1].thumb_state, "none", "audio has no thumbnails");
    assert_eq!(items[0].tags.0, ["a", "b"]);
    assert_eq!((items[0].source.as_str(), items[0].original_name.as_deref()), ("upload", Some("x.png")));
    assert_eq!(media_pipeline::owner_bytes(db, alice).await?, 20);

    // A worker that dies lets its lease run out (simulated with leases already in the past):
    // the row is claimed again, and after the last attempt it is given up.
    for attempt in 1..=MAX_THUMB_ATTEMPTS {
        let claimed = media_pipeline::claim_thumbnails(db, Duration::seconds(-1), 10).await?;
        assert_eq!(claimed.iter().map(|w| (w.id, w.thumb_attempts)).collect::<Vec<_>>(), [(items[0].id, attempt)]);
    }
    assert!(media_pipeline::claim_thumbnails(db, Duration::seconds(-1), 10).await?.is_empty());
    assert_eq!(media::get(db, items[0].id).await?.thumb_state, "failed");

    // Ready: keys recorded, and deleting the item hands every key back.
    let more = media_pipeline::insert_uploads(db, alice, &[upload(alice, "image/gif")]).await?;
    let work = media_pipeline::claim_thumbnails(db, Duration::seconds(60), 10).await?;
    assert_eq!(work.len(), 1);
    assert!(media_pipeline::claim_thumbnails(db, Duration::seconds(60), 10).await?.is_empty(), "held by its lease");
    assert!(media_pipeline::thumbnails_ready(db, more[0].id, "thumbs/s.jpg", "thumbs/l.jpg").await?);
    let ready = media::get(db, more[0].id).await?;
    assert_eq!((ready.thumb_state.as_str(), ready.thumb_256_key.as_deref()), ("ready", Some("thumbs/s.jpg")));
    assert!(matches!(media::delete(db, bob, more[0].id).await, Err(StoreError::NotFound)));
    let keys = media::delete(db, alice, more[0].id).await?;
    assert_eq!(keys, [more[0].storage_key.clone(), "thumbs/s.jpg".to_owned(), "thumbs/l.jpg".to_owned()]);
    assert!(!media_pipeline::thumbnails_ready(db, more[0].id, "a", "b").await?, "a deleted row reports false");

    // Selections: only the owner's items; someone else's id is NotFound; the cap is reported.
    let named = ExportSelection { ids: Some(vec![items[0].id, items[1].id, items[0].id]), filter: None };
    assert_eq!(media_pipeline::resolve_selection(db, alice, &named, 10).await?.map(|v| v.len()), Ok(2));
    assert!(matches!(media_pipeline::resolve_selection(db, bob, &named, 10).await, Err(StoreError::NotFound)));
    let audio =
        ExportSelection { ids: None, filter: Some(ExportFilter { kind: Some("audio".into()), ..Default::default() }) };
    assert_eq!(media_pipeline::resolve_selection(db, alice, &audio, 10).await?.map(|v| v.len()), Ok(1));
    assert_eq!(media_pipeline::resolve_selection(db, alice, &ExportSelection::default(), 1).await?.err(), Some(2));
    assert_eq!(
        media_pipeline::resolve_selection(db, bob, &ExportSelection::default(), 10).await?.map(|v| v.len()),
        Ok(0)
    );

    // Export records: owner-scoped, replaced on retry, swept when expired.
    let now = Utc::now();
    let job_id = Uuid::now_v7();
    let mut export = MediaExport {
        job_id,
        owner_id: alice,
        storage_key: format!("exports/{alice}/{job_id}.zip"),
        bytes: 1,
        items: 2,
        created_at: now,
        expires_at: now + Duration::hours(1),
    };
    media_pipeline::record_export(db, &export).await?;
    export.bytes = 99;
    media_pipeline::record_export(db, &export).await?;
    assert_eq!(media_pipeline::get_export(db, alice, job_id).await?.bytes, 99);
    assert!(matches!(media_pipeline::get_export(db, bob, job_id).await, Err(StoreError::NotFound)));
    assert!(media_pipeline::take_expired_exports(db, now).await?.is_empty());
    assert_eq!(media_pipeline::take_expired_exports(db, now + Duration::hours(2)).await?, [export.storage_key.clone()]);
    assert!(matches!(media_pipeline::get_export(db, alice, job_id).await, Err(StoreError::NotFound)));
    Ok(())
}

dual_test!(thumbnail_sweep_and_exports);

/// Every combination of the counter-backed filters (type × favourite) for `owner`: the listed
/// `total` must equal the number of items the listing actually returns.
async fn assert_totals_match(db: &seidra_store::Db, owner: Uuid) -> anyhow::Result<i64> {
    let mut all = 0;
    for kind in [None, Some("image"), Some("audio"), Some("video")] {
        for favorite in [None, Some(true), Some(false)] {
            let filter = MediaFilter { owner_id: owner, kind: kind.map(str::to_owned), favorite, ..Default::default() };
            let (items, total) = media::list(db, &filter, 1000, 0).await?;
            assert_eq!(total, items.len() as i64, "total for kind {kind:?}, favourite {favorite:?}");
            if kind.is_none() && favorite.is_none() {
                all = total;
            }
        }
    }
    Ok(all)
}

/// Library totals come from per-owner counters kept by triggers (migration 0012); they must
/// follow inserts, favourites, deletes and stay per owner.
async fn library_totals_follow_counters(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice").await?;
    let bob = user(db, "bob").await?;

    let uploads = [upload(alice, "image/png"), upload(alice, "image/png"), upload(alice, "audio/wav")];
    let items = media_pipeline::insert_uploads(db, alice, &uploads).await?;
    media_pipeline::insert_uploads(db, bob, &[upload(bob, "image/png")]).await?;
    assert_eq!(assert_totals_match(db, alice).await?, 3);
    assert_eq!(assert_totals_match(db, bob).await?, 1);

    media::set_favorite(db, alice, items[0].id, true).await?;
    media::set_favorite(db, alice, items[2].id, true).await?;
    media::set_favorite(db, alice, items[2].id, true).await?; // unchanged: must not count twice
    let favourites = MediaFilter { owner_id: alice, favorite: Some(true), ..Default::default() };
    assert_eq!(media::list(db, &favourites, 1, 0).await?.1, 2, "the total is the count, not the page length");
    assert_eq!(assert_totals_match(db, alice).await?, 3);
    media::set_favorite(db, alice, items[2].id, false).await?;
    media::change_tags(db, alice, items[1].id, &media::TagChange::Set(vec!["x".into()])).await?;
    assert_eq!(assert_totals_match(db, alice).await?, 3);

    media::delete(db, alice, items[0].id).await?;
    assert_eq!(assert_totals_match(db, alice).await?, 2);
    assert_eq!(assert_totals_match(db, bob).await?, 1);

    // Filters outside the counters still count their matches.
    let tagged = MediaFilter { owner_id: alice, tags: vec!["x".into()], ..Default::default() };
    assert_eq!(media::list(db, &tagged, 10, 0).await?.1, 1);
    // Pages past the end keep their totals, from the counters or counted.
    let everything = MediaFilter { owner_id: alice, ..Default::default() };
    assert_eq!(media::list(db, &everything, 10, 7).await?, (Vec::new(), 2));
    assert_eq!(media::list(db, &favourites, 10, 7).await?, (Vec::new(), 0));
    assert_eq!(media::list(db, &tagged, 10, 7).await?, (Vec::new(), 1));
    let (second, total) = media::list(db, &everything, 1, 1).await?;
    assert_eq!((second.len(), total), (1, 2));
    Ok(())
}

dual_test!(library_totals_follow_counters);

/// Searches with many matches (SQLite walks the owner's items in page order) and with few
/// (it reads the matches by rowid) both return exactly the owner's matches, newest first, with
/// the right total, page after page.
async fn search_pages_agree_with_plain_listing(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice").await?;
    let bob = user(db, "bob").await?;
    let tagged = |owner: Uuid, tag: &str| NewUpload { tags: vec![tag.to_owned()], ..upload(owner, "image/png") };
    for chunk in 0..4 {
        let batch: Vec<NewUpload> =
            (0..100).map(|i| tagged(alice, if (i + chunk) % 3 == 0 { "rare" } else { "harbour" })).collect();
        media_pipeline::insert_uploads(db, alice, &batch).await?;
    }
    media_pipeline::insert_uploads(db, bob, &[tagged(bob, "harbour"), tagged(bob, "rare")]).await?;

    for (word, tag) in [("harb", "harbour"), ("rare", "rare")] {
        let all = MediaFilter { owner_id: alice, ..Default::default() };
        let (everything, _) = media::list(db, &all, 1000, 0).await?;
        let expected: Vec<Uuid> =
            everything.iter().filter(|m| m.tags.0.iter().any(|t| t == tag)).map(|m| m.id).collect();
        let search = MediaFilter { owner_id: alice, search: Some(word.to_owned()), ..Default::default() };
        let mut got = Vec::new();
        for page in 0..10 {
            let (items, total) = media::list(db, &search, 50, page * 50).await?;
            assert_eq!(total, expected.len() as i64, "{word}: total");
            got.extend(items.iter().map(|m| m.id));
        }
        assert_eq!(got, expected, "{word}: the owner's matches, newest first, no duplicates or gaps");
        // Combined with a counter-backed filter, the matches are counted instead.
        let favourites = MediaFilter { favorite: Some(false), ..search.clone() };
        assert_eq!(media::list(db, &favourites, 1, 0).await?.1, expected.len() as i64, "{word}: counted total");
    }
    // Punctuation-only words and query syntax neither fail nor match everything.
    for odd in ["-", "_ -", "harbour OR", "NEAR(harbour", "harbour:*", "'x' & !y"] {
        let search = MediaFilter { owner_id: alice, search: Some(odd.to_owned()), ..Default::default() };
        let (_, total) = media::list(db, &search, 10, 0).await?;
        assert!(total <= 266, "{odd}: {total}");
    }
    Ok(())
}

dual_test!(search_pages_agree_with_plain_listing);

/// Tag changes read and write the tags in one write transaction: 16 concurrent `Add`s on the same
/// item keep every tag (a read-then-write outside a transaction lost some), and a change that
/// would pass the limit changes nothing.
async fn concurrent_tag_changes_lose_nothing(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::migrated(backend).await?;
    let db = &t.db;
    let alice = user(db, "alice").await?;
    let item = media_pipeline::insert_uploads(db, alice, &[upload(alice, "image/png")]).await?.remove(0);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let db = db.clone();
        tasks.spawn(async move {
            media::change_tags(&db, alice, item.id, &media::TagChange::Add(vec![format!("t{i:02}")])).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let tags = media::get(db, item.id).await?.tags.0;
    assert_eq!(tags.len(), 18, "a, b and the 16 added: {tags:?}");

    // Several changes and the favourite flag in one call, applied in order.
    let changes = [media::TagChange::Set(vec!["x".into(), "y".into()]), media::TagChange::Remove(vec!["x".into()])];
    let updated = media::update(db, alice, item.id, &changes, Some(true)).await?;
    assert_eq!((updated.tags.0.as_slice(), updated.favorite), (["y".to_owned()].as_slice(), true));
    let too_many = media::TagChange::Add((0..media::MAX_TAGS).map(|i| format!("n{i}")).collect());
    assert!(matches!(media::change_tags(db, alice, item.id, &too_many).await, Err(StoreError::Conflict { .. })));
    assert_eq!(media::get(db, item.id).await?.tags.0, ["y"], "nothing changed");
    // Someone else's item: not found, unchanged.
    let bob = user(db, "bob").await?;
    assert!(matches!(media::update(db, bob, item.id, &changes, None).await, Err(StoreError::NotFound)));
    Ok(())
}

dual_test!(concurrent_tag_changes_lose_nothing);
