//! The User reconciler against the in-memory Kubernetes API and a real broker with a SASL
//! listener and the authorizer on: SCRAM logins with the credentials it sets, ACLs kept equal to
//! the spec, password rotation through the Secret, and cleanup on deletion.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use runnel_client::{Acl, Client, ClientConfig, SaslCredentials};
use runnel_operator::controller::{self, find_condition};
use runnel_operator::crd::{Cluster, User};
use serde_json::json;
use tokio::sync::mpsc;

use crate::harness::{broker_binary, cluster_spec, eventually, Env, NS};

/// One broker process with a PLAINTEXT listener (the operator's, as `User:ANONYMOUS`, a super
/// user) and a SASL_PLAINTEXT one (the users'), the authorizer on; killed on drop.
struct SecureBroker {
    child: Child,
    /// `host:port` of the PLAINTEXT listener.
    plaintext: String,
    /// `host:port` of the SASL_PLAINTEXT listener.
    sasl: String,
    _dir: tempfile::TempDir,
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_secure_broker() -> SecureBroker {
    let dir = tempfile::Builder::new()
        .prefix("runnel-user-broker-")
        .tempdir()
        .expect("tempdir");
    let config = dir.path().join("runnel.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\
             listeners = [\"PLAINTEXT://127.0.0.1:0\", \"SASL://127.0.0.1:0\"]\n\
             listener_security_protocol_map = [\"SASL:SASL_PLAINTEXT\"]\n\
             admin_listen = \"127.0.0.1:0\"\n\
             controller_listen = \"127.0.0.1:0\"\n\
             authorizer_enabled = true\n\
             super_users = [\"User:ANONYMOUS\"]\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.path().join("broker.log")).expect("log");
    let mut child = Command::new(broker_binary())
        .arg("--config")
        .arg(&config)
        .args(["--node-id", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start runnel-broker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        // Read to the end so the broker never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let (mut plaintext, mut sasl) = (None, None);
    let read = async {
        while plaintext.is_none() || sasl.is_none() {
            let Some(line) = rx.recv().await else { break };
            if let Some(rest) = line.strip_prefix("runnel-broker ready ") {
                plaintext = rest
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("kafka="))
                    .map(str::to_string);
            } else if let Some(rest) = line.strip_prefix("runnel-broker listener SASL address=") {
                sasl = Some(rest.trim().to_string());
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    SecureBroker {
        child,
        plaintext: plaintext.unwrap_or_else(|| panic!("no ready line; broker log:\n{log}")),
        sasl: sasl.unwrap_or_else(|| panic!("no SASL listener line; broker log:\n{log}")),
        _dir: dir,
    }
}

/// An Env with a Cluster `demo` whose bootstrap is the secure broker's PLAINTEXT listener.
async fn env_with_secure_broker() -> (Env, SecureBroker) {
    let env = Env::new();
    let broker = start_secure_broker().await;
    Api::<Cluster>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &Cluster::new("demo", cluster_spec(1)),
        )
        .await
        .expect("create Cluster");
    env.resolver.set(NS, "demo", broker.plaintext.clone());
    (env, broker)
}

fn users(env: &Env) -> Api<User> {
    Api::namespaced(env.client.clone(), NS)
}

fn secrets(env: &Env) -> Api<Secret> {
    Api::namespaced(env.client.clone(), NS)
}

async fn create_user(env: &Env, manifest: serde_json::Value) {
    let user: User = serde_json::from_value(manifest).expect("User manifest");
    users(env)
        .create(&PostParams::default(), &user)
        .await
        .expect("create User");
}

/// Reconciles the User `name` as the controller would: again right away when the first pass
/// only added the finalizer (the controller is woken by that write).
async fn reconcile_user(env: &Env, name: &str) {
    for _ in 0..2 {
        let Some(u) = users(env).get_opt(name).await.expect("get User") else {
            return;
        };
        let had_finalizer = u
            .finalizers()
            .iter()
            .any(|f| f == controller::user::USER_FINALIZER);
        controller::user::reconcile(Arc::new(u), env.ctx.clone())
            .await
            .expect("reconcile User");
        if had_finalizer {
            break;
        }
    }
}

async fn ready(env: &Env, name: &str) -> (String, String, String) {
    let u = users(env).get(name).await.expect("User");
    let status = u.status.expect("status written");
    let c = find_condition(&status.conditions, "Ready").expect("Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn secret_value(env: &Env, secret: &str, key: &str) -> String {
    let s = secrets(env).get(secret).await.expect("Secret");
    let bytes = s.data.expect("data").get(key).expect("key").0.clone();
    String::from_utf8(bytes).expect("utf-8")
}

/// Logs in on the SASL listener and asks for metadata: Ok when the broker accepts the login.
async fn login(addr: &str, mechanism: &str, user: &str, password: &str) -> Result<(), String> {
    let mut config = ClientConfig::new(addr);
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(10);
    config.sasl = Some(SaslCredentials {
        mechanism: mechanism.into(),
        username: user.into(),
        password: password.into(),
    });
    let client = Client::connect(config).await.map_err(|e| e.to_string())?;
    client
        .metadata(Some(&[]), false)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn admin(broker: &SecureBroker) -> Client {
    runnel_operator::kafka::connect(&broker.plaintext)
        .await
        .expect("connect")
}

fn all_of(principal: &str) -> Acl {
    Acl {
        resource_type: "ANY".into(),
        resource_name: None,
        pattern_type: "ANY".into(),
        principal: Some(principal.into()),
        host: None,
        operation: "ANY".into(),
        permission: "ANY".into(),
    }
}

fn acl(rt: &str, name: &str, pattern: &str, principal: &str, op: &str, perm: &str) -> Acl {
    Acl {
        resource_type: rt.into(),
        resource_name: Some(name.into()),
        pattern_type: pattern.into(),
        principal: Some(principal.into()),
        host: Some("*".into()),
        operation: op.into(),
        permission: perm.into(),
    }
}

/// The ACLs the broker holds for `principal`, in a stable order.
async fn acls_of(kafka: &Client, principal: &str) -> Vec<String> {
    let mut acls: Vec<String> = kafka
        .describe_acls(&all_of(principal))
        .await
        .expect("describe ACLs")
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} {} {}",
                a.permission,
                a.operation,
                a.pattern_type,
                a.resource_type,
                a.resource_name.as_deref().unwrap_or_default(),
                a.host.as_deref().unwrap_or_default()
            )
        })
        .collect();
    acls.sort();
    acls
}

fn alice() -> serde_json::Value {
    json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "User",
        "metadata": {"name": "alice"},
        "spec": {
            "cluster": "demo",
            "authentication": {"type": "scram-sha-512"},
            "acls": [
                {"resourceType": "topic", "name": "orders-", "patternType": "prefixed",
                 "operation": "read"},
                {"resourceType": "group", "name": "billing", "operation": "read"},
                {"resourceType": "topic", "name": "secret", "operation": "all",
                 "permissionType": "deny"},
            ],
        },
    })
}

const ALICE_ACLS: [&str; 3] = [
    "ALLOW READ LITERAL GROUP billing *",
    "ALLOW READ PREFIXED TOPIC orders- *",
    "DENY ALL LITERAL TOPIC secret *",
];

#[tokio::test]
async fn a_user_with_a_generated_password_logs_in_and_holds_exactly_its_acls() {
    let (env, broker) = env_with_secure_broker().await;
    create_user(&env, alice()).await;
    reconcile_user(&env, "alice").await;

    let (status, reason, message) = ready(&env, "alice").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "Synced"),
        "{message}"
    );
    let user = users(&env).get("alice").await.expect("User");
    let st = user.status.clone().expect("status");
    assert_eq!(st.observed_generation, user.metadata.generation);
    assert_eq!(st.principal.as_deref(), Some("User:alice"));
    assert_eq!(st.secret.as_deref(), Some("alice"));
    assert_eq!(st.acls, Some(3));

    // The generated Secret belongs to the User (deleted with it) and holds the password.
    let secret = secrets(&env).get("alice").await.expect("generated Secret");
    assert_eq!(
        secret.owner_references().first().map(|o| o.uid.clone()),
        user.uid()
    );
    let password = secret_value(&env, "alice", "password").await;
    assert_eq!(secret_value(&env, "alice", "username").await, "alice");
    assert!(password.len() >= 32, "a long random password");

    login(&broker.sasl, "SCRAM-SHA-512", "alice", &password)
        .await
        .expect("alice logs in with the generated password");
    assert!(
        login(&broker.sasl, "SCRAM-SHA-512", "alice", "wrong")
            .await
            .is_err(),
        "a wrong password is refused"
    );
    assert!(
        login(&broker.sasl, "SCRAM-SHA-256", "alice", &password)
            .await
            .is_err(),
        "only the spec's mechanism has a credential"
    );
    let kafka = admin(&broker).await;
    assert_eq!(acls_of(&kafka, "User:alice").await, ALICE_ACLS);

    // A second pass changes nothing and the password stays.
    reconcile_user(&env, "alice").await;
    assert_eq!(secret_value(&env, "alice", "password").await, password);
    login(&broker.sasl, "SCRAM-SHA-512", "alice", &password)
        .await
        .expect("still logs in");
    assert!(env
        .api
        .event_reasons(NS, "alice")
        .contains(&"CredentialCreated".to_string()));
    assert!(!env
        .api
        .event_reasons(NS, "alice")
        .contains(&"AclDriftReverted".to_string()));
}

