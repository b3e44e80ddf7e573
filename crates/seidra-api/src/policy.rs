//! Content-policy enforcement for the API: the cached instance policy, and the checks called at
//! submit (`routes::jobs::prepare`) and when a persona is saved. The decision itself is
//! `seidra_core::policy::evaluate`; this module only gathers its inputs, audits refusals and
//! records the admitting policy version on jobs.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use seidra_core::job::ImageRequest;
use seidra_core::persona::PersonaSpec;
use seidra_core::policy::{CompiledPolicy, Field, PolicyDocument, Subject, UserPrefs, Violation, evaluate};
use seidra_store::audit::{self, NewAuditEntry};
use seidra_store::{Db, StoreError, StoreResult, content_policy, personas, user_settings};
use serde_json::json;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How often a replica re-reads the policy version: an admin's change reaches every replica
/// within this delay (the replica that saved it applies it at once).
pub const POLICY_REFRESH: Duration = Duration::from_secs(2);

/// The instance policy, compiled, shared by the handlers of one process.
#[derive(Clone)]
pub struct PolicyCache {
    inner: Arc<Inner>,
}

struct Inner {
    current: RwLock<Option<Arc<CompiledPolicy>>>,
    checked: Mutex<Option<Instant>>,
    refresh: Duration,
}

impl std::fmt::Debug for PolicyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyCache").field("refresh", &self.inner.refresh).finish_non_exhaustive()
    }
}

impl PolicyCache {
    /// An empty cache that re-checks the stored version at most every `refresh`.
    pub fn new(refresh: Duration) -> Self {
        PolicyCache { inner: Arc::new(Inner { current: RwLock::new(None), checked: Mutex::new(None), refresh }) }
    }

    fn cached(&self) -> Option<Arc<CompiledPolicy>> {
        self.inner.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the cached policy (after this process saved a new one).
    pub fn set(&self, policy: CompiledPolicy) {
        *self.inner.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(policy));
        *self.inner.checked.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// The current policy: from memory, re-reading the stored version when the last check is
    /// older than the refresh delay and reloading the document only when the version changed.
    pub async fn get(&self, db: &Db) -> StoreResult<Arc<CompiledPolicy>> {
        let cached = self.cached();
        let due = {
            let mut checked = self.inner.checked.lock().unwrap_or_else(PoisonError::into_inner);
            let due = cached.is_none() || checked.is_none_or(|t| t.elapsed() >= self.inner.refresh);
            if due {
                *checked = Some(Instant::now());
            }
            due
        };
        if let Some(policy) = &cached
            && !due
        {
            return Ok(policy.clone());
        }
        let stored = content_policy::version(db).await;
        let stored = match stored {
            Ok(v) => v,
            Err(e) => {
                // Check again on the next call rather than trusting a stale copy for a full period.
                *self.inner.checked.lock().unwrap_or_else(PoisonError::into_inner) = None;
                return Err(e);
            }
        };
        if let Some(policy) = cached
            && policy.version == stored
        {
            return Ok(policy);
        }
        let (version, doc) = content_policy::load(db).await?;
        let compiled = Arc::new(CompiledPolicy::compile(version, &doc));
        *self.inner.current.write().unwrap_or_else(PoisonError::into_inner) = Some(compiled.clone());
        Ok(compiled)
    }
}

/// Saves a new instance policy and applies it in this process at once.
pub async fn save(state: &AppState, doc: &PolicyDocument, by: Uuid) -> StoreResult<i64> {
    let version = content_policy::save(&state.db, doc, Some(by)).await?;
    state.policy.set(CompiledPolicy::compile(version, doc));
    Ok(version)
}

async fn user_prefs(db: &Db, user_id: Uuid) -> StoreResult<UserPrefs> {
    let s = user_settings::get(db, user_id).await?;
    Ok(UserPrefs { nsfw: s.content.nsfw && s.content.age_confirmed, blocked_terms: s.content.blocked_terms })
}

/// Evaluates, and on refusal writes the audit record and builds the 422.
async fn decide(
    state: &AppState,
    user_id: Uuid,
    subject: &Subject<'_>,
    context: &str,
) -> ApiResult<Arc<CompiledPolicy>> {
    let policy = state.policy.get(&state.db).await?;
    let prefs = user_prefs(&state.db, user_id).await?;
    match evaluate(&policy, &prefs, subject) {
        Ok(()) => Ok(policy),
        Err(v) => Err(refuse(state, user_id, &policy, &v, context).await),
    }
}

async fn refuse(state: &AppState, user_id: Uuid, policy: &CompiledPolicy, v: &Violation, context: &str) -> ApiError {
    metrics::counter!("seidra_content_policy_refusals_total", "context" => context.to_owned()).increment(1);
    let details = json!({
        "rule": v.rule,
        "category": v.category,
        "term": v.term,
        "field": v.field,
        "policy_version": policy.version,
    });
    let mut audit_details = details.clone();
    audit_details["context"] = json!(context);
    let entry = NewAuditEntry {
        actor_id: Some(user_id),
        action: "content_policy.refused",
        target: Some(v.field.clone()),
        success: false,
        ip: None,
        details: audit_details,
    };
    if let Err(err) = audit::record(&state.db, &entry).await {
        tracing::warn!(%err, "could not audit a content-policy refusal");
    }
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "content_policy", v.message())
        .with_field(v.field.clone())
        .with_details(details)
}

