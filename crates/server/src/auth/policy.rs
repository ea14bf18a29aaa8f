//! Who may do what: roles, scoped tokens and bearer tokens against
//! repositories and namespaces, the `/v2` challenge, the catalog filter and
//! the scopes a token request is granted.

use super::*;

fn role_allows(role: Role, action: Action) -> bool {
    match role {
        Role::Reader => action == Action::Pull,
        Role::Writer => matches!(action, Action::Pull | Action::Push),
        Role::Admin => true,
    }
}

/// Namespace facts already read during one decision (a catalog page asks
/// about many repositories of few namespaces): one gate hop per namespace.
/// Keyed by namespace, whether the visibility was asked, and the user.
pub type AccessCache = std::collections::HashMap<(String, bool, Option<String>), NamespaceAccess>;

/// The facts about `ns` that `p` (never a bearer token) needs, read once
/// per decision.
async fn facts(
    reg: &Registry,
    p: &Principal,
    ns: &str,
    want_public: bool,
    cache: &mut AccessCache,
) -> Result<NamespaceAccess, StoreError> {
    let user = match p {
        Principal::User(u) => Some(u.name.clone()),
        _ => None,
    };
    let key = (ns.to_string(), want_public, user);
    if let Some(f) = cache.get(&key) {
        return Ok(*f);
    }
    let f = reg
        .namespace_access(key.2.as_deref(), ns, want_public)
        .await?;
    cache.insert(key, f);
    Ok(f)
}

/// Whether a JWT's access claim allows `action` on `repo`.
fn claims_allow(claims: &Claims, repo: &str, action: Action) -> bool {
    let want = action.as_str();
    claims.access.iter().any(|a| {
        a.typ == "repository" && a.name == repo && a.actions.iter().any(|x| x == want || x == "*")
    })
}

/// Whether `p` may do `action` on `repo`, on every plane. A bearer token is
/// judged by its access claim and its subject's current rights together.
pub async fn may_repo(
    reg: &Registry,
    p: &Principal,
    repo: &RepoName,
    action: Action,
) -> Result<bool, StoreError> {
    may_repo_cached(reg, p, repo, action, &mut AccessCache::new()).await
}

/// [`may_repo`] reusing the namespace facts of earlier checks of the same
/// decision.
pub async fn may_repo_cached(
    reg: &Registry,
    p: &Principal,
    repo: &RepoName,
    action: Action,
    cache: &mut AccessCache,
) -> Result<bool, StoreError> {
    let ns = repo.namespace();
    let pull = action == Action::Pull;
    Ok(match p {
        Principal::Open | Principal::Anonymous | Principal::User(_) => {
            standing(reg, p, ns, action, cache).await?
        }
        Principal::Token(t) => {
            t.allows(repo.as_str(), action)
                || (pull && facts(reg, p, ns, true, cache).await?.public)
        }
        // Within its access claim, and only while its subject still has
        // the right: removing a grant takes effect at once.
        Principal::Bearer { claims, subject } => {
            claims_allow(claims, repo.as_str(), action)
                && Box::pin(may_repo_cached(reg, subject, repo, action, cache)).await?
        }
    })
}

/// What a principal's own standing in namespace `ns` allows: the same for
/// a repository of it and for the namespace itself. Users act by their
/// role (administrators by everything), everyone may pull from a public
/// namespace. Tokens have no standing of their own; their patterns and
/// claims are judged per target by the callers.
async fn standing(
    reg: &Registry,
    p: &Principal,
    ns: &str,
    action: Action,
    cache: &mut AccessCache,
) -> Result<bool, StoreError> {
    let pull = action == Action::Pull;
    Ok(match p {
        Principal::Open => true,
        Principal::Anonymous => pull && facts(reg, p, ns, true, cache).await?.public,
        Principal::User(u) => {
            u.admin || {
                let f = facts(reg, p, ns, pull, cache).await?;
                f.role.is_some_and(|r| role_allows(r, action)) || f.public
            }
        }
        Principal::Token(_) | Principal::Bearer { .. } => false,
    })
}

/// The part of a pattern before its first `*`.
fn literal_prefix(pattern: &str) -> &str {
    pattern.split('*').next().unwrap_or("")
}

/// Whether a token pattern may match some repository of namespace `ns`.
fn pattern_touches(pattern: &str, ns: &str) -> bool {
    let lit = literal_prefix(pattern);
    let ns_slash = format!("{ns}/");
    // The pattern is the namespace's own single-component repository, or
    // its literal part reaches into the namespace, or stops before the
    // namespace's end and a `*` can complete it.
    pattern == ns
        || lit.starts_with(&ns_slash)
        || (lit.len() < ns_slash.len() && ns_slash.starts_with(lit) && pattern.contains('*'))
}

