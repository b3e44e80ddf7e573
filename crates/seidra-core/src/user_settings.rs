//! Per-user settings: a typed document with defaults, changed by JSON merge patches (RFC 7386).
//!
//! Only the user's overrides are stored; the effective document is the defaults with the
//! overrides merged in, so a new setting gets its default for everyone, and `null` in a patch
//! deletes an override (back to the default). Every patch is checked against the schema (the
//! defaults' shape): unknown keys and wrong types are refused with their JSON path.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::ValidationError;
use crate::policy::{MAX_TERM_CHARS, validate_terms};

/// Notification categories, as used by [`notification_enabled`] and the settings document.
pub const NOTIFICATION_CATEGORIES: &[&str] = &["job", "export", "quota", "security", "system"];
/// Notification channels.
pub const NOTIFICATION_CHANNELS: &[&str] = &["in_app", "websocket", "webhook"];
/// Most user-blocked terms.
pub const MAX_USER_TERMS: usize = 200;

/// Where one category of notifications is delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// Stored in the notification centre.
    pub in_app: bool,
    /// Pushed live on the WebSocket.
    pub websocket: bool,
    /// Sent to the user's webhooks.
    pub webhook: bool,
}

impl Channels {
    const fn all(on: bool) -> Channels {
        Channels { in_app: on, websocket: on, webhook: on }
    }
}

/// Notification preferences per category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationPrefs {
    /// Job succeeded / failed.
    pub job: Channels,
    /// Export ready.
    pub export: Channels,
    /// Quota reached.
    pub quota: Channels,
    /// Security events (password changed, API keys, new sign-in).
    pub security: Channels,
    /// Announcements from the admins.
    pub system: Channels,
}

/// Content preferences, within the instance's content policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContentPrefs {
    /// Allow NSFW content (needs `age_confirmed`, and the instance must allow it).
    pub nsfw: bool,
    /// The user confirmed being of legal age.
    pub age_confirmed: bool,
    /// Extra words or phrases this user never wants in prompts (same matching as the policy).
    pub blocked_terms: Vec<String>,
}

/// Defaults the studio pre-fills in the generate form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerationPrefs {
    /// Width (64–2048, multiple of 8).
    pub width: u32,
    /// Height (64–2048, multiple of 8).
    pub height: u32,
    /// Steps (1–150).
    pub num_inference_steps: u32,
    /// Guidance (0–30).
    pub guidance_scale: f64,
    /// Images per job (1–8).
    pub num_images: u32,
    /// Scheduler.
    pub scheduler: String,
}

/// The effective settings of a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    /// `dark`, `light` or `system`.
    pub theme: String,
    /// `en` or `fr`.
    pub language: String,
    /// Notification preferences.
    pub notifications: NotificationPrefs,
    /// Content preferences.
    pub content: ContentPrefs,
    /// Generation defaults.
    pub generation: GenerationPrefs,
}

impl Default for UserSettings {
    fn default() -> Self {
        UserSettings {
            theme: "system".to_owned(),
            language: "en".to_owned(),
            notifications: NotificationPrefs {
                job: Channels::all(true),
                export: Channels::all(true),
                quota: Channels::all(true),
                security: Channels { in_app: true, websocket: true, webhook: false },
                system: Channels { in_app: true, websocket: true, webhook: false },
            },
            content: ContentPrefs { nsfw: false, age_confirmed: false, blocked_terms: Vec::new() },
            generation: GenerationPrefs {
                width: 1024,
                height: 1024,
                num_inference_steps: 30,
                guidance_scale: 7.5,
                num_images: 1,
                scheduler: "ddim".to_owned(),
            },
        }
    }
}