/// The check at submit, after validation and the persona merge: the merged prompt and negative
/// prompt, and the persona's own template, negatives and NSFW flag (reported as `persona.…`).
pub async fn enforce_request(state: &AppState, owner_id: Uuid, request: &ImageRequest, prefix: &str) -> ApiResult<()> {
    let persona = match request.persona_id {
        Some(id) => match personas::get_owned(&state.db, owner_id, id).await {
            Ok(p) => Some(p.spec.0),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut subject = Subject::default();
    if let Some(spec) = &persona {
        subject.fields.push(Field {
            name: format!("{prefix}persona.prompt_template"),
            text: &spec.prompt_template,
            negative: false,
        });
        subject.fields.push(Field {
            name: format!("{prefix}persona.negative_prompt"),
            text: &spec.negative_prompt,
            negative: true,
        });
        if spec.nsfw {
            subject.nsfw_flag = Some(format!("{prefix}persona.nsfw"));
        }
    }
    subject.fields.push(Field { name: format!("{prefix}prompt"), text: &request.prompt, negative: false });
    subject.fields.push(Field {
        name: format!("{prefix}negative_prompt"),
        text: &request.negative_prompt,
        negative: true,
    });
    decide(state, owner_id, &subject, "generate").await.map(|_| ())
}

/// The check when a persona is saved (create, edit, duplicate).
pub async fn enforce_persona(state: &AppState, owner_id: Uuid, spec: &PersonaSpec) -> ApiResult<()> {
    let subject = Subject {
        fields: vec![
            Field { name: "prompt_template".to_owned(), text: &spec.prompt_template, negative: false },
            Field { name: "negative_prompt".to_owned(), text: &spec.negative_prompt, negative: true },
        ],
        nsfw_flag: spec.nsfw.then(|| "nsfw".to_owned()),
    };
    decide(state, owner_id, &subject, "persona").await.map(|_| ())
}

/// The check for texts that are spoken or shown (speech, narration and title clips): each
/// `(field, text)` is matched like a prompt; `action` names the refusal in the audit log.
pub async fn enforce_texts(state: &AppState, owner_id: Uuid, texts: &[(String, &str)], action: &str) -> ApiResult<()> {
    let subject = Subject {
        fields: texts.iter().map(|(name, text)| Field { name: name.clone(), text, negative: false }).collect(),
        nsfw_flag: None,
    };
    decide(state, owner_id, &subject, action).await.map(|_| ())
}

/// The decision recorded on a generation job admitted now (`{"version", "outcome"}`), from the
/// cached policy; written with the job itself.
pub fn admitted_decision(state: &AppState) -> Option<serde_json::Value> {
    let policy = state.policy.cached()?;
    Some(json!({ "version": policy.version, "outcome": "allowed" }))
}