#[tokio::test]
async fn acls_changed_with_another_tool_are_reverted_and_reported() {
    let (env, broker) = env_with_secure_broker().await;
    create_user(&env, alice()).await;
    reconcile_user(&env, "alice").await;
    let kafka = admin(&broker).await;
    assert_eq!(acls_of(&kafka, "User:alice").await, ALICE_ACLS);

    // Another tool grants alice WRITE on a topic and removes her group ACL.
    kafka
        .create_acls(&[acl(
            "TOPIC",
            "payments",
            "LITERAL",
            "User:alice",
            "WRITE",
            "ALLOW",
        )])
        .await
        .expect("out-of-band create");
    kafka
        .delete_acls(&acl(
            "GROUP",
            "billing",
            "LITERAL",
            "User:alice",
            "READ",
            "ALLOW",
        ))
        .await
        .expect("out-of-band delete");
    assert_ne!(acls_of(&kafka, "User:alice").await, ALICE_ACLS);
    // Another principal's ACLs are none of this User's business.
    kafka
        .create_acls(&[acl(
            "TOPIC", "payments", "LITERAL", "User:bob", "WRITE", "ALLOW",
        )])
        .await
        .expect("bob's ACL");

    reconcile_user(&env, "alice").await;
    assert_eq!(acls_of(&kafka, "User:alice").await, ALICE_ACLS);
    assert_eq!(
        acls_of(&kafka, "User:bob").await,
        ["ALLOW WRITE LITERAL TOPIC payments *"]
    );
    assert!(env
        .api
        .event_reasons(NS, "alice")
        .contains(&"AclDriftReverted".to_string()));

    // Dropping an ACL from the spec removes it from the broker.
    users(&env)
        .patch(
            "alice",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"acls": [
                {"resourceType": "group", "name": "billing", "operation": "read"},
            ]}})),
        )
        .await
        .expect("patch User");
    reconcile_user(&env, "alice").await;
    assert_eq!(
        acls_of(&kafka, "User:alice").await,
        ["ALLOW READ LITERAL GROUP billing *"]
    );
    assert_eq!(ready(&env, "alice").await.0, "True");
}

