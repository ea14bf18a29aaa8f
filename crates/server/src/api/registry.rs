//! `/api/v1/registry`: the registry's settings.

use super::*;

#[utoipa::path(get, path = "/api/v1/registry", tag = "registry",
    description = "Registry administrators only (the settings include the allow-list).",
    responses((status = 200, description = "Current settings", body = RegistrySettings)))]
#[allow(dead_code)]
pub(super) fn get_registry_doc() {}

#[utoipa::path(patch, path = "/api/v1/registry", tag = "registry", request_body = PatchRegistry,
    description = "Registry administrators only. `api_subnet_allow_list`: CIDRs allowed to reach the registry (every plane but /healthz); empty = everyone. A bare address means /32 or /128; host bits are cleared. WARNING: a list containing 0.0.0.0/0 DENIES ALL TRAFFIC, IPv4 and IPv6. `::/0` admits every IPv6 client and no IPv4 one; `::ffff:a.b.c.d/N` is the IPv4 network a.b.c.d/(N-96). A list that would shut out the caller's own address answers 409 unless the body has \"confirm_lockout\": true. Locked out: stop the server and run `berth auth clear-allow-list --data-dir <dir>`.",
    responses(
        (status = 200, description = "Updated settings", body = RegistrySettings),
        (status = 409, description = "The new allow-list would shut out the caller's own address; resend with confirm_lockout", body = ErrorBody),
        (status = 400, description = "Invalid value; the field is named", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody)))]
pub(super) async fn patch_registry(
    state: &AppState,
    caller: &Caller,
    p: PatchRegistry,
) -> Result<Response<Body>> {
    let reg = &state.registry;
    let mut s = reg.settings().await?;
    if let Some(n) = p.name {
        s.name = n;
    }
    if let Some(r) = p.region {
        s.region = r;
    }
    if let Some(g) = p.garbage_collection_schedule {
        s.garbage_collection_schedule = g.map(|g| berth_store::GcSchedule {
            days: g.days,
            time: g.time,
        });
    }
    if let Some(a) = p.api_subnet_allow_list {
        let a: Vec<String> = a
            .iter()
            .map(|c| crate::auth::normalize_cidr(c).unwrap_or_else(|| c.clone()))
            .collect();
        // Refuse to lock the caller out by mistake: recovering needs the
        // server stopped and `berth auth clear-allow-list` on its data.
        if !p.confirm_lockout
            && a.iter().all(|c| crate::auth::parse_cidr(c).is_some())
            && !crate::auth::list_admits(&a, caller.addr)
        {
            return Err(MgmtError::lockout(
                format!(
                    "this allow-list would shut out your own address {} (0.0.0.0/0 denies everyone; ::/0 admits IPv6 clients only); add your address, or send \"confirm_lockout\": true to apply it anyway (recovery: stop the server and run `berth auth clear-allow-list --data-dir <dir>`)",
                    caller.addr
                ),
            ));
        }
        s.api_subnet_allow_list = a;
    }
    if let Some(f) = p.features {
        s.features.vulnerability_scanning.enabled = f.vulnerability_scanning.enabled;
    }
    validate::settings(&s)?;
    reg.settings_put(&s).await?;
    Ok(json_response(
        StatusCode::OK,
        &settings_dto(reg.settings().await?),
    ))
}
