//! User settings and the enforced content policy, on SQLite and PostgreSQL: merge-patch
//! semantics and schema errors, the admin ceiling, refusals at submit and persona save (422
//! naming the rule, nothing queued, audited), the policy version recorded on accepted jobs,
//! and a second API replica picking up an admin's change.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::time::{Duration, Instant};

use seidra_store::{Backend, Db, DbOptions};
use seidra_testkit::{TestServer, dual_test};
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "a-long-enough-passphrase";

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn put(base: &str, path: &str, token: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let resp = reqwest::Client::new().put(format!("{base}{path}")).bearer_auth(token).json(body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn job_total(server: &TestServer, token: &str) -> anyhow::Result<i64> {
    let (status, page) = server.get("/api/jobs", Some(token)).await?;
    assert_eq!(status, 200, "{page}");
    Ok(page["total"].as_i64().unwrap())
}

async fn settings_merge_patch(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);

    let (status, d) = server.get("/api/settings", Some(&ann)).await?;
    assert_eq!(status, 200, "{d}");
    assert_eq!((d["theme"].as_str(), d["language"].as_str()), (Some("system"), Some("en")));
    assert_eq!(d["notifications"]["job"], json!({"in_app": true, "websocket": true, "webhook": true}));
    assert_eq!(d["content"], json!({"nsfw": false, "age_confirmed": false, "blocked_terms": []}));
    let (status, _) = server.get("/api/settings", None).await?;
    assert_eq!(status, 401);

    // A nested change keeps its siblings.
    let (status, d) = server
        .patch("/api/settings", Some(&ann), &json!({"theme": "dark", "notifications": {"job": {"webhook": false}}}))
        .await?;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["notifications"]["job"], json!({"in_app": true, "websocket": true, "webhook": false}));
    assert_eq!(d["notifications"]["export"]["webhook"], true);
    let (_, d) = server.patch("/api/settings", Some(&ann), &json!({"language": "fr"})).await?;
    assert_eq!((d["theme"].as_str(), d["language"].as_str()), (Some("dark"), Some("fr")));
    assert_eq!(d["notifications"]["job"]["webhook"], false);
    // What the notifications helper reads.
    let uid = seidra_store::accounts::get_user_by_username(&server.state.db, "ann").await?.id;
    assert!(!seidra_store::user_settings::notification_enabled(&server.state.db, uid, "job", "webhook").await);
    assert!(seidra_store::user_settings::notification_enabled(&server.state.db, uid, "job", "in_app").await);

    // null resets to the default.
    let (_, d) =
        server.patch("/api/settings", Some(&ann), &json!({"theme": null, "notifications": {"job": null}})).await?;
    assert_eq!((d["theme"].as_str(), d["language"].as_str()), (Some("system"), Some("fr")));
    assert_eq!(d["notifications"]["job"]["webhook"], true);
    let (_, again) = server.get("/api/settings", Some(&ann)).await?;
    assert_eq!(again, d);

    // Unknown keys and wrong types are refused with their path; nothing changes.
    for (patch, field) in [
        (json!({"notifications": {"job": {"emai": true}}}), "notifications.job.emai"),
        (json!({"wallpaper": "x"}), "wallpaper"),
        (json!({"notifications": {"job": {"in_app": "yes"}}}), "notifications.job.in_app"),
        (json!({"theme": "neon"}), "theme"),
        (json!({"generation": {"width": 1.5}}), "generation.width"),
        (json!({"content": {"blocked_terms": [1]}}), "content.blocked_terms[0]"),
    ] {
        let (status, body) = server.patch("/api/settings", Some(&ann), &patch).await?;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some(field)), "{patch} → {body}");
    }
    let (_, after) = server.get("/api/settings", Some(&ann)).await?;
    assert_eq!(after, d);

    // NSFW: needs age confirmation, and the instance must allow it (default: not allowed).
    let (status, body) = server.patch("/api/settings", Some(&ann), &json!({"content": {"nsfw": true}})).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("content.nsfw")), "{body}");
    let (status, body) =
        server.patch("/api/settings", Some(&ann), &json!({"content": {"nsfw": true, "age_confirmed": true}})).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("content.nsfw")), "{body}");
    assert!(s(&body["error"]["message"]).contains("instance"), "{body}");
    let admin = server.admin_token().await?;
    let (status, body) = put(&server.base, "/api/admin/content-policy", &admin, &json!({"nsfw_allowed": true})).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        server.patch("/api/settings", Some(&ann), &json!({"content": {"nsfw": true, "age_confirmed": true}})).await?;
    assert_eq!((status, body["content"]["nsfw"].as_bool()), (200, Some(true)), "{body}");
    server.stop().await
}