#[tokio::test]
async fn a_changed_password_secret_is_applied_and_the_old_password_stops_working() {
    let (env, broker) = env_with_secure_broker().await;
    secrets(&env)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "carol-password"},
                "data": {"pw": "Zmlyc3QtcGFzc3dvcmQ="},
            }))
            .expect("Secret"),
        )
        .await
        .expect("create Secret");
    create_user(
        &env,
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "User",
            "metadata": {"name": "carol"},
            "spec": {
                "cluster": "demo",
                "authentication": {"type": "scram-sha-256", "password": {
                    "secretKeyRef": {"name": "carol-password", "key": "pw"}}},
            },
        }),
    )
    .await;
    reconcile_user(&env, "carol").await;
    assert_eq!(ready(&env, "carol").await.0, "True");
    login(&broker.sasl, "SCRAM-SHA-256", "carol", "first-password")
        .await
        .expect("carol logs in with the Secret's password");
    assert!(
        secrets(&env).get_opt("carol").await.expect("get").is_none(),
        "no Secret is generated when the spec names one"
    );

    secrets(&env)
        .patch(
            "carol-password",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"pw": ByteString(b"second-password".to_vec())}})),
        )
        .await
        .expect("rotate the password");
    reconcile_user(&env, "carol").await;
    login(&broker.sasl, "SCRAM-SHA-256", "carol", "second-password")
        .await
        .expect("the new password works");
    assert!(
        login(&broker.sasl, "SCRAM-SHA-256", "carol", "first-password")
            .await
            .is_err(),
        "the old password is refused"
    );
    assert!(env
        .api
        .event_reasons(NS, "carol")
        .contains(&"PasswordChanged".to_string()));

    // A Secret that goes away is reported; the credential on the broker stays as it was.
    secrets(&env)
        .delete("carol-password", &DeleteParams::default())
        .await
        .expect("delete Secret");
    reconcile_user(&env, "carol").await;
    let (status, reason, _) = ready(&env, "carol").await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotFound")
    );
}

