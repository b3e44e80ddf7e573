//! Personas on SQLite and PostgreSQL: CRUD with versions, duplicate, favourite, search, the
//! merge into jobs (recorded with the persona version), preview, and isolation between users.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "test helpers panic on broken fixtures")]

use std::time::Duration;

use seidra_store::Backend;
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-passphrase";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn noir() -> Value {
    json!({
        "name": "Noir",
        "description": "high-contrast black and white",
        "prompt_template": "film noir still of {prompt}, hard shadows",
        "negative_prompt": "colour",
        "tags": ["Film", "bw"],
        "image": { "width": 512, "height": 384, "num_inference_steps": 12, "scheduler": "euler",
                   "seed_policy": { "mode": "fixed", "seed": 4242 } }
    })
}

async fn personas_end_to_end(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::builder(backend).with_workers(1).start().await?;
    let alice = s(&server.register("alice", PASSWORD).await?["access_token"]);
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);

    let (status, created) = server.post("/api/personas", Some(&alice), &noir()).await?;
    assert_eq!(status, 201, "{created}");
    let id = s(&created["id"]);
    assert_eq!((created["version"].as_i64(), created["spec"]["tags"].clone()), (Some(1), json!(["film", "bw"])));

    // Validation names the field.
    let mut bad = noir();
    bad["image"]["width"] = json!(100);
    let (status, body) = server.post("/api/personas", Some(&alice), &bad).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("image.width")));
    let (status, body) = server.post("/api/personas", Some(&alice), &json!({ "name": "x", "colour": "red" })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("colour")));

    // A job with the persona: template, negative, defaults and fixed seed applied; request fields win.
    let body = json!({ "prompt": "a detective", "persona_id": id, "negative_prompt": "blurry", "height": 256 });
    let (status, resp) = server.post("/api/generate/single", Some(&alice), &body).await?;
    assert_eq!(status, 202, "{resp}");
    let job = &resp["jobs"][0];
    assert_eq!(job["prompt"], "film noir still of a detective, hard shadows");
    assert_eq!(job["negative_prompt"], "colour, blurry");
    assert_eq!((job["request"]["width"].as_i64(), job["request"]["height"].as_i64()), (Some(512), Some(256)));
    assert_eq!((job["request"]["seed"].as_i64(), job["request"]["scheduler"].as_str()), (Some(4242), Some("euler")));
    assert_eq!(
        (job["persona_id"].as_str(), job["request"]["num_inference_steps"].as_i64()),
        (Some(id.as_str()), Some(12))
    );
    let done = server.wait_job(&alice, &s(&job["id"]), Duration::from_secs(60), |j| j["status"] == "succeeded").await?;
    let media_id = s(&done["outputs"][0]["media_id"]);
    let (_, item) = server.get(&format!("/api/media/{media_id}"), Some(&alice)).await?;
    assert_eq!((item["persona_id"].as_str(), item["persona_version"].as_i64()), (Some(id.as_str()), Some(1)));
    let (_, by_persona) = server.get(&format!("/api/media?persona_id={id}"), Some(&alice)).await?;
    assert_eq!(by_persona["total"], 1);

    // Editing creates version 2; jobs now record version 2; both versions are listed.
    let mut v2 = noir();
    v2["prompt_template"] = json!("{prompt} in the rain, noir");
    let (status, updated) = server
        .client
        .put(server.url(&format!("/api/personas/{id}")))
        .bearer_auth(&alice)
        .json(&v2)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map(|st| (st, ()))?;
    assert_eq!((status, updated), (200, ()));
    let (_, resp) =
        server.post("/api/generate/single", Some(&alice), &json!({ "prompt": "a cab", "persona_id": id })).await?;
    assert_eq!(resp["jobs"][0]["prompt"], "a cab in the rain, noir");
    let (_, versions) = server.get(&format!("/api/personas/{id}/versions"), Some(&alice)).await?;
    let numbers: Vec<i64> = versions.as_array().unwrap().iter().filter_map(|v| v["version"].as_i64()).collect();
    assert_eq!(numbers, vec![2, 1]);

    // Favourite, duplicate, search.
    let (_, fav) = server.patch(&format!("/api/personas/{id}"), Some(&alice), &json!({ "favorite": true })).await?;
    assert_eq!(
        (fav["favorite"].as_bool(), fav["version"].as_i64()),
        (Some(true), Some(2)),
        "favourite is not a version"
    );
    let (status, copy) = server.post(&format!("/api/personas/{id}/duplicate"), Some(&alice), &json!({})).await?;
    assert_eq!((status, copy["spec"]["name"].as_str(), copy["version"].as_i64()), (201, Some("Noir (copy)"), Some(1)));
    let (_, found) = server.get("/api/personas?q=copy", Some(&alice)).await?;
    assert_eq!(found["total"], 1);
    let (_, favs) = server.get("/api/personas?favorite=true", Some(&alice)).await?;
    assert_eq!(favs["items"][0]["id"], id.as_str());

    // Preview queues a real job with the persona.
    let (status, preview) =
        server.post(&format!("/api/personas/{id}/preview"), Some(&alice), &json!({ "prompt": "a hat" })).await?;
    assert_eq!(status, 202, "{preview}");
    assert_eq!(preview["jobs"][0]["prompt"], "a hat in the rain, noir");
    server
        .wait_job(&alice, &s(&preview["jobs"][0]["id"]), Duration::from_secs(60), |j| j["status"] == "succeeded")
        .await?;

    // Bob can neither see, use, edit, duplicate nor delete Alice's persona.
    let (_, list) = server.get("/api/personas", Some(&bob)).await?;
    assert_eq!(list["total"], 0);
    for (status, _) in [
        server.get(&format!("/api/personas/{id}"), Some(&bob)).await?,
        server.patch(&format!("/api/personas/{id}"), Some(&bob), &json!({ "favorite": false })).await?,
        server.post(&format!("/api/personas/{id}/duplicate"), Some(&bob), &json!({})).await?,
        server.get(&format!("/api/personas/{id}/versions"), Some(&bob)).await?,
        server.delete(&format!("/api/personas/{id}"), Some(&bob)).await?,
    ] {
        assert_eq!(status, 404);
    }
    let (status, body) =
        server.post("/api/generate/single", Some(&bob), &json!({ "prompt": "x", "persona_id": id })).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("persona_id")));

    // Delete hides it; the job provenance stays.
    let (status, _) = server.delete(&format!("/api/personas/{id}"), Some(&alice)).await?;
    assert_eq!(status, 204);
    let (status, _) = server.get(&format!("/api/personas/{id}"), Some(&alice)).await?;
    assert_eq!(status, 404);
    let (_, item) = server.get(&format!("/api/media/{media_id}"), Some(&alice)).await?;
    assert_eq!(item["persona_version"], 1);
    server.stop().await
}

dual_test!(personas_end_to_end);
