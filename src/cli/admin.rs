//! Management subcommands: thin clients of the `/api/v1` API, so that an
//! operator can list, inspect and delete from a shell.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

/// Characters kept as they are in path segments; everything else (the
/// slashes of repository names included) is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// Where the API is and how to print answers.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Base URL of the Berth server.
    #[arg(
        long,
        env = "BERTH_URL",
        default_value = "http://127.0.0.1:5000",
        global = true
    )]
    url: String,
    /// Output: aligned table or the API's JSON.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
    /// User name for the API (auth mode token), with BERTH_PASSWORD.
    #[arg(long, env = "BERTH_USER", global = true)]
    user: Option<String>,
    /// Scoped-token secret for the API (instead of a user and password).
    #[arg(long, env = "BERTH_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    Table,
    Json,
}

/// Pagination and ordering for list commands.
#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    /// Page number, from 1.
    #[arg(long, default_value_t = 1)]
    page: u64,
    /// Items per page (1 to 100).
    #[arg(long, default_value_t = 20)]
    page_size: u64,
}

/// `berth namespace ...`
#[derive(Subcommand, Debug)]
pub enum NamespaceCmd {
    /// List namespaces.
    List {
        #[command(flatten)]
        page: PageArgs,
        /// created_at_asc, created_at_desc, name_asc, name_desc, status_asc, status_desc.
        #[arg(long)]
        order_by: Option<String>,
        /// Only this exact name.
        #[arg(long)]
        name: Option<String>,
        /// Only this project.
        #[arg(long)]
        project_id: Option<String>,
    },
    /// Show one namespace.
    Get {
        /// Namespace name.
        name: String,
    },
    /// Create a namespace (a first push creates one too, private).
    Create {
        /// Namespace name.
        name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// Owner's project id.
        #[arg(long, default_value = "")]
        project_id: String,
        /// Allow anonymous pulls.
        #[arg(long)]
        public: bool,
    },
    /// Change description or visibility.
    Update {
        /// Namespace name.
        name: String,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// Allow (true) or forbid (false) anonymous pulls.
        #[arg(long)]
        public: Option<bool>,
    },
    /// Delete a namespace with all its repositories.
    Delete {
        /// Namespace name.
        name: String,
    },
}

/// `berth repo ...`
#[derive(Subcommand, Debug)]
pub enum RepoCmd {
    /// List the repositories of a namespace.
    List {
        /// Namespace name.
        namespace: String,
        #[command(flatten)]
        page: PageArgs,
        /// name_asc, name_desc, created_at_asc, created_at_desc, last_push_asc, last_push_desc, size_asc, size_desc.
        #[arg(long)]
        order_by: Option<String>,
    },
    /// Show a repository with its tags and artifacts.
    Get {
        /// Namespace name.
        namespace: String,
        /// Repository, relative to the namespace (`web`) or in full (`acme/web`).
        repo: String,
    },
    /// Delete a repository with all its tags and artifacts.
    Delete {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
    },
}

