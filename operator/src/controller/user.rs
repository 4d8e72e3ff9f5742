//! The User reconciler: brings a principal's SCRAM credential and ACLs on a Cluster's brokers to
//! its `User` spec through the Kafka admin API (AlterUserScramCredentials, Create/Describe/
//! DeleteAcls), generates a password into a Secret owned by the User when the spec names none,
//! sets the password again when its Secret changes, reverts and reports ACL drift, and removes
//! the credential and the ACLs behind a finalizer when the User is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Resource, ResourceExt};
use runnel_client::scram::{random_bytes, ScramHash};
use runnel_client::{Acl, Client, ResponseError, ScramChange};

use super::{condition_changed, find_condition, now, resync, write_status, Context};
use crate::crd::{AppliedCredential, AuthenticationType, User, UserSpec, UserStatus};
use crate::kafka::kafka_err;
use crate::status::condition;
use crate::Error;

/// Finalizer that keeps a deleted `User` until its credential and ACLs are removed.
pub const USER_FINALIZER: &str = "runnel.dev/user-cleanup";

/// Key of the generated Secret holding the password.
pub const PASSWORD_KEY: &str = "password";
/// Key of the generated Secret holding the user name.
pub const USERNAME_KEY: &str = "username";

/// PBKDF2 iterations of the credentials the operator sets (Kafka's default and minimum).
const SCRAM_ITERATIONS: i32 = 4096;
/// Characters of a generated password (64 symbols, so each random byte maps without bias).
const PASSWORD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Length of a generated password (32 characters of 6 bits: 192 random bits).
const PASSWORD_LEN: usize = 32;

/// The principal the brokers know a user as: `User:<name>` after a SASL login, and for a TLS
/// client the certificate's subject in RFC 2253 form (broker/server/src/tls.rs
/// `subject_name`), which is `User:CN=<name>` for a certificate whose subject is only that CN.
pub fn principal(spec: &UserSpec, name: &str) -> String {
    match spec.authentication.type_ {
        AuthenticationType::Tls => format!("User:CN={name}"),
        AuthenticationType::ScramSha256 | AuthenticationType::ScramSha512 => format!("User:{name}"),
    }
}

/// The SCRAM hash of a user's mechanism (None for tls users).
pub fn scram_hash(spec: &UserSpec) -> Option<ScramHash> {
    match spec.authentication.type_ {
        AuthenticationType::ScramSha256 => Some(ScramHash::Sha256),
        AuthenticationType::ScramSha512 => Some(ScramHash::Sha512),
        AuthenticationType::Tls => None,
    }
}

/// The ACLs the spec asks for, as the brokers describe them (Kafka's names, principal set).
pub fn desired_acls(spec: &UserSpec, principal: &str) -> Vec<Acl> {
    let mut acls: Vec<Acl> = spec
        .acls
        .iter()
        .map(|rule| Acl {
            resource_type: rule.resource_type.kafka_name().to_string(),
            resource_name: Some(
                rule.name
                    .clone()
                    .unwrap_or_else(|| "kafka-cluster".to_string()),
            ),
            pattern_type: rule.pattern_type.kafka_name().to_string(),
            principal: Some(principal.to_string()),
            host: Some(rule.host.clone()),
            operation: rule.operation.kafka_name().to_string(),
            permission: rule.permission_type.kafka_name().to_string(),
        })
        .collect();
    acls.sort_by_key(acl_key);
    acls.dedup();
    acls
}

fn acl_key(acl: &Acl) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        acl.resource_type,
        acl.resource_name.as_deref().unwrap_or_default(),
        acl.pattern_type,
        acl.principal.as_deref().unwrap_or_default(),
        acl.host.as_deref().unwrap_or_default(),
        acl.operation,
        acl.permission
    )
}

