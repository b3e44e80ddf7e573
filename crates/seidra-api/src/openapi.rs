//! The OpenAPI document (served at `/api/openapi.json`, printed by `seidra openapi`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, api_keys, auth, exports, health, jobs, media, models, notifications, personas, settings, speech,
    talking_head, uploads, video, webhooks,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "SEIDRA Ultimate API", description = "Self-hosted AI media studio"),
    paths(
        auth::config, auth::register, auth::login, auth::refresh, auth::logout, auth::me, auth::change_password,
        api_keys::list, api_keys::create, api_keys::revoke,
        admin::list_users, admin::create, admin::update, admin::audit_log,
        health::healthz, health::readyz, health::system_health, health::generation_health,
        jobs::generate_single, jobs::generate_batch, jobs::list, jobs::stats, jobs::get, jobs::cancel, jobs::retry,
        media::list, media::get, media::update, media::delete, media::stats, media::bulk,
        uploads::upload, exports::create_export, exports::get_export,
        personas::list, personas::create, personas::get, personas::update, personas::favorite, personas::delete,
        personas::duplicate, personas::versions, personas::preview,
        notifications::list, notifications::mark_read, notifications::mark_all_read, notifications::delete,
        notifications::broadcast,
        webhooks::list, webhooks::create, webhooks::get, webhooks::update, webhooks::delete, webhooks::test,
        webhooks::deliveries,
        settings::get, settings::patch, settings::get_policy, settings::put_policy,
        models::list, models::get, models::register, models::rescan, models::delete, models::download,
        speech::generate_speech, talking_head::generate_video,
        video::list, video::create, video::get, video::update, video::delete, video::render, video::proxy,
        video::waveform,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-in, tokens and the current account"),
        (name = "api-keys", description = "Scoped API keys for scripts"),
        (name = "admin", description = "User management and audit log (admins)"),
        (name = "jobs", description = "Generation jobs: submit, follow, cancel, retry"),
        (name = "personas", description = "Reusable creative identities, versioned"),
        (name = "settings", description = "Per-user preferences (JSON merge patch) within the content policy"),
        (name = "media", description = "The media library: search, tags, favourites, bulk actions"),
        (name = "system", description = "Health and readiness"),
        (name = "notifications", description = "Per-user notifications (also pushed on the WebSocket) and admin broadcasts"),
        (name = "webhooks", description = "Signed webhook deliveries with retries and a delivery log"),
        (name = "models", description = "The model catalogue: base models, LoRAs and VAEs; admins rescan, register, remove and download"),
        (name = "video", description = "The video studio: timelines, renders and proxies on ffmpeg"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A JWT access token from /api/auth/login (a signed-in session)"))
                    .build(),
            ),
        );
        // The same header carries API keys; an operation lists the scope a key needs under this
        // scheme, and omits the scheme when only a signed-in session may call it.
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key `sk_<id>_<secret>` sent as a bearer token; the operation's requirement names \
                         the scope the key needs (`read`, `generate` or `admin`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The spec with the running version filled in and operation ids made unique
/// (`<tag>_<handler>`, e.g. `jobs_list`), as client generators require.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = seidra_core::VERSION.to_owned();
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let tag = op.tags.as_ref().and_then(|t| t.first()).cloned().unwrap_or_default().replace('-', "_");
            if let Some(id) = &op.operation_id
                && !tag.is_empty()
                && !id.starts_with(&format!("{tag}_"))
            {
                op.operation_id = Some(format!("{tag}_{id}"));
            }
        }
    }
    doc
}
