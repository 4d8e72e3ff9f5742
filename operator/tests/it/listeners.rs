//! `Cluster.spec.listeners` against the in-memory Kubernetes API and a real broker: what the
//! Cluster reconciler renders (ConfigMap keys, StatefulSet ports and environment, Services of
//! each listener's type, the operator credentials Secret), and a broker started from that
//! rendered `runnel.toml` that serves the SASL listeners, created the operator's user from the
//! mounted password, and is managed by the operator through it (a User reconciled over SASL).

use std::collections::BTreeMap;
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

use rustls::pki_types::pem::PemObject;

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
    config_toml_of(env, "secure").await
}

async fn config_toml_of(env: &Env, cluster: &str) -> String {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .get(&format!("{cluster}-config"))
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

    // The status gives clients each listener's bootstrap servers and brokers' addresses.
    let status = Api::<Cluster>::namespaced(env.client.clone(), NS)
        .get("secure")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    let summary: Vec<(String, String, Vec<String>)> = status
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                l.bootstrap_servers.clone(),
                l.addresses
                    .iter()
                    .map(|a| format!("{}:{}", a.host, a.port))
                    .collect(),
            )
        })
        .collect();
    let pods = |suffix: &str, port: u16| -> Vec<String> {
        (0..2)
            .map(|i| format!("secure-brokers-{i}{suffix}:{port}"))
            .collect()
    };
    let internal = pods(".secure-brokers.kafka.svc", 9094);
    let external: Vec<String> = (0..2)
        .map(|i| format!("b{i}.kafka.example.com:9095"))
        .collect();
    assert_eq!(
        summary,
        [
            ("internal".to_string(), internal.join(","), internal),
            (
                "apps".into(),
                "secure-apps-bootstrap.kafka.svc:9096".into(),
                pods("-apps.kafka.svc", 9096)
            ),
            ("external".into(), external.join(","), external),
        ]
    );
    assert_eq!(
        status.bootstrap.as_deref(),
        Some("secure-bootstrap.kafka.svc:9092"),
        "bootstrap stays the brokers' own port"
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
    start_rendered_broker_with(toml, password, None).await
}

/// [`start_rendered_broker`], with the listeners' TLS files (`tls.crt`, `tls.key`, `ca.crt`,
/// as a Secret volume holds them) in `tls`; without, the TLS listener `EXTERNAL` stays out.
async fn start_rendered_broker_with(
    toml: &str,
    password: &str,
    tls: Option<&std::path::Path>,
) -> RenderedBroker {
    let dir = tempfile::Builder::new()
        .prefix("runnel-listeners-")
        .tempdir()
        .expect("tempdir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, password).expect("password file");
    let mut config = String::new();
    let mut expected = 0;
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
                    .filter(|i| tls.is_some() || !i.contains("EXTERNAL"))
                    .map(|i| match i.split_once("://") {
                        Some((name, _)) => format!("{name}://127.0.0.1:0\""),
                        None => i.to_string(),
                    })
                    .collect();
                if key == "listeners" {
                    expected = items.len();
                }
                format!("{key} = [{}]", items.join(", "))
            }
            Some((
                "ssl_certificate_location"
                | "ssl_key_location"
                | "ssl_truststore_location"
                | "ssl_client_auth",
                _,
            )) => match tls {
                Some(dir) => line.replace("/etc/runnel/tls", &dir.display().to_string()),
                None => continue,
            },
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
        while listeners.len() < expected {
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
        expected,
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

fn node_port_cluster() -> Cluster {
    serde_json::from_value(json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "np"},
        "spec": {
            "replicas": 2,
            "storage": {"size": "1Gi"},
            "listeners": [
                {"name": "ext", "port": 9097, "type": "nodeport",
                 "advertisedHostTemplate": "node{ordinal}.example.com",
                 "nodePorts": [31001]},
            ],
        },
    }))
    .expect("Cluster manifest")
}

/// Node ports of the Services named `names`, as the API server holds them.
async fn node_ports(env: &Env, names: &[&str]) -> Vec<i32> {
    let api = Api::<Service>::namespaced(env.client.clone(), NS);
    let mut out = Vec::new();
    for name in names {
        let svc = api.get(name).await.expect("Service");
        let spec = svc.spec.expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"), "{name}");
        out.push(
            spec.ports.expect("ports")[0]
                .node_port
                .unwrap_or_else(|| panic!("{name} has no node port")),
        );
    }
    out
}

async fn config_file(env: &Env, cluster: &str, key: &str) -> String {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .get(&format!("{cluster}-config"))
        .await
        .expect("ConfigMap");
    cm.data
        .expect("data")
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in the ConfigMap"))
        .clone()
}