/// `berth artifact ...`
#[derive(Subcommand, Debug)]
pub enum ArtifactCmd {
    /// List the artifacts of a repository.
    List {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one artifact.
    Get {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
        /// Manifest digest.
        digest: String,
    },
    /// Delete an artifact and every tag pointing at it.
    Delete {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
        /// Manifest digest.
        digest: String,
    },
}

/// `berth tag ...`
#[derive(Subcommand, Debug)]
pub enum TagCmd {
    /// List the tags of a repository.
    List {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Delete a tag (the artifact stays).
    Delete {
        /// Namespace name.
        namespace: String,
        /// Repository.
        repo: String,
        /// Tag.
        tag: String,
    },
}

/// `berth registry ...`
#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Show the registry settings.
    Get,
    /// Change registry settings; only the options given change.
    Set {
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Region label.
        #[arg(long)]
        region: Option<String>,
        /// Garbage-collection days, comma-separated (monday,...,sunday); needs --gc-time.
        #[arg(long, value_delimiter = ',', requires = "gc_time")]
        gc_days: Option<Vec<String>>,
        /// Garbage-collection time, HH:MM UTC; needs --gc-days.
        #[arg(long, requires = "gc_days")]
        gc_time: Option<String>,
        /// Turn scheduled garbage collection off.
        #[arg(long, conflicts_with_all = ["gc_days", "gc_time"])]
        no_gc: bool,
        /// Replace the API subnet allow-list (repeat or comma-separate CIDRs).
        #[arg(long, value_delimiter = ',')]
        allow: Option<Vec<String>>,
        /// Empty the allow-list (everyone may connect).
        #[arg(long, conflicts_with = "allow")]
        clear_allow_list: bool,
        /// Record vulnerability scanning as on or off.
        #[arg(long)]
        vulnerability_scanning: Option<bool>,
    },
}

pub(super) struct Api {
    base: String,
    http: reqwest::blocking::Client,
    output: Output,
    /// Basic credentials, or a bearer secret.
    auth: Option<(String, Option<String>)>,
}

pub(super) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

impl Api {
    pub(super) fn new(a: &ApiArgs) -> anyhow::Result<Api> {
        Ok(Api {
            base: format!("{}/api/v1", a.url.trim_end_matches('/')),
            http: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
            output: a.output,
            auth: match (&a.token, &a.user) {
                (Some(t), _) => Some((t.clone(), None)),
                (None, Some(u)) => Some((
                    u.clone(),
                    Some(std::env::var("BERTH_PASSWORD").unwrap_or_default()),
                )),
                _ => None,
            },
        })
    }

    pub(super) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).query(query);
        match &self.auth {
            Some((user, Some(pw))) => req = req.basic_auth(user, Some(pw)),
            Some((token, None)) => req = req.bearer_auth(token),
            None => {}
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().with_context(|| {
            format!("cannot reach {url}; is `berth serve` running there? (set --url or BERTH_URL)")
        })?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            let msg = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{method} {path}: {status}: {msg}");
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    pub(super) fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, query, None)
    }
}

fn page_query(p: &PageArgs) -> Vec<(&'static str, String)> {
    vec![
        ("page", p.page.to_string()),
        ("page_size", p.page_size.to_string()),
    ]
}

pub(super) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn size(v: &Value) -> String {
    let Some(n) = v.as_u64() else { return s(v) };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u < UNITS.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn short(d: &Value) -> String {
    let d = s(d);
    match d.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => d,
    }
}

/// Prints rows as an aligned table with a header.
pub(super) fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r);
    }
}

fn total(v: &Value, what: &str) {
    println!("({} {what} in all)", s(&v["total_count"]));
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn print_namespaces(list: &[Value]) {
    table(
        &[
            "NAME", "STATUS", "PUBLIC", "IMAGES", "SIZE", "CREATED", "ENDPOINT",
        ],
        list.iter()
            .map(|n| {
                vec![
                    s(&n["name"]),
                    s(&n["status"]),
                    s(&n["is_public"]),
                    s(&n["image_count"]),
                    size(&n["size"]),
                    s(&n["created_at"]),
                    s(&n["endpoint"]),
                ]
            })
            .collect(),
    );
}

fn print_artifacts(list: &[Value]) {
    table(
        &[
            "DIGEST", "IMAGE ID", "TAGS", "TYPE", "SIZE", "PUSHED", "PULLED",
        ],
        list.iter()
            .map(|a| {
                let tags: Vec<String> = items(a, "tags").iter().map(s).collect();
                vec![
                    short(&a["digest"]),
                    // The config digest, shortened as `docker images` does.
                    short(&a["image_id"]),
                    if tags.is_empty() {
                        "-".into()
                    } else {
                        tags.join(",")
                    },
                    s(&a["artifact_type"]),
                    size(&a["size"]),
                    s(&a["pushed_at"]),
                    s(&a["last_pull"]),
                ]
            })
            .collect(),
    );
}

fn print_tags(list: &[Value]) {
    table(
        &["TAG", "DIGEST", "PUSHED"],
        list.iter()
            .map(|t| vec![s(&t["name"]), short(&t["digest"]), s(&t["pushed_at"])])
            .collect(),
    );
}

pub(super) fn emit(api: &Api, v: &Value, table_fn: impl FnOnce(&Value)) {
    match api.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Output::Table => table_fn(v),
    }
}