impl UserSettings {
    /// Checks values (enumerations, ranges); field names are JSON paths.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !["dark", "light", "system"].contains(&self.theme.as_str()) {
            return Err(ValidationError::new("theme", "must be `dark`, `light` or `system`"));
        }
        if !["en", "fr"].contains(&self.language.as_str()) {
            return Err(ValidationError::new("language", "must be `en` or `fr`"));
        }
        if self.content.nsfw && !self.content.age_confirmed {
            return Err(ValidationError::new("content.nsfw", "needs `content.age_confirmed` to be true"));
        }
        validate_terms("content.blocked_terms", &self.content.blocked_terms, MAX_USER_TERMS)?;
        let g = &self.generation;
        for (field, v) in [("generation.width", g.width), ("generation.height", g.height)] {
            if !(64..=2048).contains(&v) || v % 8 != 0 {
                return Err(ValidationError::new(field, "must be a multiple of 8 between 64 and 2048"));
            }
        }
        if !(1..=150).contains(&g.num_inference_steps) {
            return Err(ValidationError::new("generation.num_inference_steps", "must be between 1 and 150"));
        }
        if !g.guidance_scale.is_finite() || !(0.0..=30.0).contains(&g.guidance_scale) {
            return Err(ValidationError::new("generation.guidance_scale", "must be between 0 and 30"));
        }
        if !(1..=8).contains(&g.num_images) {
            return Err(ValidationError::new("generation.num_images", "must be between 1 and 8"));
        }
        if !["ddim", "euler", "euler_a", "dpmpp_2m"].contains(&g.scheduler.as_str()) {
            return Err(ValidationError::new(
                "generation.scheduler",
                "must be `ddim`, `euler`, `euler_a` or `dpmpp_2m`",
            ));
        }
        Ok(())
    }

    /// Whether a category of notifications goes to a channel (unknown names: false).
    pub fn notification_enabled(&self, category: &str, channel: &str) -> bool {
        let n = &self.notifications;
        let c = match category {
            "job" => &n.job,
            "export" => &n.export,
            "quota" => &n.quota,
            "security" => &n.security,
            "system" => &n.system,
            _ => return false,
        };
        match channel {
            "in_app" => c.in_app,
            "websocket" => c.websocket,
            "webhook" => c.webhook,
            _ => false,
        }
    }
}

static DEFAULTS: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| serde_json::to_value(UserSettings::default()).unwrap_or(Value::Null));

/// The defaults as JSON (the schema every patch is checked against); built once.
pub fn defaults_json() -> Value {
    DEFAULTS.clone()
}