#[tokio::test]
async fn nodeport_brokers_are_advertised_with_the_node_ports_the_api_server_holds() {
    let env = Env::new();
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api
        .create(&PostParams::default(), &node_port_cluster())
        .await
        .expect("create Cluster");
    let _ = controller::cluster::reconcile(Arc::new(c.clone()), env.ctx.clone()).await;

    // A NodePort Service per broker and a bootstrap one: broker 0's port as given in the
    // spec, broker 1's and the bootstrap's allocated by the API server.
    let services = ["np-ext-bootstrap", "np-brokers-0-ext", "np-brokers-1-ext"];
    let ports = node_ports(&env, &services).await;
    assert_eq!(ports[1], 31001);
    assert!(
        ports.iter().all(|p| (30000..=32767).contains(p)) && ports[0] != ports[2],
        "{ports:?}"
    );

    // Each broker reads its own file: the shared config plus its advertised listeners, with
    // its Service's node port.
    let shared = config_toml_of(&env, "np").await;
    for (ordinal, port) in [(0, ports[1]), (1, ports[2])] {
        let own = config_file(&env, "np", &format!("broker-{ordinal}.toml")).await;
        assert_eq!(
            own,
            format!(
                "{shared}advertised_listeners = [\"REPLICATION://np-brokers-{ordinal}.\
                 np-brokers.kafka.svc:9092\", \"EXT://node{ordinal}.example.com:{port}\"]\n"
            )
        );
    }
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), NS)
        .get(&sts_name("np"))
        .await
        .expect("StatefulSet");
    let pod = serde_json::to_value(sts.spec.template).expect("json");
    // A changed node port changes the pod template (the brokers read theirs at start).
    assert_eq!(
        pod["metadata"]["annotations"]["runnel.dev/node-ports"],
        format!(
            "np-brokers-0-ext={},np-brokers-1-ext={},np-ext-bootstrap={}",
            ports[1], ports[2], ports[0]
        )
    );
    let broker = &pod["spec"]["containers"][0];
    assert_eq!(
        broker["args"],
        json!(["--config", "/etc/runnel/broker-$(RUNNEL_NODE_ID).toml"])
    );
    let env_names: Vec<&str> = broker["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        !env_names.contains(&"RUNNEL_ADVERTISED_LISTENERS")
            && !env_names.contains(&"RUNNEL_ADVERTISED_ADDRESS"),
        "the environment must not override the files' advertised listeners: {env_names:?}"
    );

    // Another pass keeps every allocated port (the operator applies none of them).
    let c = api.get("np").await.expect("Cluster");
    let _ = controller::cluster::reconcile(Arc::new(c), env.ctx.clone()).await;
    assert_eq!(node_ports(&env, &services).await, ports);

    // The status tells clients where the listener is: each broker at its node port.
    let status = api
        .get("np")
        .await
        .expect("Cluster")
        .status
        .expect("status");
    assert_eq!(
        serde_json::to_value(&status.listeners).expect("json"),
        json!([{
            "name": "ext",
            "bootstrapServers": format!("node0.example.com:{},node1.example.com:{}", ports[1], ports[2]),
            "addresses": [
                {"host": "node0.example.com", "port": ports[1]},
                {"host": "node1.example.com", "port": ports[2]},
            ],
        }])
    );

    // A broker started from its own file advertises the node port to clients.
    let own = config_file(&env, "np", "broker-1.toml").await;
    let broker = start_rendered_broker(&own, "").await;
    let mut config = ClientConfig::new(broker.addr("EXT"));
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(10);
    let client = Client::connect(config).await.expect("connect on EXT");
    let meta = client.metadata(Some(&[]), false).await.expect("metadata");
    let advertised: Vec<(String, i32)> = meta
        .brokers
        .iter()
        .map(|b| (b.host.clone(), b.port))
        .collect();
    assert_eq!(advertised, [("node1.example.com".to_string(), ports[2])]);
}

#[tokio::test]
async fn a_nodeport_held_by_another_service_fails_the_reconcile_and_no_broker_is_advertised_with_it(
) {
    let env = Env::new();
    Api::<Service>::namespaced(env.client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "someone-else"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31001}]},
            }))
            .expect("Service"),
        )
        .await
        .expect("create Service");
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api
        .create(&PostParams::default(), &node_port_cluster())
        .await
        .expect("create Cluster");
    let err = controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect_err("the node port is taken");
    assert!(
        err.to_string()
            .contains("provided port is already allocated"),
        "{err}"
    );
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), NS)
        .get_opt("np-config")
        .await
        .expect("get");
    assert!(
        cm.and_then(|c| c.data)
            .is_none_or(|d| !d.contains_key("broker-0.toml")),
        "no broker file with a port it does not hold"
    );
}