/// What to create and delete so the brokers hold exactly `desired`: (to create, to delete).
pub fn acl_changes(desired: &[Acl], observed: &[Acl]) -> (Vec<Acl>, Vec<Acl>) {
    let create = desired
        .iter()
        .filter(|a| !observed.contains(a))
        .cloned()
        .collect();
    let delete = observed
        .iter()
        .filter(|a| !desired.contains(a))
        .cloned()
        .collect();
    (create, delete)
}

/// A filter matching every ACL of `principal`.
fn principal_filter(principal: &str) -> Acl {
    Acl {
        resource_type: "ANY".into(),
        resource_name: None,
        pattern_type: "ANY".into(),
        principal: Some(principal.to_string()),
        host: None,
        operation: "ANY".into(),
        permission: "ANY".into(),
    }
}

/// A random password from [`PASSWORD_ALPHABET`] (also the operator credentials' password).
pub(crate) fn generate_password() -> Result<String, Error> {
    let bytes = random_bytes(PASSWORD_LEN).map_err(|reason| Error::Local {
        what: "generate a password".into(),
        reason,
    })?;
    Ok(bytes
        .iter()
        .map(|b| char::from(PASSWORD_ALPHABET[usize::from(b & 63)]))
        .collect())
}

/// Reconciles one User (the `Controller` entry point, also called directly by tests).
#[tracing::instrument(skip_all, fields(user = %user.name_any(), ns = user.namespace()))]
pub async fn reconcile(user: Arc<User>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile("User");
    let ns = user.namespace().ok_or(Error::MissingMetadata {
        kind: "User",
        field: "namespace",
    })?;
    let api: Api<User> = Api::namespaced(ctx.client.clone(), &ns);
    let obj = user.clone();
    let result = finalizer(&api, USER_FINALIZER, user, |event| async {
        match event {
            FinalizerEvent::Apply(u) => apply(&u, &ctx).await,
            FinalizerEvent::Cleanup(u) => cleanup(&u, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.finished(obj.as_ref(), result.is_ok());
    result
}

/// Why the spec cannot be applied now (reported in the Ready condition, retried on resync).
struct Problem {
    reason: &'static str,
    message: String,
}

/// The password of a SCRAM user and where it came from.
struct Password {
    value: String,
    applied: AppliedCredential,
}

/// Reads the user's password: from the Secret key the spec names, or from the Secret the
/// operator generated (created now, owned by the User, when it does not exist yet).
async fn password(
    user: &User,
    hash: ScramHash,
    ctx: &Context,
) -> Result<Result<Password, Problem>, Error> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let kube_err = |what: String| move |source| Error::Kube { what, source };
    let (secret_name, key, secret) = match &user.spec.authentication.password {
        Some(source) => {
            let r = &source.secret_key_ref;
            let secret = secrets
                .get_opt(&r.name)
                .await
                .map_err(kube_err(format!("get Secret {ns}/{}", r.name)))?;
            let Some(secret) = secret else {
                return Ok(Err(Problem {
                    reason: "SecretNotFound",
                    message: format!("Secret {} does not exist", r.name),
                }));
            };
            (r.name.clone(), r.key.clone(), secret)
        }
        None => {
            let existing = secrets
                .get_opt(&name)
                .await
                .map_err(kube_err(format!("get Secret {ns}/{name}")))?;
            let secret = match existing {
                Some(secret) => {
                    let uid = user.uid();
                    let owned = secret
                        .owner_references()
                        .iter()
                        .any(|o| Some(&o.uid) == uid.as_ref());
                    if !owned {
                        return Ok(Err(Problem {
                            reason: "SecretConflict",
                            message: format!(
                                "Secret {name} exists and is not owned by this User; name a \
                                 password Secret in spec.authentication.password or remove it"
                            ),
                        }));
                    }
                    secret
                }
                None => {
                    let owner = user
                        .controller_owner_ref(&())
                        .ok_or(Error::MissingMetadata {
                            kind: "User",
                            field: "uid",
                        })?;
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(name.clone()),
                            namespace: Some(ns.clone()),
                            labels: Some(BTreeMap::from([
                                (
                                    "app.kubernetes.io/managed-by".into(),
                                    "runnel-operator".into(),
                                ),
                                ("runnel.dev/user".into(), name.clone()),
                            ])),
                            owner_references: Some(vec![owner]),
                            ..ObjectMeta::default()
                        },
                        type_: Some("Opaque".into()),
                        data: Some(BTreeMap::from([
                            (
                                USERNAME_KEY.to_string(),
                                ByteString(name.clone().into_bytes()),
                            ),
                            (
                                PASSWORD_KEY.to_string(),
                                ByteString(generate_password()?.into_bytes()),
                            ),
                        ])),
                        ..Secret::default()
                    };
                    let created = secrets
                        .create(&PostParams::default(), &secret)
                        .await
                        .map_err(kube_err(format!("create Secret {ns}/{name}")))?;
                    ctx.event(
                        user,
                        EventType::Normal,
                        "PasswordGenerated",
                        "Reconcile",
                        format!("generated a password into Secret {name}"),
                    )
                    .await;
                    created
                }
            };
            (name.clone(), PASSWORD_KEY.to_string(), secret)
        }
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&key))
                .map(|s| s.trim().to_string())
        });
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Ok(Err(Problem {
            reason: "SecretKeyNotFound",
            message: format!("Secret {secret_name} has no non-empty key {key}"),
        }));
    };
    Ok(Ok(Password {
        value,
        applied: AppliedCredential {
            mechanism: hash.mechanism().to_string(),
            secret: secret_name,
            key,
            resource_version: secret.resource_version().unwrap_or_default(),
        },
    }))
}