fn repo_path(ns: &str, repo: &str) -> String {
    format!("/namespaces/{}/repositories/{}", seg(ns), seg(repo))
}

/// Runs `berth namespace ...`.
pub fn namespace(a: &ApiArgs, cmd: NamespaceCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    match cmd {
        NamespaceCmd::List {
            page,
            order_by,
            name,
            project_id,
        } => {
            let mut q = page_query(&page);
            q.extend(order_by.map(|o| ("order_by", o)));
            q.extend(name.map(|n| ("name", n)));
            q.extend(project_id.map(|p| ("project_id", p)));
            let v = api.get("/namespaces", &q)?;
            emit(&api, &v, |v| {
                print_namespaces(items(v, "namespaces"));
                total(v, "namespaces");
            });
        }
        NamespaceCmd::Get { name } => {
            let v = api.get(&format!("/namespaces/{}", seg(&name)), &[])?;
            emit(&api, &v, |v| print_namespaces(std::slice::from_ref(v)));
        }
        NamespaceCmd::Create {
            name,
            description,
            project_id,
            public,
        } => {
            let body = json!({"name": name, "description": description, "project_id": project_id, "is_public": public});
            let v = api.call(reqwest::Method::POST, "/namespaces", &[], Some(body))?;
            emit(&api, &v, |v| print_namespaces(std::slice::from_ref(v)));
        }
        NamespaceCmd::Update {
            name,
            description,
            public,
        } => {
            let mut body = json!({});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(p) = public {
                body["is_public"] = json!(p);
            }
            let v = api.call(
                reqwest::Method::PATCH,
                &format!("/namespaces/{}", seg(&name)),
                &[],
                Some(body),
            )?;
            emit(&api, &v, |v| print_namespaces(std::slice::from_ref(v)));
        }
        NamespaceCmd::Delete { name } => {
            let v = api.call(
                reqwest::Method::DELETE,
                &format!("/namespaces/{}", seg(&name)),
                &[],
                None,
            )?;
            emit(&api, &v, |_| println!("namespace {name}: deletion started"));
        }
    }
    Ok(())
}

/// Runs `berth repo ...`.
pub fn repo(a: &ApiArgs, cmd: RepoCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    match cmd {
        RepoCmd::List {
            namespace,
            page,
            order_by,
        } => {
            let mut q = page_query(&page);
            q.extend(order_by.map(|o| ("order_by", o)));
            let v = api.get(&format!("/namespaces/{}/repositories", seg(&namespace)), &q)?;
            emit(&api, &v, |v| {
                table(
                    &[
                        "NAME",
                        "TAGS",
                        "ARTIFACTS",
                        "SIZE",
                        "LATEST",
                        "LAST PUSH",
                        "LAST PULL",
                    ],
                    items(v, "repositories")
                        .iter()
                        .map(|r| {
                            vec![
                                s(&r["name"]),
                                s(&r["tag_count"]),
                                s(&r["artifact_count"]),
                                size(&r["size"]),
                                s(&r["latest_tag"]),
                                s(&r["last_push"]),
                                s(&r["last_pull"]),
                            ]
                        })
                        .collect(),
                );
                total(v, "repositories");
            });
        }
        RepoCmd::Get { namespace, repo } => {
            let v = api.get(&repo_path(&namespace, &repo), &[])?;
            emit(&api, &v, |v| {
                let r = &v["repository"];
                println!("repository  {}", s(&r["name"]));
                println!("size        {} (distinct bytes)", size(&r["size"]));
                println!("created     {}", s(&r["created_at"]));
                println!("last push   {}", s(&r["last_push"]));
                println!("last pull   {}\n", s(&r["last_pull"]));
                print_tags(items(v, "tags"));
                println!();
                print_artifacts(items(v, "artifacts"));
            });
        }
        RepoCmd::Delete { namespace, repo } => {
            api.call(
                reqwest::Method::DELETE,
                &repo_path(&namespace, &repo),
                &[],
                None,
            )?;
            println!("repository {repo} deleted");
        }
    }
    Ok(())
}

