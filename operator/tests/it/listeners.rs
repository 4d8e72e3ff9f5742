//! `Cluster.spec.listeners` against the in-memory Kubernetes API and a real broker: what the
//! Cluster reconciler renders (ConfigMap keys, StatefulSet ports and environment, Services of
//! each listener's type, the operator credentials Secret), and a broker started from that
//! rendered `runnel.toml` that serves the SASL listeners, created the operator's user from the
//! mounted password, and is managed by the operator through it (a User reconciled over SASL).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Api, PostParams};
use runnel_client::{Client, ClientConfig, SaslCredentials};
use runnel_operator::controller::{self, find_condition};
use runnel_operator::crd::{Cluster, User};
use serde_json::json;
use tokio::sync::mpsc;

use crate::harness::{broker_binary, eventually, sts_name, Env, NS};

fn listeners_cluster() -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "secure"},
        "spec": {
            "replicas": 2,
            "storage": {"size": "1Gi"},
            "config": {"authorizer_enabled": "true"},
            "listeners": [
                {"name": "internal", "port": 9094, "authentication": "scram-sha-512"},
                {"name": "apps", "port": 9096, "type": "cluster-ip",
                 "authentication": "scram-sha-256"},
                {"name": "external", "port": 9095, "type": "loadbalancer", "tls": true,
                 "authentication": "tls", "certificate": {"secretName": "kafka-tls"},
                 "advertisedHostTemplate": "b{ordinal}.kafka.example.com"},
            ],
        },
    }))
    .expect("Cluster manifest")
}

/// Creates the Cluster and runs one reconcile pass (no broker runs yet, so the pass may end
/// in an error once the objects are applied).
async fn render(env: &Env) -> Cluster {
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api
        .create(&PostParams::default(), &listeners_cluster())
        .await
        .expect("create Cluster");
    let _ = controller::cluster::reconcile(Arc::new(c), env.ctx.clone()).await;
    api.get("secure").await.expect("Cluster")
}

async fn config_toml(env: &Env) -> String {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .get("secure-config")
        .await
        .expect("ConfigMap");
    cm.data.expect("data")["runnel.toml"].clone()
}

async fn operator_password(env: &Env) -> String {
    let s = Api::<Secret>::namespaced(env.client.clone(), NS)
        .get("secure-operator-credentials")
        .await
        .expect("operator credentials Secret");
    String::from_utf8(s.data.expect("data")["password"].0.clone()).expect("utf-8")
}

#[tokio::test]
async fn listeners_render_config_ports_services_and_the_operator_credentials() {
    let env = Env::new();
    let cluster = render(&env).await;
    let toml = config_toml(&env).await;
    for line in [
        "listeners = [\"REPLICATION://0.0.0.0:9092\", \"INTERNAL://0.0.0.0:9094\", \
         \"APPS://0.0.0.0:9096\", \"EXTERNAL://0.0.0.0:9095\"]",
        "listener_security_protocol_map = [\"REPLICATION:SASL_PLAINTEXT\", \
         \"INTERNAL:SASL_PLAINTEXT\", \"APPS:SASL_PLAINTEXT\", \"EXTERNAL:SSL\"]",
        "inter_broker_listener_name = \"REPLICATION\"",
        "sasl_bootstrap_user = \"runnel-operator\"",
        "sasl_bootstrap_password_file = \"/etc/runnel/operator/password\"",
        "ssl_client_auth = \"required\"",
        "ssl_truststore_location = \"/etc/runnel/tls/ca.crt\"",
    ] {
        assert!(toml.lines().any(|l| l == line), "{line} in:\n{toml}");
    }
    assert!(
        !toml.lines().any(|l| l.starts_with("listen = ")),
        "named listeners replace listen:\n{toml}"
    );

    // The credentials Secret belongs to the Cluster and is mounted where the config says.
    let secret = Api::<Secret>::namespaced(env.client.clone(), NS)
        .get("secure-operator-credentials")
        .await
        .expect("Secret");
    assert_eq!(
        secret.metadata.owner_references.expect("owner")[0].uid,
        cluster.metadata.uid.clone().expect("uid")
    );
    assert!(operator_password(&env).await.len() >= 32);
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), NS)
        .get(&sts_name("secure"))
        .await
        .expect("StatefulSet");
    let pod = serde_json::to_value(sts.spec.template).expect("json");
    let broker = &pod["spec"]["containers"][0];
    let ports: Vec<i64> = broker["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| p["containerPort"].as_i64().expect("port"))
        .collect();
    assert_eq!(ports, [9092, 9644, 9093, 9094, 9096, 9095]);
    let env_var = |name: &str| {
        broker["env"]
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        env_var("RUNNEL_ADVERTISED_LISTENERS").as_deref(),
        Some(
            "REPLICATION://$(POD_NAME).secure-brokers.kafka.svc:9092,\
             INTERNAL://$(POD_NAME).secure-brokers.kafka.svc:9094,\
             APPS://$(POD_NAME)-apps.kafka.svc:9096,\
             EXTERNAL://b$(RUNNEL_NODE_ID).kafka.example.com:9095"
        )
    );
    assert_eq!(env_var("RUNNEL_ADVERTISED_ADDRESS"), None);
    let mounts: Vec<&str> = broker["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    assert!(mounts.contains(&"/etc/runnel/operator") && mounts.contains(&"/etc/runnel/tls"));
    // The agent sidecar logs in as the operator's user with the same mounted password.
    let agent = &pod["spec"]["containers"][1];
    assert_eq!(agent["name"], "agent");
    let args: Vec<&str> = agent["args"]
        .as_array()
        .expect("agent args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.windows(6).any(|w| w
            == [
                "--sasl-username",
                "runnel-operator",
                "--sasl-password-file",
                "/etc/runnel/operator/password",
                "--sasl-mechanism",
                "SCRAM-SHA-512"
            ]),
        "{args:?}"
    );
    assert!(agent["volumeMounts"]
        .as_array()
        .expect("agent mounts")
        .iter()
        .any(|m| m["mountPath"] == "/etc/runnel/operator" && m["readOnly"] == true));

    // Services: a bootstrap and one per broker for each listener reached through Services.
    let services = Api::<Service>::namespaced(env.client.clone(), NS)
        .list(&Default::default())
        .await
        .expect("Services");
    let mut typed: Vec<(String, String, i32)> = services
        .items
        .iter()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            Some((
                s.metadata.name.clone()?,
                spec.type_.clone().unwrap_or_default(),
                spec.ports.as_ref()?.first()?.port,
            ))
        })
        .filter(|(name, _, _)| {
            name.ends_with("-apps")
                || name.ends_with("-external")
                || name.ends_with("-apps-bootstrap")
                || name.ends_with("-external-bootstrap")
        })
        .collect();
    typed.sort();
    assert_eq!(
        typed,
        [
            (
                "secure-apps-bootstrap".to_string(),
                "ClusterIP".to_string(),
                9096
            ),
            ("secure-brokers-0-apps".into(), "ClusterIP".into(), 9096),
            (
                "secure-brokers-0-external".into(),
                "LoadBalancer".into(),
                9095
            ),
            ("secure-brokers-1-apps".into(), "ClusterIP".into(), 9096),
            (
                "secure-brokers-1-external".into(),
                "LoadBalancer".into(),
                9095
            ),
            (
                "secure-external-bootstrap".into(),
                "LoadBalancer".into(),
                9095
            ),
        ]
    );

    // A second pass keeps the password (the brokers created the user with it).
    let password = operator_password(&env).await;
    let _ = controller::cluster::reconcile(Arc::new(cluster), env.ctx.clone()).await;
    assert_eq!(operator_password(&env).await, password);
}