async fn policy_admin_only(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);
    let admin = server.admin_token().await?;
    let (status, _) = server.get("/api/admin/content-policy", Some(&ann)).await?;
    assert_eq!(status, 403);
    let (status, _) = put(&server.base, "/api/admin/content-policy", &ann, &json!({"nsfw_allowed": true})).await?;
    assert_eq!(status, 403);

    let (status, p) = server.get("/api/admin/content-policy", Some(&admin)).await?;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["version"].as_i64(), p["nsfw_allowed"].as_bool()), (Some(0), Some(false)));
    let names: Vec<_> = p["effective_categories"].as_array().unwrap().iter().map(|c| s(&c["name"])).collect();
    assert_eq!(names, ["minors", "explicit"]);

    // Built-ins cannot be removed: an empty list keeps them; naming one adds terms.
    let body = json!({"nsfw_allowed": false, "categories": [
        {"name": "minors", "terms": ["toddler"]},
        {"name": "gore", "terms": ["gore*", "beheading"]},
    ]});
    let (status, p) = put(&server.base, "/api/admin/content-policy", &admin, &body).await?;
    assert_eq!((status, p["version"].as_i64()), (200, Some(1)), "{p}");
    let minors = &p["effective_categories"][0];
    assert_eq!((minors["name"].as_str(), minors["builtin"].as_bool()), (Some("minors"), Some(true)));
    let terms: Vec<_> = minors["terms"].as_array().unwrap().iter().map(s).collect();
    assert!(terms.contains(&"loli".to_owned()) && terms.contains(&"toddler".to_owned()));
    let (status, p) = put(&server.base, "/api/admin/content-policy", &admin, &json!({"categories": []})).await?;
    assert_eq!((status, p["version"].as_i64()), (200, Some(2)));
    assert_eq!(p["effective_categories"].as_array().unwrap().len(), 2);

    // Validation names the field.
    let bad = json!({"categories": [{"name": "minors", "terms": [], "applies": "unless_nsfw"}]});
    let (status, body) = put(&server.base, "/api/admin/content-policy", &admin, &bad).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("categories[0].applies")));
    let bad = json!({"categories": [{"name": "x", "terms": ["..."]}]});
    let (status, body) = put(&server.base, "/api/admin/content-policy", &admin, &bad).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("categories[0].terms[0]")));
    let (status, body) = put(&server.base, "/api/admin/content-policy", &admin, &json!({"nsfw": true})).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("nsfw")));
    server.stop().await
}