/// Whether a token pattern matches every repository of namespace `ns`.
fn pattern_covers(pattern: &str, ns: &str) -> bool {
    // '\u{1}' never occurs in a pattern: only a trailing run of `*` can
    // match it, and that run matches any rest of a name.
    berth_store::glob_match(pattern, &format!("{ns}/\u{1}"))
}

/// Whether `p` may do `action` on namespace `ns` itself (management API):
/// `Pull` = see it and list what is in it; `Manage` = change its settings
/// and members, delete it; `Push` = create it.
pub async fn may_namespace(
    reg: &Registry,
    p: &Principal,
    ns: &str,
    action: Action,
) -> Result<bool, StoreError> {
    may_namespace_cached(reg, p, ns, action, &mut AccessCache::new()).await
}

/// [`may_namespace`] reusing the namespace facts of earlier checks of the
/// same decision.
pub async fn may_namespace_cached(
    reg: &Registry,
    p: &Principal,
    ns: &str,
    action: Action,
    cache: &mut AccessCache,
) -> Result<bool, StoreError> {
    let pull = action == Action::Pull;
    Ok(match p {
        Principal::Open | Principal::Anonymous | Principal::User(_) => {
            standing(reg, p, ns, action, cache).await?
        }
        // A bearer token sees a namespace its access claim reaches into
        // (while its subject still may); it never manages anything.
        Principal::Bearer { claims, subject } => {
            (action == Action::Pull
                && claims.access.iter().any(|a| {
                    a.typ == "repository"
                        && a.name
                            .parse::<RepoName>()
                            .is_ok_and(|r| r.namespace() == ns)
                        && a.actions.iter().any(|x| x == "pull" || x == "*")
                })
                && Box::pin(may_namespace_cached(reg, subject, ns, Action::Pull, cache)).await?)
                || (pull
                    && facts(reg, &Principal::Anonymous, ns, true, cache)
                        .await?
                        .public)
        }
        Principal::Token(t) => {
            t.record.scopes.iter().any(|s| {
                s.actions.contains(&action)
                    && if action == Action::Pull {
                        pattern_touches(&s.repository, ns)
                    } else {
                        pattern_covers(&s.repository, ns)
                    }
            }) || (pull && facts(reg, p, ns, true, cache).await?.public)
        }
    })
}

/// The OCI error for a refused `/v2` request: 401 with a challenge for
/// anonymous callers and bearer tokens (so that clients fetch a token with
/// the right scope), 403 `DENIED` for callers whose credentials are known.
pub fn v2_refusal(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    scope: Option<String>,
) -> ApiError {
    match &caller.principal {
        Principal::Anonymous | Principal::Bearer { .. } => {
            let insufficient = matches!(caller.principal, Principal::Bearer { .. });
            let mut e = ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required: log in (docker login) or get a token from the realm",
            );
            e = e.with_header(
                http::header::WWW_AUTHENTICATE,
                challenge(state, caller, headers, scope.as_deref(), insufficient),
            );
            e
        }
        _ => ApiError::new(
            ErrorCode::Denied,
            "your credentials do not allow this; ask an administrator for a role on the namespace",
        ),
    }
}

/// `Bearer realm="...",service="...",scope="..."`.
pub fn challenge(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    scope: Option<&str>,
    insufficient: bool,
) -> String {
    let cfg = &state.config.auth;
    let realm = match &cfg.realm {
        Some(r) => r.clone(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
                })
                .unwrap_or("localhost");
            format!("{}://{host}/auth/token", caller.scheme)
        }
    };
    let mut c = format!("Bearer realm=\"{realm}\",service=\"{}\"", cfg.service);
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    if insufficient {
        c.push_str(",error=\"insufficient_scope\"");
    }
    c
}