#[tokio::test]
async fn a_removed_listener_loses_its_services_and_other_services_stay() {
    let env = Env::new();
    render(&env).await;
    let clusters: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    // Another Service in the namespace, not the operator's: never touched.
    Api::<Service>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "secure-brokers-0-external-mine",
                             "labels": {"runnel.dev/listener": "external"}},
                "spec": {"ports": [{"port": 1}]},
            }))
            .expect("Service"),
        )
        .await
        .expect("create Service");
    let mut c = clusters.get("secure").await.expect("Cluster");
    c.spec.listeners.retain(|l| l.name != "external");
    c.spec.listeners.push(
        serde_json::from_value(json!(
            {"name": "external", "port": 9095, "type": "internal"}
        ))
        .expect("listener"),
    );
    let c = clusters
        .replace("secure", &PostParams::default(), &c)
        .await
        .expect("update Cluster");
    let _ = controller::cluster::reconcile(Arc::new(c), env.ctx.clone()).await;
    let mut names: Vec<String> = Api::<Service>::namespaced(env.client.clone(), NS)
        .list(&Default::default())
        .await
        .expect("Services")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .filter(|n| n.contains("apps") || n.contains("external"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "secure-apps-bootstrap",
            "secure-brokers-0-apps",
            "secure-brokers-0-external-mine",
            "secure-brokers-1-apps",
        ]
    );
}

/// A broker started from a rendered `runnel.toml`, its listeners moved to free loopback ports
/// and its mounted files to a temporary directory (the kubelet harness's part); killed on drop.
struct RenderedBroker {
    child: Child,
    listeners: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for RenderedBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RenderedBroker {
    fn addr(&self, listener: &str) -> String {
        self.listeners
            .iter()
            .find(|(n, _)| n == listener)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| panic!("no listener {listener}: {:?}", self.listeners))
    }
}

