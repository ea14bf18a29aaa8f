//! Webhooks of a namespace (`/api/v1/namespaces/{namespace}/webhooks`) and
//! registry-wide ones (`/api/v1/webhooks`): definitions, test deliveries,
//! secret rotation, and each webhook's delivery log with redelivery.
//! Secrets are shown only in the answers that create them.

use berth_store::{Delivery, DeliveryState, NewWebhook, PayloadFormat, Webhook, WebhookChange};
use serde::Deserialize;
use utoipa::ToSchema;

use super::*;

/// A webhook to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookCreate {
    /// Receiver URL, http or https.
    #[schema(example = "https://ci.example.com/hooks/berth")]
    pub url: String,
    /// Event types: `artifact.pushed`, `tag.updated`, `artifact.deleted`,
    /// `tag.deleted`, `repository.deleted`, `namespace.deleted`,
    /// `artifact.pulled`.
    #[schema(example = json!(["artifact.pushed"]))]
    pub events: Vec<String>,
    /// Glob (`*`) over full repository names (`acme/web`); all if absent.
    #[serde(default)]
    pub repositories: Option<String>,
    /// Regular expression over whole tags; all if absent.
    #[serde(default)]
    pub tags: Option<String>,
    /// `cloudevents` (default) or `distribution`.
    #[serde(default)]
    pub format: Option<String>,
}

/// Changes to a webhook; absent fields stay. An empty `repositories` or
/// `tags` removes that filter.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// Receiver URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Event types.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Repository glob.
    #[serde(default)]
    pub repositories: Option<String>,
    /// Tag regular expression.
    #[serde(default)]
    pub tags: Option<String>,
    /// `cloudevents` or `distribution`.
    #[serde(default)]
    pub format: Option<String>,
    /// Paused webhooks get no new deliveries.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDto {
    /// Id.
    pub id: String,
    /// Its namespace; absent for a registry-wide webhook.
    pub namespace: Option<String>,
    /// Receiver URL.
    pub url: String,
    /// Event types.
    pub events: Vec<String>,
    /// Repository glob.
    pub repositories: Option<String>,
    /// Tag regular expression.
    pub tags: Option<String>,
    /// `cloudevents` or `distribution`.
    pub format: String,
    /// Whether it gets deliveries.
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Who created it.
    pub created_by: String,
    /// The signing secret: only in the answer to a creation or rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// Webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<WebhookDto>,
}

/// One event for one webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    /// The delivery's id within its webhook (the event's sequence number).
    pub id: u64,
    /// The event's id (`X-Berth-Event-Id`), the same in every attempt.
    pub event_id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened, RFC 3339.
    pub time: String,
    /// Repository, if any.
    pub repository: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Duration of the last attempt.
    pub latency_ms: Option<u64>,
    /// Next attempt, RFC 3339 (pending only).
    pub next_retry: Option<String>,
    /// When it was delivered or given up on.
    pub finished_at: Option<String>,
}

/// A page of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// In event order.
    pub deliveries: Vec<DeliveryDto>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<u64>,
}

fn format_name(f: PayloadFormat) -> &'static str {
    match f {
        PayloadFormat::CloudEvents => "cloudevents",
        PayloadFormat::Distribution => "distribution",
    }
}

fn webhook_dto(w: Webhook, with_secret: bool) -> WebhookDto {
    WebhookDto {
        id: w.id,
        namespace: w.namespace,
        url: w.url,
        events: w.events.iter().map(|e| e.as_str().to_string()).collect(),
        repositories: w.repositories,
        tags: w.tags,
        format: format_name(w.format).into(),
        enabled: w.enabled,
        created_at: rfc3339(w.created_at),
        updated_at: rfc3339(w.updated_at),
        created_by: w.created_by,
        secret: with_secret.then_some(w.secret),
    }
}