/// Applies an RFC 7386 merge patch: objects merge recursively, `null` deletes, anything else
/// replaces. Objects left empty by deletions are removed, so stored overrides stay minimal.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
                continue;
            }
            let slot = map.entry(key.clone()).or_insert(Value::Null);
            merge_patch(slot, value);
            if slot.as_object().is_some_and(Map::is_empty) {
                map.remove(key);
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Checks that `value` has the shape of `schema` (the defaults): known keys only, the same JSON
/// types, integers where the default is one, arrays of strings. `null` is allowed anywhere in
/// a patch (it deletes the override).
pub fn check_shape(value: &Value, schema: &Value, path: &str) -> Result<(), ValidationError> {
    if value.is_null() && !path.is_empty() {
        return Ok(());
    }
    match schema {
        Value::Object(schema) => {
            let Value::Object(map) = value else {
                return Err(ValidationError::new(path, "must be an object"));
            };
            for (key, v) in map {
                let p = join(path, key);
                let Some(s) = schema.get(key) else {
                    return Err(ValidationError::new(p, "is not a known setting"));
                };
                check_shape(v, s, &p)?;
            }
            Ok(())
        }
        Value::Bool(_) if !value.is_boolean() => Err(ValidationError::new(path, "must be a boolean")),
        Value::String(_) if !value.is_string() => Err(ValidationError::new(path, "must be a string")),
        Value::Number(n) if n.is_u64() && !value.is_u64() => {
            Err(ValidationError::new(path, "must be a non-negative integer"))
        }
        Value::Number(_) if !value.is_number() => Err(ValidationError::new(path, "must be a number")),
        Value::Array(_) => {
            let Value::Array(items) = value else {
                return Err(ValidationError::new(path, "must be an array"));
            };
            for (i, item) in items.iter().enumerate() {
                if !item.is_string() {
                    return Err(ValidationError::new(format!("{path}[{i}]"), "must be a string"));
                }
                if item.as_str().is_some_and(|s| s.chars().count() > MAX_TERM_CHARS) {
                    return Err(ValidationError::new(format!("{path}[{i}]"), "is too long"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The effective settings for stored overrides (invalid stored values fall back to defaults).
pub fn effective(overrides: &Value) -> UserSettings {
    let mut doc = defaults_json();
    merge_patch(&mut doc, overrides);
    serde_json::from_value(doc).unwrap_or_default()
}

/// Applies a patch to stored overrides: checks the patch's shape, merges, and validates the
/// result. Returns the new overrides and the effective settings.
pub fn apply_patch(overrides: &Value, patch: &Value) -> Result<(Value, UserSettings), ValidationError> {
    if !patch.is_object() {
        return Err(ValidationError::new("body", "must be a JSON object (a merge patch)"));
    }
    let schema = defaults_json();
    check_shape(patch, &schema, "")?;
    let mut next = if overrides.is_object() { overrides.clone() } else { Value::Object(Map::new()) };
    merge_patch(&mut next, patch);
    let mut doc = schema;
    merge_patch(&mut doc, &next);
    let settings: UserSettings =
        serde_json::from_value(doc).map_err(|e| ValidationError::new("body", format!("invalid settings: {e}")))?;
    settings.validate()?;
    Ok((next, settings))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc7386() {
        // Examples from RFC 7386 §3 / appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn nested_change_keeps_siblings_and_null_resets() {
        let (stored, s) = apply_patch(&json!({}), &json!({"notifications": {"job": {"webhook": false}}})).expect("ok");
        assert_eq!(stored, json!({"notifications": {"job": {"webhook": false}}}));
        assert!(!s.notifications.job.webhook && s.notifications.job.in_app && s.notifications.job.websocket);
        let (stored, s) = apply_patch(&stored, &json!({"theme": "dark"})).expect("ok");
        assert!(!s.notifications.job.webhook);
        assert_eq!(s.theme, "dark");
        let (stored, s) = apply_patch(&stored, &json!({"notifications": {"job": {"webhook": null}}})).expect("ok");
        assert_eq!(stored, json!({"theme": "dark"}));
        assert!(s.notifications.job.webhook);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_path() {
        let err = |patch: Value| apply_patch(&json!({}), &patch).expect_err("refused").field;
        assert_eq!(err(json!({"notifications": {"job": {"emai": true}}})), "notifications.job.emai");
        assert_eq!(err(json!({"colour": "red"})), "colour");
        assert_eq!(err(json!({"theme": 3})), "theme");
        assert_eq!(err(json!({"theme": "blue"})), "theme");
        assert_eq!(err(json!({"notifications": {"job": "yes"}})), "notifications.job");
        assert_eq!(err(json!({"notifications": {"job": {"in_app": "yes"}}})), "notifications.job.in_app");
        assert_eq!(err(json!({"generation": {"width": 7.5}})), "generation.width");
        assert_eq!(err(json!({"generation": {"width": -8}})), "generation.width");
        assert_eq!(err(json!({"generation": {"width": 100}})), "generation.width");
        assert_eq!(err(json!({"content": {"blocked_terms": ["ok", 3]}})), "content.blocked_terms[1]");
        assert_eq!(err(json!({"content": {"blocked_terms": "x"}})), "content.blocked_terms");
        assert_eq!(err(json!({"content": {"nsfw": true}})), "content.nsfw");
        assert_eq!(err(json!({"unknown": null})), "unknown");
        assert_eq!(err(json!([1])), "body");
        assert!(apply_patch(&json!({}), &json!({"content": {"nsfw": true, "age_confirmed": true}})).is_ok());
        assert!(apply_patch(&json!({}), &json!({"generation": {"guidance_scale": 5}})).is_ok());
    }

    #[test]
    fn notification_lookup() {
        let s = effective(&json!({"notifications": {"export": {"websocket": false}}}));
        assert!(!s.notification_enabled("export", "websocket"));
        assert!(s.notification_enabled("export", "in_app"));
        assert!(!s.notification_enabled("security", "webhook"));
        assert!(!s.notification_enabled("nope", "in_app"));
        for c in NOTIFICATION_CATEGORIES {
            for ch in NOTIFICATION_CHANNELS {
                let _ = s.notification_enabled(c, ch);
            }
        }
    }
}