async fn submit_enforced(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);
    let admin = server.admin_token().await?;
    let body = json!({"categories": [{"name": "weapons", "terms": ["assault rifle", "grenade*"]}]});
    let (status, _) = put(&server.base, "/api/admin/content-policy", &admin, &body).await?;
    assert_eq!(status, 200);

    let small = |prompt: &str| json!({"prompt": prompt, "width": 64, "height": 64, "num_inference_steps": 1});
    let (status, body) =
        server.post("/api/generate/single", Some(&ann), &small("a soldier with an assault rifle")).await?;
    assert_eq!(status, 422, "{body}");
    let e = &body["error"];
    assert_eq!((e["code"].as_str(), e["field"].as_str()), (Some("content_policy"), Some("prompt")));
    assert_eq!(
        (e["details"]["category"].as_str(), e["details"]["term"].as_str(), e["details"]["field"].as_str()),
        (Some("weapons"), Some("assault rifle"), Some("prompt"))
    );
    assert_eq!(e["details"]["policy_version"].as_i64(), Some(1));
    assert!(s(&e["message"]).contains("weapons"), "{body}");
    assert_eq!(job_total(&server, &ann).await?, 0, "nothing queued");
    let uid = seidra_store::accounts::get_user_by_username(&server.state.db, "ann").await?.id;
    let audit = seidra_store::audit::list(&server.state.db, Some(uid), 10, 0).await?;
    let refused = audit.iter().find(|a| a.action == "content_policy.refused").expect("audited");
    assert_eq!(refused.outcome, "failure");
    assert_eq!(refused.details.0["category"], "weapons");
    assert_eq!(refused.details.0["term"], "assault rifle");
    assert_eq!(refused.details.0["context"], "generate");

    // Evasions are caught; the defaults block NSFW terms while NSFW is off.
    for (prompt, category) in [
        ("GRENADES everywhere", "weapons"),
        ("an assault-rifle", "weapons"),
        ("a g.r.e.n.a.d.e", "weapons"),
        ("n s f w pinup", "explicit"),
        ("ｎｕｄｅ statue", "explicit"),
        ("l0li", "minors"),
    ] {
        let (status, body) = server.post("/api/generate/single", Some(&ann), &small(prompt)).await?;
        assert_eq!((status, body["error"]["details"]["category"].as_str()), (422, Some(category)), "{prompt}: {body}");
    }
    // The negative prompt is named; NSFW words there are allowed (they steer away).
    let (status, body) = server
        .post(
            "/api/generate/single",
            Some(&ann),
            &json!({"prompt": "a cat", "negative_prompt": "jailbait", "width": 64, "height": 64}),
        )
        .await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("negative_prompt")), "{body}");
    // Batch: the failing request is named.
    let batch = json!({"requests": [small("a cat"), small("grenade launcher")]});
    let (status, body) = server.post("/api/generate/batch", Some(&ann), &batch).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("requests[1].prompt")), "{body}");
    assert_eq!(job_total(&server, &ann).await?, 0, "nothing queued");

    // Innocent words containing blocked substrings pass, and the job records the policy version.
    let ok = json!({"prompt": "a classic passenger train in Sussex", "negative_prompt": "nsfw, nude",
                    "width": 64, "height": 64, "num_inference_steps": 1});
    let (status, body) = server.post("/api/generate/single", Some(&ann), &ok).await?;
    assert_eq!(status, 202, "{body}");
    let job_id: Uuid = s(&body["job_ids"][0]).parse()?;
    assert_eq!(
        seidra_store::content_policy::job_decision(&server.state.db, job_id).await?,
        Some(json!({"version": 1, "outcome": "allowed"}))
    );

    // The user's own blocked terms apply to them only.
    let (status, _) =
        server.patch("/api/settings", Some(&ann), &json!({"content": {"blocked_terms": ["clowns"]}})).await?;
    assert_eq!(status, 200);
    let (status, body) = server.post("/api/generate/single", Some(&ann), &small("sad clowns")).await?;
    assert_eq!((status, body["error"]["details"]["category"].as_str()), (422, Some("user")), "{body}");
    let bob = s(&server.register("bob", PASSWORD).await?["access_token"]);
    let (status, body) = server.post("/api/generate/single", Some(&bob), &small("sad clowns")).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(job_total(&server, &ann).await?, 1);
    server.stop().await
}

async fn personas_enforced(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);
    let admin = server.admin_token().await?;

    let bad = json!({"name": "Bad", "prompt_template": "shotacon art of {prompt}"});
    let (status, body) = server.post("/api/personas", Some(&ann), &bad).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["field"].as_str(),
            body["error"]["details"]["category"].as_str()
        ),
        (Some("content_policy"), Some("prompt_template"), Some("minors"))
    );
    let (_, list) = server.get("/api/personas", Some(&ann)).await?;
    assert_eq!(list["total"], 0);
    // NSFW flag refused while the instance does not allow NSFW.
    let (status, body) = server.post("/api/personas", Some(&ann), &json!({"name": "Pinup", "nsfw": true})).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("nsfw")), "{body}");

    // A persona saved under a permissive policy is refused at use once the policy changes.
    let good = json!({"name": "Arms", "prompt_template": "{prompt} holding a musket"});
    let (status, p) = server.post("/api/personas", Some(&ann), &good).await?;
    assert_eq!(status, 201, "{p}");
    let id = s(&p["id"]);
    let (status, body) = put(
        &server.base,
        &format!("/api/personas/{id}"),
        &ann,
        &json!({"name": "Arms", "prompt_template": "{prompt}, loli"}),
    )
    .await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("prompt_template")), "{body}");
    let (status, _) = put(
        &server.base,
        "/api/admin/content-policy",
        &admin,
        &json!({"categories": [{"name": "weapons", "terms": ["musket*"]}]}),
    )
    .await?;
    assert_eq!(status, 200);
    let req = json!({"prompt": "a man", "persona_id": id, "width": 64, "height": 64});
    let (status, body) = server.post("/api/generate/single", Some(&ann), &req).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (body["error"]["field"].as_str(), body["error"]["details"]["term"].as_str()),
        (Some("persona.prompt_template"), Some("musket*"))
    );
    let (status, body) = server.post(&format!("/api/personas/{id}/preview"), Some(&ann), &json!({})).await?;
    assert_eq!((status, body["error"]["field"].as_str()), (422, Some("persona.prompt_template")), "{body}");
    let (status, body) = server.post(&format!("/api/personas/{id}/duplicate"), Some(&ann), &json!({})).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("content_policy")), "{body}");
    assert_eq!(job_total(&server, &ann).await?, 0);
    server.stop().await
}