fn delivery_dto(d: Delivery) -> DeliveryDto {
    DeliveryDto {
        id: d.seq,
        event_id: d.event.id,
        kind: d.event.kind.as_str().into(),
        time: rfc3339(d.event.at),
        repository: d.event.repository,
        state: match d.state {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
        .into(),
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        latency_ms: d.latency_ms,
        next_retry: d.next_attempt.map(rfc3339),
        finished_at: d.finished_at.map(rfc3339),
    }
}

fn filter(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/webhooks", tag = "webhooks",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    responses(
        (status = 200, description = "The namespace's webhooks, without secrets", body = WebhookList),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn list_webhooks(state: &AppState, scope: Option<&str>) -> Result<Response<Body>> {
    if let Some(ns) = scope {
        state.registry.namespace(ns).await?;
    }
    let webhooks = state
        .registry
        .webhooks(scope)
        .await?
        .into_iter()
        .map(|w| webhook_dto(w, false))
        .collect();
    Ok(json_response(StatusCode::OK, &WebhookList { webhooks }))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/webhooks", tag = "webhooks",
    params(("namespace" = String, Path, description = "Namespace name", example = "acme")),
    request_body = WebhookCreate,
    responses(
        (status = 201, description = "Created; the answer holds the secret, shown only now", body = WebhookDto),
        (status = 400, description = "Invalid definition; the field is named", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody)))]
pub(super) async fn create_webhook(
    state: &AppState,
    caller: &Caller,
    scope: Option<&str>,
    body: WebhookCreate,
) -> Result<Response<Body>> {
    validate::webhook_url(&body.url, state.config.webhooks.allow_private_targets)?;
    let events = validate::webhook_events(&body.events)?;
    let (repositories, tags) = (filter(body.repositories), filter(body.tags));
    validate::webhook_filters(repositories.as_deref(), tags.as_deref())?;
    let format = match &body.format {
        Some(f) => validate::webhook_format(f)?,
        None => PayloadFormat::CloudEvents,
    };
    let w = state
        .registry
        .webhook_create(NewWebhook {
            namespace: scope.map(str::to_string),
            url: body.url,
            events,
            repositories,
            tags,
            format,
            created_by: caller.principal.actor(),
        })
        .await?;
    Ok(json_response(StatusCode::CREATED, &webhook_dto(w, true)))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/webhooks/{id}", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook, without its secret", body = WebhookDto),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn get_webhook(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
) -> Result<Response<Body>> {
    let w = state.registry.webhook(scope, id).await?;
    Ok(json_response(StatusCode::OK, &webhook_dto(w, false)))
}

#[utoipa::path(patch, path = "/api/v1/namespaces/{namespace}/webhooks/{id}", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "Changed", body = WebhookDto),
        (status = 400, description = "Invalid change; the field is named", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn update_webhook(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
    body: WebhookPatch,
) -> Result<Response<Body>> {
    if let Some(u) = &body.url {
        validate::webhook_url(u, state.config.webhooks.allow_private_targets)?;
    }
    let events = body
        .events
        .as_deref()
        .map(validate::webhook_events)
        .transpose()?;
    validate::webhook_filters(body.repositories.as_deref(), body.tags.as_deref())?;
    let format = body
        .format
        .as_deref()
        .map(validate::webhook_format)
        .transpose()?;
    let change = WebhookChange {
        url: body.url,
        events,
        repositories: body.repositories.map(|r| filter(Some(r))),
        tags: body.tags.map(|t| filter(Some(t))),
        format,
        enabled: body.enabled,
    };
    let w = state.registry.webhook_update(scope, id, change).await?;
    Ok(json_response(StatusCode::OK, &webhook_dto(w, false)))
}

#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/webhooks/{id}", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted with its delivery log and pending deliveries"),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn delete_webhook(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
) -> Result<Response<Body>> {
    state.registry.webhook_delete(scope, id).await?;
    Ok(no_content())
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/webhooks/{id}/test", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "A `webhook.test` event is queued for this webhook only; its outcome shows in the delivery log", body = DeliveryDto),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn test_webhook(
    state: &AppState,
    caller: &Caller,
    scope: Option<&str>,
    id: &str,
) -> Result<Response<Body>> {
    let w = state.registry.webhook(scope, id).await?;
    let d = state
        .registry
        .webhook_test(&w, &caller.event_context())
        .await?;
    Ok(json_response(StatusCode::ACCEPTED, &delivery_dto(d)))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/webhooks/{id}/secret", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "A new secret, shown only now; deliveries from now on are signed with it", body = WebhookDto),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn rotate_webhook_secret(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
) -> Result<Response<Body>> {
    let w = state.registry.webhook_rotate_secret(scope, id).await?;
    Ok(json_response(StatusCode::OK, &webhook_dto(w, true)))
}

/// Largest page of the delivery log.
const MAX_DELIVERY_PAGE: usize = 100;

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id"),
        ("after" = Option<u64>, Query, description = "Deliveries after this id (the previous page's `next`)"),
        ("limit" = Option<u64>, Query, description = "1 to 100 (default 100)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "The delivery log, in event order", body = DeliveryList),
        (status = 400, description = "Invalid after or limit", body = ErrorBody),
        (status = 404, description = "No such webhook", body = ErrorBody)))]
