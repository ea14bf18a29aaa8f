//! Identity: who may use the registry and what they did. Users
//! (argon2id password hashes), their roles on namespaces, scoped tokens
//! (robot accounts / API keys, stored hashed), the key that signs bearer
//! tokens, and the audit log.
//!
//! Nothing here decides who may do what: the server owns the policy. This
//! part stores the facts and verifies secrets, in constant time.
//!
//! Tables owned (keys in `crate::layout::keys`): `users`, `grants`,
//! `tokens`, `secrets`, `audit`.

mod audit;
mod grants;
mod signing_keys;
mod tokens;
mod users;

pub use audit::{truncate, AuditEntry, MAX_AUDIT_FIELD};
pub use grants::{Grant, GrantRecord, NamespaceAccess, Role};
pub use signing_keys::{SigningKey, SigningKeys};
pub use tokens::{
    glob_match, Action, TokenCheck, TokenInfo, TokenRecord, TokenScope, TOKEN_PREFIX,
};
pub use users::{validate_password, validate_user_name, PasswordMemory, UserInfo};

use crate::error::{Error, Result};

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source works");
    b
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Registry;

    #[tokio::test]
    async fn users_tokens_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(crate::StoreConfig::new(dir.path()))
            .await
            .unwrap();
        let u = reg
            .user_create("alice", "correct horse", false)
            .await
            .unwrap();
        assert!(!u.admin);
        assert!(matches!(
            reg.user_create("alice", "another one", false).await,
            Err(Error::Exists { .. })
        ));
        assert!(reg
            .user_verify("alice", "correct horse")
            .await
            .unwrap()
            .is_some());
        assert!(reg
            .user_verify("alice", "wrong horse")
            .await
            .unwrap()
            .is_none());
        assert!(reg
            .user_verify("bob", "correct horse")
            .await
            .unwrap()
            .is_none());
        let u2 = reg
            .user_set_password("alice", "battery staple")
            .await
            .unwrap();
        assert_ne!(u.secret_version, u2.secret_version);
        assert!(reg
            .user_verify("alice", "correct horse")
            .await
            .unwrap()
            .is_none());

        reg.namespace_create("acme", "", "", false).await.unwrap();
        reg.grant("acme", "alice", Role::Writer, "root")
            .await
            .unwrap();
        assert_eq!(
            reg.role_of("alice", "acme").await.unwrap(),
            Some(Role::Writer)
        );
        reg.user_delete("alice").await.unwrap();
        assert_eq!(reg.role_of("alice", "acme").await.unwrap(), None);

        let (t, secret) = reg
            .token_create(
                "ci",
                vec![TokenScope {
                    repository: "acme/*".into(),
                    actions: vec![Action::Pull],
                }],
                None,
                "root",
            )
            .await
            .unwrap();
        assert!(secret.starts_with("berth_"));
        assert!(!reg
            .token(&t.id)
            .await
            .unwrap()
            .record
            .secret_sha256
            .contains(&secret));
        match reg.token_verify(&secret).await.unwrap() {
            TokenCheck::Valid(i) => {
                assert!(i.allows("acme/web", Action::Pull));
                assert!(!i.allows("acme/web", Action::Push));
                assert!(!i.allows("other/web", Action::Pull));
            }
            other => panic!("{other:?}"),
        }
        assert!(reg
            .token(&t.id)
            .await
            .unwrap()
            .record
            .last_used_at
            .is_some());
        let mut wrong = secret.clone();
        wrong.pop();
        wrong.push('x');
        assert!(matches!(
            reg.token_verify(&wrong).await.unwrap(),
            TokenCheck::Invalid
        ));
        reg.token_delete(&t.id).await.unwrap();
        assert!(matches!(
            reg.token_verify(&secret).await.unwrap(),
            TokenCheck::Invalid
        ));

        let k1 = reg.signing_keys().await.unwrap();
        assert_eq!(
            reg.signing_keys().await.unwrap().current.kid,
            k1.current.kid
        );
        let k2 = reg.signing_key_rotate().await.unwrap();
        assert_ne!(k2.current.kid, k1.current.kid);
        assert_eq!(k2.previous.unwrap().kid, k1.current.kid);

        for i in 0..3 {
            reg.audit(&AuditEntry {
                at: 1000 + i,
                actor: "a".into(),
                action: format!("act{i}"),
                target: "t".into(),
                address: "127.0.0.1".into(),
                detail: String::new(),
            })
            .await
            .unwrap();
        }
        let (page, total) = reg.audit_page(0, 2).await.unwrap();
        assert_eq!(total, 3);
        assert_eq!(page[0].action, "act2");
        assert_eq!(page[1].action, "act1");
    }
}