/// Spoken and shown words (speech, narration and title clips) obey the policy like prompts.
async fn spoken_and_shown_text_enforced(backend: Backend) -> anyhow::Result<()> {
    let server = TestServer::start(backend).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);
    let admin = server.admin_token().await?;
    let body = json!({"categories": [{"name": "weapons", "terms": ["grenade*"]}]});
    let (status, _) = put(&server.base, "/api/admin/content-policy", &admin, &body).await?;
    assert_eq!(status, 200);

    let speech = json!({"text": "pull the pin of the grenade", "voice": "en"});
    let (status, body) = server.post("/api/generate/speech", Some(&ann), &speech).await?;
    let e = &body["error"];
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (422, Some("content_policy"), Some("text")),
        "{body}"
    );
    assert_eq!(e["details"]["category"].as_str(), Some("weapons"), "{body}");

    let timeline = |text: &str| {
        json!({"name": "t", "width": 64, "height": 64, "fps": 5, "tracks": [
            {"kind": "title", "clips": [{"start": 0.0, "duration": 1.0, "text": "Chapter one"}]},
            {"kind": "narration", "clips": [{"start": 0.0, "duration": 1.0, "text": text}]}
        ]})
    };
    let (status, body) = server.post("/api/video/timelines", Some(&ann), &timeline("Grenades, said the man")).await?;
    let e = &body["error"];
    assert_eq!(
        (status, e["code"].as_str(), e["field"].as_str()),
        (422, Some("content_policy"), Some("tracks[1].clips[0].text")),
        "{body}"
    );
    let (status, body) = server.post("/api/video/timelines", Some(&ann), &timeline("A quiet morning")).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(job_total(&server, &ann).await?, 0, "nothing queued");
    let uid = seidra_store::accounts::get_user_by_username(&server.state.db, "ann").await?.id;
    let audit = seidra_store::audit::list(&server.state.db, Some(uid), 10, 0).await?;
    let contexts: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "content_policy.refused")
        .filter_map(|a| a.details.0["context"].as_str().map(str::to_owned))
        .collect();
    assert!(contexts.contains(&"speech".to_owned()) && contexts.contains(&"timeline".to_owned()), "{contexts:?}");
    server.stop().await
}

dual_test!(settings_merge_patch, policy_admin_only, submit_enforced, personas_enforced, spoken_and_shown_text_enforced);

/// A second API replica on the same PostgreSQL database applies the admin's change within the
/// documented refresh delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_replica_picks_up_policy() -> anyhow::Result<()> {
    let server = TestServer::start(Backend::Postgres).await?;
    let ann = s(&server.register("ann", PASSWORD).await?["access_token"]);
    let admin = server.admin_token().await?;

    let db2 = Db::connect(&server.test_db.url, &DbOptions::default()).await?;
    let state2 = seidra_api::startup::build_state((*server.state.settings).clone(), db2).await?;
    let (listener, addr) = seidra_testkit::bind_loopback().await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(seidra_api::serve(
        listener,
        seidra_api::router(state2),
        async {
            let _ = stop_rx.await;
        },
        Duration::from_secs(2),
    ));
    let base2 = format!("http://{addr}");
    let client = reqwest::Client::new();
    let submit = |prompt: &'static str| {
        let client = client.clone();
        let url = format!("{base2}/api/generate/single");
        let ann = ann.clone();
        async move {
            let resp = client
                .post(url)
                .bearer_auth(ann)
                .json(&json!({"prompt": prompt, "width": 64, "height": 64, "num_inference_steps": 1}))
                .send()
                .await?;
            let status = resp.status().as_u16();
            anyhow::Ok((status, resp.json::<Value>().await?))
        }
    };
    // Replica 2 loads (and caches) the default policy.
    let (status, body) = submit("a red balloon").await?;
    assert_eq!(status, 202, "{body}");

    // The admin changes the policy through replica 1.
    let (status, _) = put(
        &server.base,
        "/api/admin/content-policy",
        &admin,
        &json!({"categories": [{"name": "toys", "terms": ["balloon*"]}]}),
    )
    .await?;
    assert_eq!(status, 200);
    let changed = Instant::now();
    // Generous margin: a slow machine must not turn request latency into a false failure.
    let limit = seidra_api::policy::POLICY_REFRESH + Duration::from_secs(3);
    loop {
        let (status, body) = submit("a red balloon").await?;
        if status == 422 {
            assert_eq!(body["error"]["details"]["category"], "toys");
            assert_eq!(body["error"]["details"]["policy_version"], 1);
            break;
        }
        assert_eq!(status, 202, "{body}");
        assert!(changed.elapsed() < limit, "replica 2 still used the old policy after {:?}", changed.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(());
    task.await??;
    server.stop().await
}