pub(super) async fn list_deliveries(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
    q: &Query,
) -> Result<Response<Body>> {
    let w = state.registry.webhook(scope, id).await?;
    let num = |k: &str| -> Result<Option<u64>> {
        q.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| MgmtError::invalid(k, format!("{k} must be a number, got {v:?}")))
            })
            .transpose()
    };
    let after = num("after")?;
    let limit = num("limit")?.unwrap_or(MAX_DELIVERY_PAGE as u64);
    if limit == 0 || limit > MAX_DELIVERY_PAGE as u64 {
        return Err(MgmtError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_DELIVERY_PAGE}"),
        ));
    }
    let mut rows = state
        .registry
        .deliveries(&w.id, after, limit as usize + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = more.then(|| rows.last().map(|d| d.seq)).flatten();
    Ok(json_response(
        StatusCode::OK,
        &DeliveryList {
            deliveries: rows.into_iter().map(delivery_dto).collect(),
            next,
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/namespaces/{namespace}/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks", operation_id = "redeliver_webhook",
    params(
        ("namespace" = String, Path, description = "Namespace name", example = "acme"),
        ("id" = String, Path, description = "Webhook id"),
        ("delivery" = u64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again with the same event id", body = DeliveryDto),
        (status = 400, description = "Invalid delivery id", body = ErrorBody),
        (status = 404, description = "No such webhook or delivery", body = ErrorBody)))]
pub(super) async fn redeliver(
    state: &AppState,
    scope: Option<&str>,
    id: &str,
    delivery: &str,
) -> Result<Response<Body>> {
    let seq: u64 = delivery
        .parse()
        .map_err(|_| MgmtError::invalid("delivery", "a delivery id is a number"))?;
    let w = state.registry.webhook(scope, id).await?;
    let d = state.registry.delivery_redeliver(&w.id, seq).await?;
    Ok(json_response(StatusCode::ACCEPTED, &delivery_dto(d)))
}

/// The same operations at `/api/v1/webhooks` for registry-wide webhooks
/// (registry administrators only), in the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    global::list,
    global::create,
    global::get,
    global::update,
    global::delete,
    global::test,
    global::rotate,
    global::deliveries,
    global::redeliver
))]
pub struct RegistryWebhooksDoc;

/// Path documentation of the registry-wide routes: the handlers are the
/// namespace ones with no namespace.
#[allow(dead_code)]
mod global {
    use super::*;

    #[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "list_registry_webhooks",
        responses((status = 200, description = "Registry-wide webhooks, without secrets", body = WebhookList)))]
    pub(super) fn list() {}

    #[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", operation_id = "create_registry_webhook", request_body = WebhookCreate,
        responses(
            (status = 201, description = "Created; the answer holds the secret, shown only now", body = WebhookDto),
            (status = 400, description = "Invalid definition; the field is named", body = ErrorBody)))]
    pub(super) fn create() {}

    #[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "get_registry_webhook",
        params(("id" = String, Path, description = "Webhook id")),
        responses(
            (status = 200, description = "The webhook, without its secret", body = WebhookDto),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn get() {}

    #[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "update_registry_webhook",
        params(("id" = String, Path, description = "Webhook id")), request_body = WebhookPatch,
        responses(
            (status = 200, description = "Changed", body = WebhookDto),
            (status = 400, description = "Invalid change; the field is named", body = ErrorBody),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn update() {}

    #[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", operation_id = "delete_registry_webhook",
        params(("id" = String, Path, description = "Webhook id")),
        responses(
            (status = 204, description = "Deleted with its delivery log"),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn delete() {}

    #[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", operation_id = "test_registry_webhook",
        params(("id" = String, Path, description = "Webhook id")),
        responses(
            (status = 202, description = "A test event is queued for this webhook", body = DeliveryDto),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn test() {}

    #[utoipa::path(post, path = "/api/v1/webhooks/{id}/secret", tag = "webhooks", operation_id = "rotate_registry_webhook_secret",
        params(("id" = String, Path, description = "Webhook id")),
        responses(
            (status = 200, description = "A new secret, shown only now", body = WebhookDto),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn rotate() {}

    #[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", operation_id = "list_registry_webhook_deliveries",
        params(
            ("id" = String, Path, description = "Webhook id"),
            ("after" = Option<u64>, Query, description = "Deliveries after this id"),
            ("limit" = Option<u64>, Query, description = "1 to 100 (default 100)")),
        responses(
            (status = 200, description = "The delivery log, in event order", body = DeliveryList),
            (status = 400, description = "Invalid after or limit", body = ErrorBody),
            (status = 404, description = "No such webhook", body = ErrorBody)))]
    pub(super) fn deliveries() {}

    #[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks", operation_id = "redeliver_registry_webhook",
        params(
            ("id" = String, Path, description = "Webhook id"),
            ("delivery" = u64, Path, description = "Delivery id")),
        responses(
            (status = 202, description = "Queued again with the same event id", body = DeliveryDto),
            (status = 400, description = "Invalid delivery id", body = ErrorBody),
            (status = 404, description = "No such webhook or delivery", body = ErrorBody)))]
    pub(super) fn redeliver() {}
}
