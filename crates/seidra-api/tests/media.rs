//! The media library API on SQLite and PostgreSQL: filters, full-text search, tags,
//! favourites, stats, bulk actions, delete, and that nobody else can see any of it.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Generates with the noop engine and returns the media ids of the outputs.
async fn generate(server: &TestServer, token: &str, prompt: &str, n: u32) -> Vec<String> {
    let body = json!({ "prompt": prompt, "engine": "noop", "num_images": n, "width": 64, "height": 64 });
    let (status, resp) = server.post("/api/generate/single", Some(token), &body).await.unwrap();
    assert_eq!(status, 202, "{resp}");
    let id = s(&resp["job_ids"][0]);
    let job = server.wait_job(token, &id, Duration::from_secs(30), |j| j["status"] == "succeeded").await.unwrap();
    job["outputs"].as_array().unwrap().iter().map(|o| s(&o["media_id"])).collect()
}

async fn ids(server: &TestServer, token: &str, query: &str) -> (Vec<String>, i64) {
    let (status, page) = server.get(&format!("/api/media{query}"), Some(token)).await.unwrap();
    assert_eq!(status, 200, "{query}: {page}");
    let items = page["items"].as_array().unwrap().iter().map(|i| s(&i["id"])).collect();
    (items, page["total"].as_i64().unwrap())
}

