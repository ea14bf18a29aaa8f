//! `berth webhook ...`: a thin client of the webhook endpoints, for a
//! namespace (`--namespace`) or registry-wide.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::admin::{emit, s, seg, table, Api, ApiArgs};

/// Which webhooks: a namespace's, or the registry-wide ones.
#[derive(Args, Debug, Clone)]
pub struct Scope {
    /// The namespace; without it, registry-wide webhooks (administrators).
    #[arg(long, short = 'n')]
    namespace: Option<String>,
}

impl Scope {
    fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("/namespaces/{}/webhooks", seg(ns)),
            None => "/webhooks".into(),
        }
    }
}

/// `berth webhook ...`
#[derive(Subcommand, Debug)]
pub enum WebhookCmd {
    /// Create a webhook; prints its secret, shown only this once.
    Create {
        #[command(flatten)]
        scope: Scope,
        /// Receiver URL (http or https).
        #[arg(value_name = "RECEIVER_URL")]
        receiver: String,
        /// Event types, comma-separated (artifact.pushed, tag.updated,
        /// artifact.deleted, tag.deleted, repository.deleted,
        /// namespace.deleted, artifact.pulled).
        #[arg(long, value_delimiter = ',', default_value = "artifact.pushed")]
        events: Vec<String>,
        /// Glob over full repository names (`acme/*`).
        #[arg(long)]
        repositories: Option<String>,
        /// Regular expression over whole tags.
        #[arg(long)]
        tags: Option<String>,
        /// cloudevents or distribution.
        #[arg(long, default_value = "cloudevents")]
        format: String,
    },
    /// List webhooks (never their secrets).
    List {
        #[command(flatten)]
        scope: Scope,
    },
    /// Show one webhook.
    Show {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
    },
    /// Change a webhook; an empty --repositories or --tags removes it.
    Update {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
        /// Receiver URL.
        #[arg(long = "receiver-url", value_name = "RECEIVER_URL")]
        receiver: Option<String>,
        /// Event types, comma-separated.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// Repository glob.
        #[arg(long)]
        repositories: Option<String>,
        /// Tag regular expression.
        #[arg(long)]
        tags: Option<String>,
        /// cloudevents or distribution.
        #[arg(long)]
        format: Option<String>,
        /// Pause (false) or resume (true) deliveries.
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Delete a webhook with its delivery log.
    Delete {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
    },
    /// Queue a test event for one webhook.
    Test {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
    },
    /// The delivery log of a webhook.
    Deliveries {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
        /// Deliveries after this id.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Send one delivery again (same event id).
    Redeliver {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
        /// Delivery id (from `deliveries`).
        delivery: u64,
    },
    /// Give a webhook a new secret; prints it, shown only this once.
    RotateSecret {
        #[command(flatten)]
        scope: Scope,
        /// Webhook id.
        id: String,
    },
}

fn print_hooks(list: &[Value]) {
    table(
        &[
            "ID",
            "URL",
            "EVENTS",
            "REPOSITORIES",
            "TAGS",
            "FORMAT",
            "ENABLED",
        ],
        list.iter()
            .map(|w| {
                let events: Vec<String> = w["events"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                vec![
                    s(&w["id"]),
                    s(&w["url"]),
                    events.join(","),
                    s(&w["repositories"]),
                    s(&w["tags"]),
                    s(&w["format"]),
                    s(&w["enabled"]),
                ]
            })
            .collect(),
    );
}

fn print_with_secret(v: &Value) {
    print_hooks(std::slice::from_ref(v));
    println!(
        "secret: {} (shown only now: keep it to verify X-Berth-Signature-256)",
        s(&v["secret"])
    );
}

fn print_deliveries(list: &[Value]) {
    table(
        &[
            "ID",
            "EVENT",
            "TYPE",
            "STATE",
            "ATTEMPTS",
            "STATUS",
            "LATENCY_MS",
            "NEXT_RETRY",
        ],
        list.iter()
            .map(|d| {
                vec![
                    s(&d["id"]),
                    s(&d["event_id"]),
                    s(&d["type"]),
                    s(&d["state"]),
                    s(&d["attempts"]),
                    s(&d["last_status"]),
                    s(&d["latency_ms"]),
                    s(&d["next_retry"]),
                ]
            })
            .collect(),
    );
}

/// Runs `berth webhook ...`.
pub fn webhook(a: &ApiArgs, cmd: WebhookCmd) -> anyhow::Result<()> {
    let api = Api::new(a)?;
    let post = reqwest::Method::POST;
    match cmd {
        WebhookCmd::Create {
            scope,
            receiver,
            events,
            repositories,
            tags,
            format,
        } => {
            let body = json!({"url": receiver, "events": events, "repositories": repositories,
                              "tags": tags, "format": format});
            let v = api.call(post, &scope.path(), &[], Some(body))?;
            emit(&api, &v, print_with_secret);
        }
        WebhookCmd::List { scope } => {
            let v = api.get(&scope.path(), &[])?;
            emit(&api, &v, |v| {
                print_hooks(v["webhooks"].as_array().map(Vec::as_slice).unwrap_or(&[]))
            });
        }
        WebhookCmd::Show { scope, id } => {
            let v = api.get(&format!("{}/{}", scope.path(), seg(&id)), &[])?;
            emit(&api, &v, |v| print_hooks(std::slice::from_ref(v)));
        }
        WebhookCmd::Update {
            scope,
            id,
            receiver,
            events,
            repositories,
            tags,
            format,
            enabled,
        } => {
            let mut body = json!({});
            for (k, v) in [
                ("url", receiver.map(Value::from)),
                ("events", events.map(Value::from)),
                ("repositories", repositories.map(Value::from)),
                ("tags", tags.map(Value::from)),
                ("format", format.map(Value::from)),
                ("enabled", enabled.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            let v = api.call(
                reqwest::Method::PATCH,
                &format!("{}/{}", scope.path(), seg(&id)),
                &[],
                Some(body),
            )?;
            emit(&api, &v, |v| print_hooks(std::slice::from_ref(v)));
        }
        WebhookCmd::Delete { scope, id } => {
            api.call(
                reqwest::Method::DELETE,
                &format!("{}/{}", scope.path(), seg(&id)),
                &[],
                None,
            )?;
            println!("deleted webhook {id}");
        }
        WebhookCmd::Test { scope, id } => {
            let v = api.call(
                post,
                &format!("{}/{}/test", scope.path(), seg(&id)),
                &[],
                None,
            )?;
            emit(&api, &v, |v| print_deliveries(std::slice::from_ref(v)));
        }
        WebhookCmd::Deliveries { scope, id, after } => {
            let q: Vec<(&str, String)> = after
                .map(|a| ("after", a.to_string()))
                .into_iter()
                .collect();
            let v = api.get(&format!("{}/{}/deliveries", scope.path(), seg(&id)), &q)?;
            emit(&api, &v, |v| {
                print_deliveries(v["deliveries"].as_array().map(Vec::as_slice).unwrap_or(&[]));
                if !v["next"].is_null() {
                    println!("(more: --after {})", s(&v["next"]));
                }
            });
        }
        WebhookCmd::Redeliver {
            scope,
            id,
            delivery,
        } => {
            let v = api.call(
                post,
                &format!(
                    "{}/{}/deliveries/{delivery}/redeliver",
                    scope.path(),
                    seg(&id)
                ),
                &[],
                None,
            )?;
            emit(&api, &v, |v| print_deliveries(std::slice::from_ref(v)));
        }
        WebhookCmd::RotateSecret { scope, id } => {
            let v = api.call(
                post,
                &format!("{}/{}/secret", scope.path(), seg(&id)),
                &[],
                None,
            )?;
            emit(&api, &v, print_with_secret);
        }
    }
    Ok(())
}