/// Where a cross-repository mount may take a blob from, for this caller:
/// `Ok(None)` = do not mount (fall back to an upload session);
/// `Ok(Some(None))` = any holder (auth off).
pub async fn mount_source(
    state: &AppState,
    caller: &Caller,
    digest: &Digest,
    from: Option<&str>,
) -> Result<Option<Option<RepoName>>, StoreError> {
    let reg = &state.registry;
    let open = matches!(caller.principal, Principal::Open);
    match from {
        Some(f) => {
            // A `from` that is not a valid name cannot hold the blob.
            let Ok(f) = f.parse::<RepoName>() else {
                return Ok(None);
            };
            if open || may_repo(reg, &caller.principal, &f, Action::Pull).await? {
                Ok(Some(Some(f)))
            } else {
                Ok(None)
            }
        }
        None if open => Ok(Some(None)),
        None => {
            let mut cache = AccessCache::new();
            for holder in reg.blob_holders(digest, 256).await? {
                if may_repo_cached(reg, &caller.principal, &holder, Action::Pull, &mut cache)
                    .await?
                {
                    return Ok(Some(Some(holder)));
                }
            }
            Ok(None)
        }
    }
}

/// `_catalog`: the repositories the caller may pull, in lexical order,
/// after `last`, at most `n`.
pub async fn catalog(
    state: &AppState,
    caller: &Caller,
    last: Option<&str>,
    n: usize,
) -> Result<berth_store::Page, StoreError> {
    let reg = &state.registry;
    let p = caller.principal.effective();
    if p.is_admin() {
        return reg.catalog(last, n).await;
    }
    let mut items = Vec::new();
    let mut after = last.map(str::to_string);
    let mut cache = AccessCache::new();
    loop {
        let page = reg.catalog(after.as_deref(), 1000).await?;
        for name in &page.items {
            if let Ok(r) = name.parse::<RepoName>() {
                if may_repo_cached(reg, p, &r, Action::Pull, &mut cache).await? {
                    if items.len() == n {
                        return Ok(berth_store::Page { items, more: true });
                    }
                    items.push(name.clone());
                }
            }
        }
        if !page.more {
            return Ok(berth_store::Page { items, more: false });
        }
        after = page.items.last().cloned();
    }
}

/// Grants for a token request: the intersection of what is asked (Docker
/// `scope` strings) and what the caller may do.
pub async fn grant_scopes(
    reg: &Registry,
    p: &Principal,
    scopes: &[String],
) -> Result<Vec<AccessEntry>, StoreError> {
    let mut out: Vec<AccessEntry> = Vec::new();
    for s in scopes.iter().flat_map(|s| s.split(' ')) {
        let Some((typ, rest)) = s.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        if typ == "registry" && name == "catalog" {
            // The catalog is filtered per caller; anyone may ask for it.
            // Asked twice, granted once.
            if out
                .iter()
                .any(|e| e.typ == "registry" && e.name == "catalog")
            {
                continue;
            }
            out.push(AccessEntry {
                typ: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            });
            continue;
        }
        if typ != "repository" {
            continue;
        }
        let Ok(repo) = name.parse::<RepoName>() else {
            continue;
        };
        let mut granted: Vec<String> = Vec::new();
        for a in actions.split(',') {
            let wanted: &[Action] = match a {
                "pull" => &[Action::Pull],
                "push" => &[Action::Push],
                "delete" => &[Action::Delete],
                "*" => &[Action::Pull, Action::Push, Action::Delete],
                _ => &[],
            };
            for w in wanted {
                if may_repo(reg, p, &repo, *w).await? && !granted.iter().any(|g| g == w.as_str()) {
                    granted.push(w.as_str().to_string());
                }
            }
        }
        if granted.is_empty() {
            continue;
        }
        match out
            .iter_mut()
            .find(|e| e.typ == "repository" && e.name == repo.as_str())
        {
            Some(e) => {
                for g in granted {
                    if !e.actions.contains(&g) {
                        e.actions.push(g);
                    }
                }
            }
            None => out.push(AccessEntry {
                typ: "repository".into(),
                name: repo.to_string(),
                actions: granted,
            }),
        }
    }
    Ok(out)
}

/// The JWT subject for a principal.
pub fn subject_of(p: &Principal) -> String {
    match p.effective() {
        Principal::User(u) => u.name.clone(),
        Principal::Token(t) => format!("token:{}", t.id),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_namespaces() {
        assert!(pattern_covers("acme/*", "acme"));
        assert!(pattern_covers("*", "acme"));
        assert!(pattern_covers("ac*", "acme"));
        assert!(!pattern_covers("acme/web", "acme"));
        assert!(!pattern_covers("acme/*x", "acme"));
        assert!(pattern_touches("acme/web", "acme"));
        assert!(pattern_touches("acme/*", "acme"));
        assert!(pattern_touches("*", "acme"));
        assert!(pattern_touches("a*", "acme"));
        assert!(pattern_touches("acme", "acme"));
        assert!(!pattern_touches("other/*", "acme"));
        assert!(!pattern_touches("acmex/*", "acme"));
    }
}