/// The SCRAM mechanisms the brokers hold a credential of for `name`.
async fn scram_mechanisms(client: &Client, name: &str) -> Result<Vec<String>, Error> {
    match client.describe_scram_users(&[name.to_string()]).await {
        Ok(users) => Ok(users
            .into_iter()
            .filter(|u| u.name == name)
            .flat_map(|u| u.credentials.into_iter().map(|(m, _)| m))
            .collect()),
        Err(e) if e.kafka_error() == Some(ResponseError::ResourceNotFound) => Ok(Vec::new()),
        Err(e) => Err(kafka_err(format!("describe SCRAM credentials of {name}"))(
            e,
        )),
    }
}

/// Deletes `name`'s credentials of `mechanisms`.
async fn delete_scram(client: &Client, name: &str, mechanisms: &[String]) -> Result<(), Error> {
    let changes: Vec<ScramChange> = mechanisms
        .iter()
        .filter_map(|m| ScramHash::from_mechanism(m))
        .map(|hash| ScramChange::Delete {
            user: name.to_string(),
            hash,
        })
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    match client.alter_scram_users(&changes).await {
        Ok(()) => Ok(()),
        Err(e) if e.kafka_error() == Some(ResponseError::ResourceNotFound) => Ok(()),
        Err(e) => Err(kafka_err(format!("delete SCRAM credentials of {name}"))(e)),
    }
}

/// The ACLs the brokers hold for `principal`; None when the authorizer is off.
async fn observed_acls(client: &Client, principal: &str) -> Result<Option<Vec<Acl>>, Error> {
    match client.describe_acls(&principal_filter(principal)).await {
        Ok(mut acls) => {
            acls.sort_by_key(acl_key);
            Ok(Some(acls))
        }
        Err(e) if e.kafka_error() == Some(ResponseError::SecurityDisabled) => Ok(None),
        Err(e) => Err(kafka_err(format!("describe ACLs of {principal}"))(e)),
    }
}

/// Deletes exactly `acl` (a filter naming every field matches only that ACL).
async fn delete_acl(client: &Client, acl: &Acl) -> Result<(), Error> {
    client
        .delete_acls(acl)
        .await
        .map(|_| ())
        .map_err(kafka_err(format!("delete ACL {acl:?}")))
}