/// Runs `berth artifact ...`.
pub fn artifact(a: &ApiArgs, cmd: ArtifactCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    match cmd {
        ArtifactCmd::List {
            namespace,
            repo,
            page,
        } => {
            let v = api.get(
                &format!("{}/artifacts", repo_path(&namespace, &repo)),
                &page_query(&page),
            )?;
            emit(&api, &v, |v| {
                print_artifacts(items(v, "artifacts"));
                total(v, "artifacts");
            });
        }
        ArtifactCmd::Get {
            namespace,
            repo,
            digest,
        } => {
            let v = api.get(
                &format!(
                    "{}/artifacts/{}",
                    repo_path(&namespace, &repo),
                    seg(&digest)
                ),
                &[],
            )?;
            emit(&api, &v, |v| {
                print_artifacts(std::slice::from_ref(v));
                println!();
                table(
                    &["LAYER", "MEDIA TYPE", "SIZE"],
                    items(v, "layers")
                        .iter()
                        .map(|l| vec![short(&l["digest"]), s(&l["media_type"]), size(&l["size"])])
                        .collect(),
                );
            });
        }
        ArtifactCmd::Delete {
            namespace,
            repo,
            digest,
        } => {
            api.call(
                reqwest::Method::DELETE,
                &format!(
                    "{}/artifacts/{}",
                    repo_path(&namespace, &repo),
                    seg(&digest)
                ),
                &[],
                None,
            )?;
            println!("artifact {digest} and its tags deleted");
        }
    }
    Ok(())
}

/// Runs `berth tag ...`.
pub fn tag(a: &ApiArgs, cmd: TagCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    match cmd {
        TagCmd::List {
            namespace,
            repo,
            page,
        } => {
            let v = api.get(
                &format!("{}/tags", repo_path(&namespace, &repo)),
                &page_query(&page),
            )?;
            emit(&api, &v, |v| {
                print_tags(items(v, "tags"));
                total(v, "tags");
            });
        }
        TagCmd::Delete {
            namespace,
            repo,
            tag,
        } => {
            api.call(
                reqwest::Method::DELETE,
                &format!("{}/tags/{}", repo_path(&namespace, &repo), seg(&tag)),
                &[],
                None,
            )?;
            println!("tag {tag} deleted");
        }
    }
    Ok(())
}

/// Runs `berth registry ...`.
pub fn registry(a: &ApiArgs, cmd: RegistryCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    let v = match cmd {
        RegistryCmd::Get => api.get("/registry", &[])?,
        RegistryCmd::Set {
            name,
            region,
            gc_days,
            gc_time,
            no_gc,
            allow,
            clear_allow_list,
            vulnerability_scanning,
        } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(r) = region {
                body["region"] = json!(r);
            }
            if let (Some(days), Some(time)) = (gc_days, gc_time) {
                body["garbage_collection_schedule"] = json!({"days": days, "time": time});
            }
            if no_gc {
                body["garbage_collection_schedule"] = Value::Null;
            }
            if let Some(a) = allow {
                body["api_subnet_allow_list"] = json!(a);
            }
            if clear_allow_list {
                body["api_subnet_allow_list"] = json!([]);
            }
            if let Some(e) = vulnerability_scanning {
                body["features"] = json!({"vulnerability_scanning": {"enabled": e}});
            }
            api.call(reqwest::Method::PATCH, "/registry", &[], Some(body))?
        }
    };
    emit(&api, &v, |v| {
        let gc = &v["garbage_collection_schedule"];
        let gc = if gc.is_null() {
            "off".to_string()
        } else {
            let days: Vec<String> = items(gc, "days").iter().map(s).collect();
            format!("{} at {} UTC", days.join(","), s(&gc["time"]))
        };
        let allow: Vec<String> = items(v, "api_subnet_allow_list").iter().map(s).collect();
        println!("name                    {}", s(&v["name"]));
        println!("region                  {}", s(&v["region"]));
        println!("garbage collection      {gc}");
        println!(
            "api subnet allow-list   {}",
            if allow.is_empty() {
                "(everyone)".into()
            } else {
                allow.join(", ")
            }
        );
        println!(
            "vulnerability scanning  {}",
            s(&v["features"]["vulnerability_scanning"]["enabled"])
        );
    });
    Ok(())
}