async fn library(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).settings(|s| s.engines.noop = true).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let fox = generate(&server, &alice, "a red fox in the snow", 2).await;
    let whale = generate(&server, &alice, "a blue whale under the sea", 1).await;
    let bobs = generate(&server, &bob, "a red fox of bob", 1).await;

    let (all, total) = ids(&server, &alice, "").await;
    assert_eq!((all.len(), total), (3, 3));
    assert_eq!(all[0], whale[0], "newest first");
    let (_, total) = ids(&server, &alice, "?limit=1&offset=1").await;
    assert_eq!(total, 3);

    // Provenance.
    let (status, item) = server.get(&format!("/api/media/{}", fox[0]), Some(&alice)).await?;
    assert_eq!(status, 200);
    assert_eq!(item["prompt"], "a red fox in the snow");
    assert_eq!((item["engine"].as_str(), item["model"].as_str()), (Some("noop"), Some("noop")));
    assert_eq!(item["parameters"]["num_images"], 2);
    assert!(item["seed"].as_i64().is_some() && item["job_id"].is_string());
    assert_eq!(item["file"]["mime"], "image/png");
    let download = server.client.get(server.url(&s(&item["file"]["url"]))).send().await?;
    assert_eq!(download.status().as_u16(), 200);

    // Full-text search on the prompt.
    let (found, _) = ids(&server, &alice, "?q=fox").await;
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|id| fox.contains(id)));
    let (found, _) = ids(&server, &alice, "?q=blue%20whale").await;
    assert_eq!(found, whale);
    let (found, _) = ids(&server, &alice, "?q=%22OR%20*%20)(").await;
    assert!(found.is_empty(), "query syntax is neutralised, not an error");

    // Tags: replace, add, remove; filters any/all; tags are searchable.
    let (status, item) = server
        .patch(&format!("/api/media/{}", fox[0]), Some(&alice), &json!({ "tags": ["Winter", "animals"] }))
        .await?;
    assert_eq!((status, item["tags"].clone()), (200, json!(["animals", "winter"])));
    let (_, item) = server
        .patch(
            &format!("/api/media/{}", fox[0]),
            Some(&alice),
            &json!({ "add_tags": ["best"], "remove_tags": ["winter"], "favorite": true }),
        )
        .await?;
    assert_eq!((item["tags"].clone(), item["favorite"].as_bool()), (json!(["animals", "best"]), Some(true)));
    server.patch(&format!("/api/media/{}", whale[0]), Some(&alice), &json!({ "tags": ["animals", "sea"] })).await?;
    let (found, _) = ids(&server, &alice, "?tags=animals").await;
    assert_eq!(found.len(), 2);
    let (found, _) = ids(&server, &alice, "?tags=animals,sea&tags_mode=all").await;
    assert_eq!(found, whale);
    let (found, _) = ids(&server, &alice, "?tags=best,sea").await;
    assert_eq!(found.len(), 2, "any");
    let (found, _) = ids(&server, &alice, "?favorite=true").await;
    assert_eq!(found, vec![fox[0].clone()]);
    let (found, _) = ids(&server, &alice, "?q=sea").await;
    assert_eq!(found, whale, "tags are searchable");

    // Validation names the field.
    for (path, field) in [
        ("?type=gif", "type"),
        ("?sort=random", "sort"),
        ("?tags_mode=some", "tags_mode"),
        ("?tags=%3Cscript%3E", "tags[0]"),
    ] {
        let (status, body) = server.get(&format!("/api/media{path}"), Some(&alice)).await?;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some(field)), "{path}");
    }
    let (status, body) =
        server.patch(&format!("/api/media/{}", fox[0]), Some(&alice), &json!({ "tags": ["ok", ""] })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("tags[1]")));

    // Nobody else sees, changes, deletes or finds Alice's items.
    let (_, bob_total) = ids(&server, &bob, "").await;
    assert_eq!(bob_total, 1);
    let (found, _) = ids(&server, &bob, "?q=snow").await;
    assert!(found.is_empty());
    let (status, _) = server.get(&format!("/api/media/{}", fox[0]), Some(&bob)).await?;
    assert_eq!(status, 404);
    let (status, _) =
        server.patch(&format!("/api/media/{}", fox[0]), Some(&bob), &json!({ "favorite": false })).await?;
    assert_eq!(status, 404);
    let (status, _) = server.delete(&format!("/api/media/{}", fox[0]), Some(&bob)).await?;
    assert_eq!(status, 404);

    // Stats.
    let (status, stats) = server.get("/api/media/stats", Some(&alice)).await?;
    assert_eq!(status, 200);
    assert_eq!(
        (stats["total"].as_i64(), stats["favorites"].as_i64(), stats["by_kind"]["image"].as_i64()),
        (Some(3), Some(1), Some(3))
    );
    assert!(stats["total_bytes"].as_i64().unwrap_or(0) > 0);
    assert_eq!(stats["by_day"].as_object().map(|d| d.values().filter_map(Value::as_i64).sum::<i64>()), Some(3));

    // Bulk: per-item results, someone else's item is just "not found".
    let bulk = json!({ "ids": [fox[1], bobs[0], whale[0]], "action": "tag", "tags": ["batch"] });
    let (status, res) = server.post("/api/media/bulk", Some(&alice), &bulk).await?;
    assert_eq!((status, res["succeeded"].as_i64(), res["failed"].as_i64()), (200, Some(2), Some(1)));
    assert_eq!(res["results"][1]["error"], "not_found");
    let (found, _) = ids(&server, &alice, "?tags=batch").await;
    assert_eq!(found.len(), 2);
    let (_, bob_item) = server.get(&format!("/api/media/{}", bobs[0]), Some(&bob)).await?;
    assert_eq!(bob_item["tags"], json!([]), "Bob's item untouched");

    // Delete removes the row and the file.
    let (_, item) = server.get(&format!("/api/media/{}", whale[0]), Some(&alice)).await?;
    let url = s(&item["file"]["url"]);
    let (status, _) = server.delete(&format!("/api/media/{}", whale[0]), Some(&alice)).await?;
    assert_eq!(status, 204);
    assert_eq!(server.client.get(server.url(&url)).send().await?.status().as_u16(), 404);
    let (status, _) = server.get(&format!("/api/media/{}", whale[0]), Some(&alice)).await?;
    assert_eq!(status, 404);
    let bulk = json!({ "ids": [fox[0], fox[1]], "action": "delete" });
    let (_, res) = server.post("/api/media/bulk", Some(&alice), &bulk).await?;
    assert_eq!(res["succeeded"], 2);
    let (_, total) = ids(&server, &alice, "").await;
    assert_eq!(total, 0);
    server.stop().await
}

dual_test!(library);