fn describe(acl: &Acl) -> String {
    format!(
        "{} {} on {} {} {}",
        acl.permission,
        acl.operation,
        acl.pattern_type,
        acl.resource_type,
        acl.resource_name.as_deref().unwrap_or_default()
    )
}

async fn apply(user: &User, ctx: &Context) -> Result<Action, Error> {
    let name = user.name_any();
    let ns = user.namespace().unwrap_or_default();
    let previous = user.status.clone().unwrap_or_default();
    let generation = user.metadata.generation;
    let now = now();
    let principal = principal(&user.spec, &name);
    let hash = scram_hash(&user.spec);

    let write = |ready: bool, reason: &'static str, message: String, status: UserStatus| {
        let ready = condition(
            &previous.conditions,
            "Ready",
            ready,
            reason,
            message,
            generation,
            &now,
        );
        UserStatus {
            conditions: vec![ready],
            ..status
        }
    };

    let cluster_name = &user.spec.cluster;
    let Some(cluster) = ctx.cluster(&ns, cluster_name).await? else {
        let message = format!("Cluster {cluster_name} does not exist in namespace {ns}");
        let status = write(
            false,
            "ClusterNotFound",
            message.clone(),
            UserStatus {
                observed_generation: generation,
                ..previous.clone()
            },
        );
        if condition_changed(&previous.conditions, &status.conditions[0]) {
            ctx.event(
                user,
                EventType::Warning,
                "ClusterNotFound",
                "Reconcile",
                message,
            )
            .await;
        }
        write_status(&ctx.client, user, &status).await?;
        return Ok(resync(ctx));
    };

    let password = match hash {
        Some(hash) => match password(user, hash, ctx).await? {
            Ok(p) => Some(p),
            Err(Problem { reason, message }) => {
                let status = write(
                    false,
                    reason,
                    message.clone(),
                    UserStatus {
                        observed_generation: generation,
                        ..previous.clone()
                    },
                );
                if condition_changed(&previous.conditions, &status.conditions[0]) {
                    ctx.event(user, EventType::Warning, reason, "Reconcile", message)
                        .await;
                }
                write_status(&ctx.client, user, &status).await?;
                return Ok(resync(ctx));
            }
        },
        None => None,
    };

    let client = match ctx.kafka(&cluster).await {
        Ok(client) => client,
        Err(err) => {
            let status = write(
                false,
                "BrokersUnreachable",
                err.to_string(),
                previous.clone(),
            );
            write_status(&ctx.client, user, &status).await?;
            return Err(err);
        }
    };

    // SCRAM credential: exactly the spec's mechanism, set again when its Secret changed.
    let mechanisms = scram_mechanisms(&client, &name).await?;
    let wanted = hash.map(|h| h.mechanism().to_string());
    let extra: Vec<String> = mechanisms
        .iter()
        .filter(|m| Some(*m) != wanted.as_ref())
        .cloned()
        .collect();
    delete_scram(&client, &name, &extra).await?;
    let mut credential = None;
    if let (Some(hash), Some(password)) = (hash, password) {
        let present = mechanisms.iter().any(|m| m == hash.mechanism());
        let current = previous.credential.as_ref() == Some(&password.applied);
        if !present || !current {
            client
                .alter_scram_users(&[ScramChange::Upsert {
                    user: name.clone(),
                    hash,
                    password: password.value.clone(),
                    iterations: SCRAM_ITERATIONS,
                }])
                .await
                .map_err(kafka_err(format!("set SCRAM credential of {name}")))?;
            let (reason, note) = match (&previous.credential, present) {
                (Some(_), true) => (
                    "PasswordChanged",
                    format!(
                        "set the {} password of {name} again from Secret {}",
                        hash.mechanism(),
                        password.applied.secret
                    ),
                ),
                (Some(_), false) => (
                    "CredentialRecreated",
                    format!(
                        "the {} credential of {name} was missing on the brokers; set it again",
                        hash.mechanism()
                    ),
                ),
                (None, _) => (
                    "CredentialCreated",
                    format!("set the {} credential of {name}", hash.mechanism()),
                ),
            };
            let type_ = if reason == "CredentialRecreated" {
                EventType::Warning
            } else {
                EventType::Normal
            };
            ctx.event(user, type_, reason, "Reconcile", note).await;
        }
        credential = Some(password.applied);
    }

    // ACLs: the brokers hold exactly the spec's for the principal.
    let desired = desired_acls(&user.spec, &principal);
    if let Some(old) = previous.principal.as_ref().filter(|p| **p != principal) {
        // The authentication type changed: the old principal's ACLs go.
        if let Some(acls) = observed_acls(&client, old).await? {
            for acl in &acls {
                delete_acl(&client, acl).await?;
            }
        }
    }
    let mut problem = None;
    let mut acl_count = None;
    match observed_acls(&client, &principal).await? {
        None if desired.is_empty() => {}
        None => {
            problem = Some(Problem {
                reason: "AuthorizerDisabled",
                message: format!(
                    "Cluster {cluster_name} has authorizer_enabled off: its brokers keep no ACLs"
                ),
            });
        }
        Some(observed) => {
            let (create, delete) = acl_changes(&desired, &observed);
            let was_synced = previous.observed_generation == generation
                && find_condition(&previous.conditions, "Ready")
                    .is_some_and(|c| c.status == "True");
            for acl in &delete {
                delete_acl(&client, acl).await?;
            }
            if !create.is_empty() {
                client
                    .create_acls(&create)
                    .await
                    .map_err(kafka_err(format!("create ACLs of {principal}")))?;
            }
            if !create.is_empty() || !delete.is_empty() {
                let list = |acls: &[Acl]| acls.iter().map(describe).collect::<Vec<_>>().join(", ");
                let mut changes = Vec::new();
                if !create.is_empty() {
                    changes.push(format!("added {}", list(&create)));
                }
                if !delete.is_empty() {
                    changes.push(format!("removed {}", list(&delete)));
                }
                let (type_, reason, note) = if was_synced {
                    (
                        EventType::Warning,
                        "AclDriftReverted",
                        format!(
                            "ACLs of {principal} were changed outside the operator; {}",
                            changes.join("; ")
                        ),
                    )
                } else {
                    (
                        EventType::Normal,
                        "AclsUpdated",
                        format!("ACLs of {principal}: {}", changes.join("; ")),
                    )
                };
                ctx.event(user, type_, reason, "Reconcile", note).await;
            }
            acl_count = Some(i32::try_from(desired.len()).unwrap_or(i32::MAX));
        }
    }

    let (ready, reason, message) = match &problem {
        Some(p) => (false, p.reason, p.message.clone()),
        None => (
            true,
            "Synced",
            format!("{principal} has the spec's credential and ACLs"),
        ),
    };
    let status = write(
        ready,
        reason,
        message.clone(),
        UserStatus {
            conditions: Vec::new(),
            observed_generation: generation,
            principal: Some(principal),
            secret: credential.as_ref().map(|c| c.secret.clone()),
            credential,
            acls: acl_count,
        },
    );
    if problem.is_some() && condition_changed(&previous.conditions, &status.conditions[0]) {
        ctx.event(user, EventType::Warning, reason, "Reconcile", message)
            .await;
    }
    write_status(&ctx.client, user, &status).await?;
    Ok(resync(ctx))
}

