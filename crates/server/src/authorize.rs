//! The one authorisation decision. Every endpoint says what it needs
//! ([`Endpoint::required_access`]); [`decide`] weighs that against the
//! caller once, from the request head, before any body byte is read and
//! before any handler runs. Handlers only filter what they list (a caller
//! sees the namespaces and repositories it may pull) and check what only a
//! body can name (the namespace a `POST /api/v1/namespaces` creates).

use berth_oci::RepoName;
use berth_store::Action;
use http::HeaderMap;

use crate::auth::{self, AuthMode, Caller, Principal};
use crate::endpoint::{Api, Endpoint, Plane, V2};
use crate::error::{ApiError, Failure, MgmtError};
use crate::AppState;

/// What an endpoint needs of its caller. Authentication off (`Open`)
/// satisfies everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Anyone,
    /// `/v2/`: any credentials (a bearer token, even an anonymous one).
    Credentials,
    /// Not anonymous (a bearer token counts as its subject); the 401
    /// message otherwise.
    SignedIn(&'static str),
    /// `/v2/_catalog`: a token for `registry:catalog:*`, or credentials.
    Catalog,
    /// `/v2`: `action` on the repository; a mount also names its source,
    /// which the challenge asks pull for.
    Repo {
        /// The repository.
        repo: RepoName,
        /// Pull, push or delete.
        action: Action,
        /// A cross-repository mount's source.
        mount_from: Option<RepoName>,
    },
    /// Registry administrators; what is refused otherwise.
    Admin(&'static str),
    /// `action` on the namespace.
    Namespace(String, Action),
    /// Seeing the namespace, then `action` on the repository (given as in
    /// the path); a repository the caller may not pull answers like a
    /// missing one.
    NamespaceRepo {
        /// The namespace.
        ns: String,
        /// The repository, relative or in full.
        repo: String,
        /// Pull or delete.
        action: Action,
    },
    /// The user themself (own credentials), or an administrator.
    SelfOrAdmin {
        /// The user the path names.
        user: String,
        /// What is refused otherwise.
        what: &'static str,
    },
}

impl Access {
    /// The kind of access, without its parameters, as the table in
    /// `docs/ARCHITECTURE.md` gives it.
    pub fn summary(&self) -> String {
        match self {
            Access::Anyone => "anyone".into(),
            Access::Credentials => "credentials".into(),
            Access::SignedIn(_) => "signed in".into(),
            Access::Catalog => "catalog".into(),
            Access::Repo { action, .. } => format!("repository {}", action.as_str()),
            Access::Admin(_) => "admin".into(),
            Access::Namespace(_, action) => format!("namespace {}", action.as_str()),
            Access::NamespaceRepo { action, .. } => {
                format!("namespace repository {}", action.as_str())
            }
            Access::SelfOrAdmin { .. } => "self or admin".into(),
        }
    }
}

impl Endpoint {
    /// What the caller needs for this operation.
    pub fn required_access(&self) -> Access {
        let repo = |r: &RepoName, action| Access::Repo {
            repo: r.clone(),
            action,
            mount_from: None,
        };
        let ns_repo = |ns: &str, r: &str, action| Access::NamespaceRepo {
            ns: ns.to_string(),
            repo: r.to_string(),
            action,
        };
        let ns = |ns: &str, action| Access::Namespace(ns.to_string(), action);
        match self {
            Endpoint::Health
            | Endpoint::Ready
            | Endpoint::Console
            | Endpoint::TokenGet
            | Endpoint::TokenPost => Access::Anyone,
            // Metrics tell about every namespace (counts, traffic): the
            // registry's administrators', unless `[metrics] public` (see
            // `decide`) or served on a listener of their own.
            Endpoint::Metrics => Access::Admin("reading metrics"),
            Endpoint::V2(v) => match v {
                V2::Base => Access::Credentials,
                V2::Catalog => Access::Catalog,
                V2::TagList(r)
                | V2::Referrers(r, _)
                | V2::ManifestGet(r, _)
                | V2::ManifestHead(r, _)
                | V2::BlobGet(r, _)
                | V2::BlobHead(r, _) => repo(r, Action::Pull),
                V2::ManifestMissing {
                    repo: r, delete, ..
                } => repo(
                    r,
                    if *delete {
                        Action::Delete
                    } else {
                        Action::Pull
                    },
                ),
                V2::ManifestPut(r, _) => repo(r, Action::Push),
                V2::ManifestDelete(r, _) | V2::BlobDelete(r, _) => repo(r, Action::Delete),
                V2::UploadStart { repo, mount_from } => Access::Repo {
                    repo: repo.clone(),
                    action: Action::Push,
                    mount_from: mount_from.clone(),
                },
                V2::UploadStatus(r, _)
                | V2::UploadChunk(r, _)
                | V2::UploadFinish(r, _)
                | V2::UploadCancel(r, _) => repo(r, Action::Push),
            },
            Endpoint::Api(a) => match a {
                // Listings are filtered by their handlers; the name of a
                // namespace to create is in the body.
                Api::OpenApi | Api::NamespaceList | Api::NamespaceCreate => Access::Anyone,
                // The settings include the allow-list: administrators only.
                Api::RegistryGet => Access::Admin("reading registry settings"),
                Api::RegistryUpdate => Access::Admin("changing registry settings"),
                Api::NamespaceGet(n)
                | Api::RepositoryList(n)
                | Api::RetentionGet(n)
                | Api::RetentionPreview(n) => ns(n, Action::Pull),
                Api::NamespaceUpdate(n)
                | Api::NamespaceDelete(n)
                | Api::RetentionSet(n)
                | Api::RetentionRun(n)
                | Api::GrantList(n)
                | Api::GrantGet(n, _)
                | Api::GrantPut(n, _)
                | Api::GrantDelete(n, _) => ns(n, Action::Manage),
                Api::RepositoryGet(n, r)
                | Api::ArtifactList(n, r)
                | Api::ArtifactGet(n, r, _)
                | Api::TagList(n, r)
                | Api::TagGet(n, r, _) => ns_repo(n, r, Action::Pull),
                Api::RepositoryDelete(n, r)
                | Api::ArtifactDelete(n, r, _)
                | Api::ArtifactDeleteRequest(n, r, _)
                | Api::TagDelete(n, r, _) => ns_repo(n, r, Action::Delete),
                Api::GcStart | Api::GcRunList | Api::GcRunGet(_) => {
                    Access::Admin("garbage collection")
                }
                Api::GcRunManifests(_) | Api::GcRunBlobs(_) => Access::Admin("this operation"),
                Api::UsageHistory => Access::SignedIn("sign in to see storage use"),
                Api::Me => Access::SignedIn(UNAUTHORIZED),
                Api::UserList => Access::Admin("listing users"),
                Api::UserCreate => Access::Admin("creating users"),
                Api::UserGet(u) => Access::SelfOrAdmin {
                    user: u.clone(),
                    what: "reading other users",
                },
                Api::UserUpdate(_) => Access::Admin("changing users"),
                Api::UserDelete(_) => Access::Admin("deleting users"),
                Api::PasswordChange(u) => Access::SelfOrAdmin {
                    user: u.clone(),
                    what: "changing other users' passwords",
                },
                Api::TokenList => Access::Admin("listing tokens"),
                Api::TokenCreate => Access::Admin("creating tokens"),
                Api::TokenGet(_) => Access::Admin("reading tokens"),
                Api::TokenDelete(_) => Access::Admin("revoking tokens"),
                Api::SigningKeyGet => Access::Admin("reading the signing key"),
                Api::SigningKeyRotate => Access::Admin("rotating the signing key"),
                Api::AuditList => Access::Admin("reading the audit log"),
                // A namespace's webhooks: its administrators; registry-wide
                // ones: registry administrators.
                Api::WebhookList(scope)
                | Api::WebhookCreate(scope)
                | Api::WebhookGet(scope, _)
                | Api::WebhookUpdate(scope, _)
                | Api::WebhookDelete(scope, _)
                | Api::WebhookTest(scope, _)
                | Api::WebhookRotateSecret(scope, _)
                | Api::DeliveryList(scope, _)
                | Api::DeliveryRedeliver(scope, ..) => match scope {
                    Some(n) => ns(n, Action::Manage),
                    None => Access::Admin("registry-wide webhooks"),
                },
            },
        }
    }
}

/// The 401 message of the management API.
pub(crate) const UNAUTHORIZED: &str =
    "authentication required: Basic credentials, or a Bearer token";

/// The decision for a request whose head has been admitted: the endpoint
/// to run, or the answer. `parsed` is [`Endpoint::parse`]'s result: a
/// path that is no endpoint is answered only now, after the allow-list and
/// the credentials, so that it tells nothing to a client they refuse.
pub(crate) async fn decide(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    plane: Plane,
    parsed: Result<Endpoint, Failure>,
) -> Result<Endpoint, Failure> {
    if plane == Plane::Token && state.config.auth.mode == AuthMode::None {
        return Err(Failure::Oci(ApiError::not_served(
            "authentication is off (auth.mode = \"none\"); no token is needed",
        )));
    }
    let endpoint = parsed?;
    let public = endpoint == Endpoint::Metrics && state.config.metrics.public;
    if !matches!(caller.principal, Principal::Open) && !public {
        check(state, caller, headers, &endpoint.required_access()).await?;
    }
    Ok(endpoint)
}

async fn check(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    access: &Access,
) -> Result<(), Failure> {
    let reg = &state.registry;
    let p = &caller.principal;
    let v2 = |e: ApiError| Failure::Oci(e);
    let mgmt = |e: MgmtError| Failure::Api(e);
    match access {
        Access::Anyone => Ok(()),
        Access::Credentials => match p {
            Principal::Anonymous => Err(v2(auth::v2_refusal(state, caller, headers, None))),
            _ => Ok(()),
        },
        Access::Catalog => {
            // As in Docker token authentication: the catalog needs a token
            // for `registry:catalog:*`, so that clients holding credentials
            // send them (an anonymous token for it lists the public
            // repositories).
            let allowed = match p {
                Principal::Anonymous => false,
                Principal::Bearer { claims, .. } => claims
                    .access
                    .iter()
                    .any(|a| a.typ == "registry" && a.name == "catalog"),
                _ => true,
            };
            if allowed {
                return Ok(());
            }
            Err(v2(auth::v2_refusal(
                state,
                caller,
                headers,
                Some("registry:catalog:*".into()),
            )))
        }
        Access::Repo {
            repo,
            action,
            mount_from,
        } => {
            if auth::may_repo(reg, p, repo, *action)
                .await
                .map_err(|e| v2(e.into()))?
            {
                return Ok(());
            }
            let scope = match action {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                _ => "delete",
            };
            // A mount also needs pull on its source: ask for both, so that
            // a client requesting exactly the challenged scopes can mount.
            let mut wanted = format!("repository:{repo}:{scope}");
            if let Some(from) = mount_from.as_ref().filter(|f| *f != repo) {
                wanted.push_str(&format!(" repository:{from}:pull"));
            }
            Err(v2(auth::v2_refusal(state, caller, headers, Some(wanted))))
        }
        Access::SignedIn(message) => {
            if p.is_anonymous() {
                Err(mgmt(MgmtError::unauthorized(*message)))
            } else {
                Ok(())
            }
        }
        Access::Admin(what) => require_admin(caller, what).map_err(mgmt),
        Access::Namespace(ns, action) => require_ns(state, caller, ns, *action).await.map_err(mgmt),
        Access::NamespaceRepo { ns, repo, action } => {
            // One cache for the decision: the namespace's facts are read
            // once (one gate hop) for its three checks.
            let mut cache = auth::AccessCache::new();
            if !auth::may_namespace_cached(reg, p, ns, Action::Pull, &mut cache)
                .await
                .map_err(|e| mgmt(e.into()))?
            {
                return Err(mgmt(refuse(
                    caller,
                    &format!("{} on namespace {ns}", Action::Pull.as_str()),
                )));
            }
            if let Ok(name) = crate::api::lookup::resolve_repo(state, ns, repo).await {
                // A repository the caller may not pull answers like a
                // missing one.
                if !auth::may_repo_cached(reg, p, &name, Action::Pull, &mut cache)
                    .await
                    .map_err(|e| mgmt(e.into()))?
                {
                    return Err(mgmt(crate::api::lookup::repo_not_found(ns, repo)));
                }
                if !auth::may_repo_cached(reg, p, &name, *action, &mut cache)
                    .await
                    .map_err(|e| mgmt(e.into()))?
                {
                    return Err(mgmt(refuse(
                        caller,
                        &format!("{} on {name}", action.as_str()),
                    )));
                }
            }
            Ok(())
        }
        Access::SelfOrAdmin { user, what } => {
            if is_self(caller, user) {
                Ok(())
            } else {
                require_admin(caller, what).map_err(mgmt)
            }
        }
    }
}

/// Whether the caller is `user` with its own credentials (a bearer token
/// of that user is not: it acts only within its access claim).
pub(crate) fn is_self(caller: &Caller, user: &str) -> bool {
    matches!(&caller.principal, Principal::User(u) if u.name == user)
}

/// 401 for anonymous callers, 403 for others.
fn refuse(caller: &Caller, what: &str) -> MgmtError {
    if caller.principal.is_anonymous() {
        MgmtError::unauthorized(UNAUTHORIZED)
    } else {
        MgmtError::denied(format!("your credentials do not allow {what}"))
    }
}

fn require_admin(caller: &Caller, what: &str) -> Result<(), MgmtError> {
    if caller.principal.is_admin() {
        Ok(())
    } else {
        Err(refuse(caller, what))
    }
}

/// `action` on namespace `ns`, or the management refusal.
pub(crate) async fn require_ns(
    state: &AppState,
    caller: &Caller,
    ns: &str,
    action: Action,
) -> Result<(), MgmtError> {
    if auth::may_namespace(&state.registry, &caller.principal, ns, action).await? {
        Ok(())
    } else {
        Err(refuse(
            caller,
            &format!("{} on namespace {ns}", action.as_str()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthConfig;
    use crate::ServerConfig;
    use berth_store::{Registry, StoreConfig, UserInfo};
    use http::Method;

    fn user(name: &str, admin: bool) -> Principal {
        Principal::User(UserInfo {
            name: name.into(),
            admin,
            created_at: 0,
            updated_at: 0,
            secret_version: 1,
            id: format!("id-{name}"),
        })
    }

    /// Decides `method path` for `principal` on a fresh registry.
    fn decision(
        mode: AuthMode,
        principal: Principal,
        method: Method,
        path: &str,
    ) -> Result<(), u16> {
        let dir = std::env::temp_dir().join(format!(
            "berth-authorize-{}-{}",
            std::process::id(),
            berth_store::random_bytes::<6>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = rt.block_on(async {
            let mut cfg = StoreConfig::new(&dir);
            cfg.gc_scheduler = false;
            let reg = Registry::open(cfg).await.unwrap();
            let config = ServerConfig {
                auth: AuthConfig {
                    mode,
                    ..AuthConfig::default()
                },
                ..ServerConfig::default()
            };
            let state = AppState::new(reg, config);
            let caller = Caller {
                principal,
                addr: std::net::Ipv4Addr::LOCALHOST.into(),
                scheme: "http",
                request_id: "test".into(),
            };
            let parsed = Endpoint::parse(&method, path, None);
            decide(&state, &caller, &HeaderMap::new(), Plane::of(path), parsed)
                .await
                .map(|_| ())
                .map_err(|f| match f {
                    Failure::Oci(e) => e.status,
                    Failure::Api(e) => e.status.as_u16(),
                })
        });
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    #[test]
    fn administration_is_refused_from_the_head() {
        let t = AuthMode::Token;
        // Decided before any body: the handler that would read it never
        // runs for a caller without the right.
        assert_eq!(
            decision(t, user("bob", false), Method::POST, "/api/v1/users"),
            Err(403)
        );
        assert_eq!(
            decision(t, Principal::Anonymous, Method::GET, "/api/v1/users"),
            Err(401)
        );
        assert_eq!(
            decision(t, user("root", true), Method::POST, "/api/v1/users"),
            Ok(())
        );
        assert_eq!(
            decision(
                t,
                user("bob", false),
                Method::PUT,
                "/api/v1/users/carol/password"
            ),
            Err(403)
        );
        assert_eq!(
            decision(
                t,
                user("bob", false),
                Method::PUT,
                "/api/v1/users/bob/password"
            ),
            Ok(())
        );
        assert_eq!(
            decision(
                t,
                user("bob", false),
                Method::PUT,
                "/api/v1/namespaces/acme/grants/bob"
            ),
            Err(403)
        );
    }

    #[test]
    fn repositories_and_special_cases() {
        let t = AuthMode::Token;
        assert_eq!(
            decision(t, Principal::Anonymous, Method::GET, "/v2/"),
            Err(401)
        );
        assert_eq!(
            decision(t, Principal::Anonymous, Method::GET, "/healthz"),
            Ok(())
        );
        assert_eq!(
            decision(
                t,
                user("bob", false),
                Method::PUT,
                "/v2/acme/web/manifests/latest"
            ),
            Err(403)
        );
        assert_eq!(
            decision(
                t,
                Principal::Anonymous,
                Method::GET,
                "/v2/acme/web/manifests/-bad"
            ),
            Err(401)
        );
        // Parse failures are answered here, after the credentials.
        assert_eq!(
            decision(t, Principal::Anonymous, Method::GET, "/v2/nope"),
            Err(404)
        );
        assert_eq!(
            decision(t, user("bob", false), Method::POST, "/api/v1/me"),
            Err(405)
        );
        // Authentication off: every right, and no token endpoint.
        let open = AuthMode::None;
        assert_eq!(
            decision(open, Principal::Open, Method::DELETE, "/api/v1/users/x"),
            Ok(())
        );
        assert_eq!(
            decision(open, Principal::Open, Method::DELETE, "/auth/token"),
            Err(404)
        );
        assert_eq!(
            decision(t, Principal::Anonymous, Method::DELETE, "/auth/token"),
            Err(405)
        );
    }
}