#[tokio::test]
async fn deleting_a_user_removes_its_credential_and_acls() {
    let (env, broker) = env_with_secure_broker().await;
    create_user(&env, alice()).await;
    reconcile_user(&env, "alice").await;
    let password = secret_value(&env, "alice", "password").await;
    let kafka = admin(&broker).await;
    assert_eq!(acls_of(&kafka, "User:alice").await.len(), 3);

    users(&env)
        .delete("alice", &DeleteParams::default())
        .await
        .expect("delete User");
    // The finalizer keeps the object until the reconciler has cleaned up.
    reconcile_user(&env, "alice").await;
    eventually(10, "the User to be gone", || async {
        users(&env)
            .get_opt("alice")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(acls_of(&kafka, "User:alice").await.is_empty());
    assert!(kafka
        .describe_scram_users(&[])
        .await
        .expect("describe users")
        .iter()
        .all(|u| u.name != "alice"));
    assert!(
        login(&broker.sasl, "SCRAM-SHA-512", "alice", &password)
            .await
            .is_err(),
        "the deleted user cannot log in"
    );
    eventually(10, "the generated Secret to be collected", || async {
        secrets(&env)
            .get_opt("alice")
            .await
            .expect("get")
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_api_refuses_an_unknown_acl_operation() {
    let env = Env::new();
    let mut manifest = alice();
    manifest["metadata"]["namespace"] = json!(NS);
    manifest["spec"]["acls"] = json!([
        {"resourceType": "topic", "name": "orders", "operation": "fly"},
    ]);
    assert!(
        serde_json::from_value::<User>(manifest.clone()).is_err(),
        "the Rust type knows no operation fly"
    );
    // Sent as any other client would send it: the CRD's schema refuses it.
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), NS, &ApiResource::erase::<User>(&()));
    let obj: DynamicObject = serde_json::from_value(manifest).expect("object");
    let err = api
        .create(&PostParams::default(), &obj)
        .await
        .expect_err("an unknown operation is refused");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("fly")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_running_operator_applies_a_changed_password_secret_without_waiting_for_resync() {
    let (env, broker) = env_with_secure_broker().await;
    let config = runnel_operator::run::RunConfig {
        namespaces: vec![],
        leader_election: None,
        broker_image: None,
        service_monitors: false,
        rack_cluster_role: None,
        // Far beyond the deadlines below: only the Secret watch can bring the change in time.
        resync: Duration::from_secs(600),
        resolver: env.resolver.clone(),
        instance: Some("operator-a".into()),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(runnel_operator::run::run(
        env.operator.clone(),
        config,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    secrets(&env)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "dave-password"},
                "data": {"pw": ByteString(b"first-password".to_vec())},
            }))
            .expect("Secret"),
        )
        .await
        .expect("create Secret");
    create_user(
        &env,
        json!({
            "apiVersion": "runnel.dev/v1alpha1",
            "kind": "User",
            "metadata": {"name": "dave"},
            "spec": {
                "cluster": "demo",
                "authentication": {"type": "scram-sha-512", "password": {
                    "secretKeyRef": {"name": "dave-password", "key": "pw"}}},
            },
        }),
    )
    .await;
    let sasl = broker.sasl.clone();
    eventually(30, "dave to log in with the first password", || async {
        login(&sasl, "SCRAM-SHA-512", "dave", "first-password")
            .await
            .ok()
    })
    .await;
    secrets(&env)
        .patch(
            "dave-password",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"pw": ByteString(b"second-password".to_vec())}})),
        )
        .await
        .expect("rotate the password");
    eventually(30, "the second password to work", || async {
        login(&sasl, "SCRAM-SHA-512", "dave", "second-password")
            .await
            .ok()
    })
    .await;
    assert!(login(&sasl, "SCRAM-SHA-512", "dave", "first-password")
        .await
        .is_err());
    stop.send(()).expect("operator running");
    operator.await.expect("join").expect("clean shutdown");
}