/// cert-manager's Certificate CRD, as a cluster with cert-manager has it.
const CERT_MANAGER_CRD: &str = include_str!("fixtures/cert-manager-certificates-crd.yaml");
const CERTIFICATES: &str = "apis/cert-manager.io/v1";

fn cert_manager_cluster() -> Cluster {
    let certificate =
        json!({"certManager": {"issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}});
    serde_json::from_value(json!({
        "apiVersion": "runnel.dev/v1alpha1",
        "kind": "Cluster",
        "metadata": {"name": "tlsc"},
        "spec": {
            "replicas": 2,
            "storage": {"size": "1Gi"},
            "listeners": [
                {"name": "secure", "port": 9098, "tls": true, "certificate": certificate},
                {"name": "external", "port": 9099, "type": "loadbalancer", "tls": true,
                 "certificate": certificate,
                 "advertisedHostTemplate": "b{ordinal}.kafka.example.com"},
            ],
        },
    }))
    .expect("Cluster manifest")
}

/// Creates the cert-manager Cluster and runs one reconcile pass; returns the stored Cluster.
async fn render_cert_manager_cluster(env: &Env) -> Cluster {
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api
        .create(&PostParams::default(), &cert_manager_cluster())
        .await
        .expect("create Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    api.get("tlsc").await.expect("Cluster")
}

fn certificate_condition(c: &Cluster) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    find_condition(
        &c.status.as_ref().expect("status").conditions,
        controller::cluster::CERTIFICATE_CONDITION,
    )
    .expect("the Certificate condition")
    .clone()
}

/// The listener-tls volume's Secret in the brokers' pod template.
async fn mounted_tls_secret(env: &Env, cluster: &str) -> Option<String> {
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), NS)
        .get(&sts_name(cluster))
        .await
        .expect("StatefulSet");
    sts.spec
        .template
        .spec?
        .volumes?
        .into_iter()
        .find(|v| v.name == "listener-tls")?
        .secret?
        .secret_name
}

#[tokio::test]
async fn without_cert_manager_the_cluster_says_so_and_the_rest_is_applied() {
    let env = Env::new();
    // cert-manager is not installed: its group is not discovered and its resources are 404.
    let groups = env.client.list_api_groups().await.expect("discovery");
    assert!(groups.groups.iter().all(|g| g.name != "cert-manager.io"));
    assert!(groups.groups.iter().any(|g| g.name == "runnel.dev"));
    match env
        .client
        .list_api_group_resources("cert-manager.io/v1")
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404, "{s:?}"),
        other => panic!("expected a 404, got {other:?}"),
    }

    let c = render_cert_manager_cluster(&env).await;
    let cond = certificate_condition(&c);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "CertManagerMissing"),
        "{}",
        cond.message
    );
    assert!(
        cond.message.contains("install cert-manager"),
        "{}",
        cond.message
    );
    assert!(env
        .api
        .event_reasons(NS, "tlsc")
        .contains(&"CertManagerMissing".to_string()));
    let warning = env
        .api
        .list("apis/events.k8s.io/v1", "events", NS)
        .into_iter()
        .find(|e| e["reason"] == "CertManagerMissing")
        .expect("the Event");
    assert_eq!(warning["type"], "Warning");
    // Everything else is applied; the brokers mount the Secret cert-manager would write.
    assert_eq!(
        mounted_tls_secret(&env, "tlsc").await.as_deref(),
        Some("tlsc-listener-tls")
    );
    assert!(find_condition(&c.status.expect("status").conditions, "Ready").is_some());
    assert!(env.api.list(CERTIFICATES, "certificates", NS).is_empty());
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}

/// A CA playing cert-manager's CA issuer: signs `dns_names` and returns the Secret data
/// cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`).
fn issue(ca_name: &str, dns_names: &[String]) -> (rcgen::Certificate, BTreeMap<String, String>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(dns_names.to_vec()).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("signed");
    let data = BTreeMap::from([
        ("tls.crt".to_string(), cert.pem()),
        ("tls.key".to_string(), key.serialize_pem()),
        ("ca.crt".to_string(), ca_cert.pem()),
    ]);
    (ca_cert, data)
}

/// A TLS handshake with `addr` as `server_name`, trusting only `ca`; the certificate the
/// server presented, or why the handshake failed.
async fn handshake(
    addr: &str,
    server_name: &str,
    ca: &rcgen::Certificate,
) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).map_err(|e| e.to_string())?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    Ok(session
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default())
}