async fn start_rendered_broker(toml: &str, password: &str) -> RenderedBroker {
    let dir = tempfile::Builder::new()
        .prefix("runnel-listeners-")
        .tempdir()
        .expect("tempdir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, password).expect("password file");
    let mut config = String::new();
    for line in toml.lines() {
        let line = match line.split_once(" = ") {
            Some(("data_dir", _)) => {
                format!("data_dir = \"{}\"", dir.path().join("data").display())
            }
            Some(("admin_listen" | "controller_listen", _)) => {
                format!(
                    "{} = \"127.0.0.1:0\"",
                    line.split_once(" = ").expect("kv").0
                )
            }
            Some(("sasl_bootstrap_password_file", _)) => format!(
                "sasl_bootstrap_password_file = \"{}\"",
                password_file.display()
            ),
            // No certificate in this test: the TLS listener stays out.
            Some(("listeners" | "listener_security_protocol_map", value)) => {
                let key = line.split_once(" = ").expect("kv").0;
                let items: Vec<String> = value
                    .trim_matches(|c| c == '[' || c == ']')
                    .split(", ")
                    .filter(|i| !i.contains("EXTERNAL"))
                    .map(|i| match i.split_once("://") {
                        Some((name, _)) => format!("{name}://127.0.0.1:0\""),
                        None => i.to_string(),
                    })
                    .collect();
                format!("{key} = [{}]", items.join(", "))
            }
            Some((
                "ssl_certificate_location"
                | "ssl_key_location"
                | "ssl_truststore_location"
                | "ssl_client_auth",
                _,
            )) => continue,
            _ => line.to_string(),
        };
        config.push_str(&line);
        config.push('\n');
    }
    let path = dir.path().join("runnel.toml");
    std::fs::write(&path, &config).expect("config");
    let log = std::fs::File::create(dir.path().join("broker.log")).expect("log");
    let mut child = Command::new(broker_binary())
        .arg("--config")
        .arg(&path)
        .args(["--node-id", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start runnel-broker");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut listeners = Vec::new();
    let read = async {
        while listeners.len() < 3 {
            let Some(line) = rx.recv().await else { break };
            if let Some(rest) = line.strip_prefix("runnel-broker ready ") {
                if let Some(a) = rest
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("kafka="))
                {
                    listeners.push(("REPLICATION".to_string(), a.to_string()));
                }
            } else if let Some(rest) = line.strip_prefix("runnel-broker listener ") {
                if let Some((name, addr)) = rest.split_once(" address=") {
                    listeners.push((name.to_string(), addr.trim().to_string()));
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), read).await;
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert_eq!(
        listeners.len(),
        3,
        "listeners {listeners:?}; config:\n{config}\nbroker log:\n{log}"
    );
    RenderedBroker {
        child,
        listeners,
        _dir: dir,
    }
}

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

#[tokio::test]
async fn a_broker_from_the_rendered_config_serves_sasl_and_the_operator_manages_it_as_its_user() {
    let env = Env::new();
    render(&env).await;
    let password = operator_password(&env).await;
    let broker = start_rendered_broker(&config_toml(&env).await, &password).await;
    let replication = broker.addr("REPLICATION");

    // The broker created the operator's user from the mounted password.
    login(&replication, "SCRAM-SHA-512", "runnel-operator", &password)
        .await
        .expect("the operator's user logs in on the replication listener");
    assert!(
        login(&replication, "SCRAM-SHA-512", "runnel-operator", "wrong")
            .await
            .is_err(),
        "a wrong password is refused"
    );
    let mut anonymous = ClientConfig::new(replication.as_str());
    anonymous.connect_timeout = Duration::from_secs(5);
    anonymous.request_timeout = Duration::from_secs(5);
    let refused = match Client::connect(anonymous).await {
        Err(_) => true,
        Ok(c) => c.metadata(Some(&[]), false).await.is_err(),
    };
    assert!(
        refused,
        "a client without SASL gets nothing on the replication listener"
    );

    // The operator reaches the brokers as its user: a User reconciled through them.
    env.resolver.set(NS, "secure", replication.clone());
    let user: User = serde_json::from_value(json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "User",
        "metadata": {"name": "app"},
        "spec": {
            "cluster": "secure",
            "authentication": {"type": "scram-sha-256"},
            "acls": [{"resourceType": "topic", "name": "orders", "operation": "read"}],
        },
    }))
    .expect("User");
    let users: Api<User> = Api::namespaced(env.client.clone(), NS);
    users
        .create(&PostParams::default(), &user)
        .await
        .expect("create User");
    for _ in 0..2 {
        let u = users.get("app").await.expect("User");
        controller::user::reconcile(Arc::new(u), env.ctx.clone())
            .await
            .expect("reconcile User over SASL");
    }
    let u = users.get("app").await.expect("User");
    let ready = find_condition(&u.status.expect("status").conditions, "Ready")
        .expect("Ready")
        .clone();
    assert_eq!(ready.status, "True", "{}", ready.message);
    let app_password = eventually(10, "the generated Secret", || async {
        let s = Api::<Secret>::namespaced(env.client.clone(), NS)
            .get_opt("app")
            .await
            .expect("get")?;
        Some(String::from_utf8(s.data?.get("password")?.0.clone()).expect("utf-8"))
    })
    .await;
    login(&broker.addr("APPS"), "SCRAM-SHA-256", "app", &app_password)
        .await
        .expect("the User logs in on the cluster-ip listener");
    // The brokers have one sasl_enabled_mechanisms: every SASL listener takes both SCRAM
    // mechanisms, whichever the listener names.
    login(
        &broker.addr("INTERNAL"),
        "SCRAM-SHA-256",
        "app",
        &app_password,
    )
    .await
    .expect("the User logs in on the internal listener too");
}
