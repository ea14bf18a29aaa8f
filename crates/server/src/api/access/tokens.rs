//! `/api/v1/tokens` and `/api/v1/signing-key`: scoped tokens, and the key
//! that signs bearer tokens.

use super::*;

#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    params(
        ("page" = Option<u64>, Query, description = "Page number, from 1", minimum = 1),
        ("page_size" = Option<u64>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100)),
    responses(
        (status = 200, description = "Tokens, oldest first (no secrets)", body = TokenList),
        (status = 400, description = "Invalid pagination", body = ErrorBody)))]
pub(super) async fn list_tokens(state: &AppState, q: &Query) -> Result<Response<Body>> {
    let page = q.page()?;
    let all = state.registry.tokens().await?;
    let total_count = all.len() as u64;
    let tokens = paginate(all, page).into_iter().map(token_dto).collect();
    Ok(json_response(
        StatusCode::OK,
        &TokenList {
            tokens,
            total_count,
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = CreateToken,
    responses(
        (status = 201, description = "Created; the secret is shown only in this answer", body = CreatedToken),
        (status = 400, description = "Invalid name, scope or expiry", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn create_token(
    state: &AppState,
    caller: &Caller,
    c: CreateToken,
) -> Result<Response<Body>> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let expires_at = match (&c.expires_at, c.expires_in_seconds) {
        (Some(_), Some(_)) => {
            return Err(MgmtError::invalid(
                "expires_at",
                "give expires_at or expires_in_seconds, not both",
            ))
        }
        (Some(t), None) => {
            let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| MgmtError::invalid("expires_at", format!("not RFC 3339: {e}")))?;
            Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        (None, Some(0)) => {
            return Err(MgmtError::invalid(
                "expires_in_seconds",
                "must be at least 1",
            ))
        }
        (None, Some(s)) => Some(now_ms.saturating_add((s.min(1 << 40) as i64) * 1000)),
        (None, None) => None,
    };
    let scopes = c
        .scopes
        .into_iter()
        .map(|s| {
            let mut actions: Vec<Action> = s.actions.into_iter().map(Into::into).collect();
            actions.sort();
            actions.dedup();
            TokenScope {
                repository: s.repository,
                actions,
            }
        })
        .collect();
    let (t, secret) = state
        .registry
        .token_create(&c.name, scopes, expires_at, &caller.principal.actor())
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &CreatedToken {
            token: token_dto(t),
            secret,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The token (no secret)", body = Token),
        (status = 404, description = "No such token", body = ErrorBody)))]
pub(super) async fn get_token(state: &AppState, id: &str) -> Result<Response<Body>> {
    Ok(json_response(
        StatusCode::OK,
        &token_dto(state.registry.token(id).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "access",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked: the secret stops working at once"),
        (status = 404, description = "No such token", body = ErrorBody)))]
pub(super) async fn delete_token(state: &AppState, id: &str) -> Result<Response<Body>> {
    state.registry.token_delete(id).await?;
    Ok(no_content())
}

pub(super) fn key_dto(k: berth_store::SigningKeys) -> SigningKeyInfo {
    SigningKeyInfo {
        kid: k.current.kid,
        created_at: rfc3339(k.current.created_at),
        previous_kid: k.previous.map(|p| p.kid),
    }
}

#[utoipa::path(get, path = "/api/v1/signing-key", tag = "access",
    responses((status = 200, description = "The current key's id (never the key)", body = SigningKeyInfo)))]
pub(super) async fn get_signing_key(state: &AppState) -> Result<Response<Body>> {
    let k = state.auth.keys(&state.registry).await?;
    Ok(json_response(StatusCode::OK, &key_dto(k)))
}

#[utoipa::path(post, path = "/api/v1/signing-key", tag = "access",
    responses((status = 200, description = "Rotated: new tokens are signed with a new key; tokens signed with the previous one stop working at once (clients get 401 and fetch new ones)", body = SigningKeyInfo)))]
pub(super) async fn rotate_signing_key(state: &AppState) -> Result<Response<Body>> {
    let k = state.auth.rotate(&state.registry).await?;
    Ok(json_response(StatusCode::OK, &key_dto(k)))
}