#[tokio::test]
async fn a_certificate_from_cert_manager_is_applied_and_the_brokers_serve_its_secret() {
    let env = Env::new();
    env.api.install_crd(CERT_MANAGER_CRD);
    let c = render_cert_manager_cluster(&env).await;

    // The operator applied a valid Certificate, owned by the Cluster, for every name the
    // brokers are reached by on the tls listeners.
    let cert = env
        .api
        .get(CERTIFICATES, "certificates", NS, "tlsc-listener-tls")
        .expect("the Certificate");
    let dns_names = [
        "tlsc-brokers.kafka.svc",
        "tlsc-brokers-0.tlsc-brokers.kafka.svc",
        "tlsc-brokers-1.tlsc-brokers.kafka.svc",
        "b0.kafka.example.com",
        "b1.kafka.example.com",
    ];
    assert_eq!(
        cert["spec"],
        json!({
            "secretName": "tlsc-listener-tls",
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"},
            "dnsNames": dns_names,
            "usages": ["server auth"],
        })
    );
    assert_eq!(
        cert["metadata"]["ownerReferences"][0]["uid"],
        json!(c.metadata.uid.clone().expect("uid"))
    );
    let cond = certificate_condition(&c);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "WaitingForCertificate"),
        "{}",
        cond.message
    );
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
    // The installed CRD's schema holds: a Certificate without secretName is refused.
    let certificates: Api<kube::core::DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        NS,
        &runnel_operator::resources::certificate_resource(),
    );
    let mut invalid = kube::core::DynamicObject::new(
        "invalid",
        &runnel_operator::resources::certificate_resource(),
    );
    invalid.data = json!({"spec": {"issuerRef": {"name": "ca"}}});
    match certificates.create(&PostParams::default(), &invalid).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("spec.secretName"), "{}", s.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }

    // Play cert-manager: a CA issues the certificate into the Secret the Certificate names.
    let names: Vec<String> = dns_names.iter().map(|n| n.to_string()).collect();
    let (ca, data) = issue("cert-manager CA", &names);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tlsc-listener-tls"},
        "type": "kubernetes.io/tls",
        "stringData": data,
    }))
    .expect("Secret");
    // stringData is the apiserver's to fold into data; write data directly.
    let secret = Secret {
        data: Some(
            data.iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        string_data: None,
        ..secret
    };
    Api::<Secret>::namespaced(env.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret");
    let api: Api<Cluster> = Api::namespaced(env.client.clone(), NS);
    let c = api.get("tlsc").await.expect("Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    let c = api.get("tlsc").await.expect("Cluster");
    let cond = certificate_condition(&c);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "CertificateIssued"),
        "{}",
        cond.message
    );
    assert_eq!(
        mounted_tls_secret(&env, "tlsc").await.as_deref(),
        Some("tlsc-listener-tls")
    );

    // A broker from the rendered config, with the Secret's files where its volume puts them,
    // serves that certificate on both tls listeners.
    let dir = tempfile::Builder::new()
        .prefix("runnel-cert-manager-")
        .tempdir()
        .expect("tempdir");
    for (key, value) in &data {
        std::fs::write(dir.path().join(key), value).expect("Secret file");
    }
    let broker =
        start_rendered_broker_with(&config_toml_of(&env, "tlsc").await, "", Some(dir.path())).await;
    let leaf = rustls::pki_types::CertificateDer::from_pem_slice(data["tls.crt"].as_bytes())
        .expect("tls.crt");
    for (listener, name) in [
        ("SECURE", "tlsc-brokers-0.tlsc-brokers.kafka.svc"),
        ("EXTERNAL", "b1.kafka.example.com"),
    ] {
        let served = handshake(&broker.addr(listener), name, &ca)
            .await
            .unwrap_or_else(|e| panic!("TLS to {listener} as {name}: {e}"));
        assert_eq!(
            served,
            leaf.to_vec(),
            "{listener} serves the Secret's certificate"
        );
    }
    let (other_ca, _) = issue("another CA", &names);
    assert!(
        handshake(&broker.addr("SECURE"), dns_names[1], &other_ca)
            .await
            .is_err(),
        "a client trusting another CA refuses the broker"
    );

    // The Cluster switches to a Secret of its own: the Certificate goes, the condition too.
    let mut c = api.get("tlsc").await.expect("Cluster");
    for l in &mut c.spec.listeners {
        l.certificate =
            Some(serde_json::from_value(json!({"secretName": "mine"})).expect("certificate"));
    }
    let c = api
        .replace("tlsc", &PostParams::default(), &c)
        .await
        .expect("update Cluster");
    controller::cluster::reconcile(Arc::new(c), env.ctx.clone())
        .await
        .expect("reconcile");
    assert!(env.api.list(CERTIFICATES, "certificates", NS).is_empty());
    let c = api.get("tlsc").await.expect("Cluster");
    assert!(find_condition(
        &c.status.expect("status").conditions,
        controller::cluster::CERTIFICATE_CONDITION
    )
    .is_none());
    assert_eq!(
        mounted_tls_secret(&env, "tlsc").await.as_deref(),
        Some("mine")
    );
    assert_eq!(env.api.forbidden_requests(), Vec::<String>::new());
}