async fn cleanup(user: &User, ctx: &Context) -> Result<Action, Error> {
    let name = user.name_any();
    let ns = user.namespace().unwrap_or_default();
    let Some(cluster) = ctx.cluster(&ns, &user.spec.cluster).await? else {
        // Without its Cluster there are no brokers left to remove the user from.
        return Ok(Action::await_change());
    };
    let client = ctx.kafka(&cluster).await?;
    let mechanisms = scram_mechanisms(&client, &name).await?;
    delete_scram(&client, &name, &mechanisms).await?;
    let mut principals = vec![principal(&user.spec, &name)];
    if let Some(p) = user.status.as_ref().and_then(|s| s.principal.clone()) {
        if !principals.contains(&p) {
            principals.push(p);
        }
    }
    let mut removed = 0;
    for p in &principals {
        if let Some(acls) = observed_acls(&client, p).await? {
            for acl in &acls {
                delete_acl(&client, acl).await?;
            }
            removed += acls.len();
        }
    }
    ctx.event(
        user,
        EventType::Normal,
        "UserDeleted",
        "Delete",
        format!(
            "removed the SCRAM credentials of {name} ({}) and {removed} ACLs",
            if mechanisms.is_empty() {
                "none".to_string()
            } else {
                mechanisms.join(", ")
            }
        ),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{
        AclOperation, AclPatternType, AclPermission, AclResourceType, AclRule, UserAuthentication,
    };

    fn spec(type_: AuthenticationType, acls: Vec<AclRule>) -> UserSpec {
        UserSpec {
            cluster: "demo".into(),
            authentication: UserAuthentication {
                type_,
                password: None,
            },
            acls,
        }
    }

    fn rule(rt: AclResourceType, name: Option<&str>, op: AclOperation) -> AclRule {
        AclRule {
            resource_type: rt,
            name: name.map(str::to_string),
            pattern_type: AclPatternType::Literal,
            operation: op,
            host: "*".into(),
            permission_type: AclPermission::Allow,
        }
    }

    #[test]
    fn scram_users_are_named_by_their_name_and_tls_users_by_their_subject() {
        let s = spec(AuthenticationType::ScramSha512, vec![]);
        assert_eq!(principal(&s, "alice"), "User:alice");
        assert_eq!(scram_hash(&s), Some(ScramHash::Sha512));
        let t = spec(AuthenticationType::Tls, vec![]);
        assert_eq!(principal(&t, "alice"), "User:CN=alice");
        assert_eq!(scram_hash(&t), None);
    }

    #[test]
    fn desired_acls_use_kafka_names_and_the_cluster_resource_name() {
        let s = spec(
            AuthenticationType::ScramSha256,
            vec![
                rule(AclResourceType::Topic, Some("orders"), AclOperation::Read),
                rule(
                    AclResourceType::Cluster,
                    None,
                    AclOperation::IdempotentWrite,
                ),
                rule(AclResourceType::Topic, Some("orders"), AclOperation::Read),
            ],
        );
        let acls = desired_acls(&s, "User:alice");
        assert_eq!(acls.len(), 2, "duplicates collapse: {acls:?}");
        assert!(acls.iter().any(|a| a.resource_type == "CLUSTER"
            && a.resource_name.as_deref() == Some("kafka-cluster")
            && a.operation == "IDEMPOTENT_WRITE"));
        assert!(acls
            .iter()
            .all(|a| a.principal.as_deref() == Some("User:alice")
                && a.host.as_deref() == Some("*")
                && a.permission == "ALLOW"));
    }

    #[test]
    fn acl_changes_create_the_missing_and_delete_the_extra() {
        let s = spec(
            AuthenticationType::ScramSha256,
            vec![
                rule(AclResourceType::Topic, Some("a"), AclOperation::Read),
                rule(AclResourceType::Group, Some("g"), AclOperation::Read),
            ],
        );
        let desired = desired_acls(&s, "User:u");
        let extra = desired_acls(
            &spec(
                AuthenticationType::ScramSha256,
                vec![rule(AclResourceType::Topic, Some("a"), AclOperation::Write)],
            ),
            "User:u",
        );
        let observed = vec![desired[0].clone(), extra[0].clone()];
        let (create, delete) = acl_changes(&desired, &observed);
        assert_eq!(create, vec![desired[1].clone()]);
        assert_eq!(delete, extra);
        assert_eq!(acl_changes(&desired, &desired), (vec![], vec![]));
    }

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let a = generate_password().expect("random");
        let b = generate_password().expect("random");
        assert_eq!(a.len(), PASSWORD_LEN);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
    }
}
