//! The agent against real `runnel-broker` processes (one broker, or clusters of three or four
//! forming one metadata quorum), called over gRPC with the generated client.
//! Needs `cargo build -p runnel-server` first (the broker binary in target/debug), or
//! `RUNNEL_BROKER_BIN` naming one.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel_agent::proto::{BrokerStatusRequest, HealthRequest};
use runnel_agent::{AgentClient, AgentConfig, AgentService};
use runnel_client::{Client, ClientConfig, NewTopic};
use tokio::sync::oneshot;

fn broker_bin() -> PathBuf {
    let bin = std::env::var_os("RUNNEL_BROKER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/runnel-broker")
        });
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p runnel-server` first",
        bin.display()
    );
    bin
}

struct Broker {
    child: Child,
    kafka: String,
    admin: String,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let bin = broker_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--controller-listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn broker");
        let stdout = child.stdout.take().expect("stdout");
        let mut kafka = None;
        let mut admin = None;
        // The ready line comes once both listeners are bound; read_line blocks until then.
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read broker stdout");
            if let Some(rest) = line.strip_prefix("runnel-broker ready ") {
                for field in rest.split_whitespace() {
                    if let Some(v) = field.strip_prefix("kafka=") {
                        kafka = Some(v.to_string());
                    } else if let Some(v) = field.strip_prefix("admin=") {
                        admin = Some(v.to_string());
                    }
                }
                break;
            }
        }
        Broker {
            child,
            kafka: kafka.expect("kafka address in ready line"),
            admin: admin.expect("admin address in ready line"),
            dir,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Agent {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_agent(broker: &Broker) -> Agent {
    start_agent_with(AgentConfig {
        broker_admin: broker.admin.clone(),
        broker_kafka: broker.kafka.clone(),
        node_id: None,
        data_dir: None,
        sasl: None,
    })
    .await
}

async fn start_agent_with(config: AgentConfig) -> Agent {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind agent");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let service = AgentService::new(config);
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        runnel_agent::serve(listener, service, async {
            let _ = rx.await;
        })
        .await
        .expect("agent serves");
    });
    Agent {
        url,
        stop: Some(tx),
        task,
    }
}

impl Agent {
    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("agent task");
    }
}

/// Polls `f` until it returns `Some`, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_within(what, Duration::from_secs(30), f).await
}

/// Polls `f` until it returns `Some`, for at most `limit`.
async fn eventually_within<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_reports_a_ready_broker_then_a_stopped_one_without_failing() {
    let mut broker = Broker::start();
    let agent = start_agent(&broker).await;
    let mut client = AgentClient::connect(agent.url.clone())
        .await
        .expect("connect agent");

    let up = eventually("broker ready via agent", || {
        let mut client = client.clone();
        async move {
            let reply = client
                .health(HealthRequest {})
                .await
                .expect("health rpc")
                .into_inner();
            reply.broker_reachable.then_some(reply)
        }
    })
    .await;
    assert!(up.detail.is_empty(), "detail {:?}", up.detail);

    broker.stop();
    let down = client
        .health(HealthRequest {})
        .await
        .expect("health rpc still answers with the broker stopped")
        .into_inner();
    assert!(!down.broker_reachable);
    assert!(
        down.detail.contains(&broker.admin),
        "detail names the admin address: {:?}",
        down.detail
    );
    // BrokerStatus cannot answer without a broker: an UNAVAILABLE status, not a crash.
    let err = client
        .broker_status(BrokerStatusRequest {})
        .await
        .expect_err("no broker, no status");
    assert_eq!(err.code(), tonic::Code::Unavailable);
    agent.shutdown().await;
}

#[tokio::test]
async fn broker_status_counts_the_partitions_the_broker_leads_and_replicates() {
    let broker = Broker::start();
    let kafka = Client::connect(ClientConfig::new(broker.kafka.clone()))
        .await
        .expect("kafka client");
    kafka
        .create_topics(
            &[NewTopic {
                name: "agent-status".into(),
                partitions: Some(3),
                replication_factor: Some(1),
                configs: Vec::new(),
            }],
            false,
        )
        .await
        .expect("create topic");

    let agent = start_agent(&broker).await;
    let mut client = AgentClient::connect(agent.url.clone())
        .await
        .expect("connect agent");
    let status = eventually("3 led partitions", || {
        let mut client = client.clone();
        async move {
            let s = client
                .broker_status(BrokerStatusRequest {})
                .await
                .ok()?
                .into_inner();
            (s.ready && s.leader_partitions == 3).then_some(s)
        }
    })
    .await;
    let metadata = kafka.metadata(None, false).await.expect("metadata");
    assert_eq!(status.node_id, metadata.brokers[0].node_id);
    assert_eq!(status.replica_partitions, 3);
    // One broker, replication factor 1: ISR == replicas, nothing under-replicated.
    assert_eq!(status.under_replicated_leader_partitions, 0);
    // No --data-dir given to this agent: nothing is measured.
    assert_eq!(status.data_dir_bytes, 0);
    let _ = client.health(HealthRequest {}).await.expect("health");
    agent.shutdown().await;
}

#[tokio::test]
async fn binary_reads_its_flags_serves_grpc_and_exits_on_sigterm() {
    let broker = Broker::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel-agent"))
        .args(["--listen", "127.0.0.1:0"])
        .args(["--broker-admin", &broker.admin])
        .args(["--broker-kafka", &broker.kafka])
        .args(["--node-id", "7"])
        .arg("--data-dir")
        .arg(broker.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn agent");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("runnel-agent ready grpc=")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut client = AgentClient::connect(format!("http://{addr}"))
        .await
        .expect("connect agent binary");
    let status = eventually("ready broker via the binary", || {
        let mut client = client.clone();
        async move {
            let s = client
                .broker_status(BrokerStatusRequest {})
                .await
                .ok()?
                .into_inner();
            s.ready.then_some(s)
        }
    })
    .await;
    // --node-id wins over discovery: the status is about node 7 (which leads nothing here).
    assert_eq!(status.node_id, 7);
    assert_eq!(status.leader_partitions, 0);
    // --data-dir points at the broker's directory, which holds at least its metadata.
    assert!(status.data_dir_bytes > 0, "{status:?}");
    let health = client.health(HealthRequest {}).await.expect("health");
    assert!(health.into_inner().broker_reachable);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("try_wait") {
            break exit;
        }
        assert!(Instant::now() < deadline, "agent ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "agent exit status {exit}");
}

/// Serves `node` as the API server would (GET /api/v1/nodes/<name> with the bearer token
/// `token`; 401 without it, 404 for another node) until dropped; returns its address and the
/// request lines it saw.
async fn node_api(
    node: serde_json::Value,
    token: &'static str,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let node = node.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let line = head.lines().next().unwrap_or_default().to_string();
                log.lock().expect("log").push(line.clone());
                let authorized = head
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {token}")));
                let name = node["metadata"]["name"].as_str().unwrap_or_default();
                let (status, body) = if !authorized {
                    (
                        "401 Unauthorized",
                        serde_json::json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "Unauthorized", "code": 401,
                        "message": "Unauthorized"}),
                    )
                } else if line.starts_with(&format!("GET /api/v1/nodes/{name} ")) {
                    ("200 OK", node)
                } else {
                    (
                        "404 Not Found",
                        serde_json::json!({"kind": "Status", "apiVersion": "v1",
                        "status": "Failure", "reason": "NotFound", "code": 404,
                        "message": "not found"}),
                    )
                };
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

/// Runs `runnel-agent rack` for `node` with `kubeconfig` (and a HOME without one), writing to
/// `out`: whether it succeeded, and its stderr.
async fn rack(node: &str, kubeconfig: &std::path::Path, out: &std::path::Path) -> (bool, String) {
    let home = kubeconfig.parent().expect("a directory");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_runnel-agent"))
        .args([
            "rack",
            "--node",
            node,
            "--label",
            "topology.kubernetes.io/zone",
            "--out",
        ])
        .arg(out)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .await
        .expect("run runnel-agent rack");
    (
        run.status.success(),
        String::from_utf8_lossy(&run.stderr).to_string(),
    )
}

/// `runnel-agent rack` as the init container runs it, configured through a kubeconfig (the
/// in-cluster variant needs the API server's TLS): it reads the node's label with its token and
/// writes the value; a node without the label, or no API configuration at all, fails with the
/// problem named and no file written.
#[tokio::test]
async fn rack_command_writes_the_nodes_label_or_fails_naming_the_problem() {
    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-7", "labels": {"topology.kubernetes.io/zone": "zone-b"}}});
    let (addr, seen) = node_api(node, "t0ken").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: k, cluster: {{server: \"http://{addr}\"}}}}]\n\
             users: [{{name: u, user: {{token: t0ken}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n"
        ),
    )
    .expect("kubeconfig");
    let out = dir.path().join("rack");
    let (ok, stderr) = rack("node-7", &kubeconfig, &out).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).expect("rack file"),
        "zone-b\n"
    );
    assert!(seen
        .lock()
        .expect("log")
        .iter()
        .any(|l| l.starts_with("GET /api/v1/nodes/node-7 ")));

    let missing = dir.path().join("rack-of-other");
    let (ok, stderr) = rack("node-8", &kubeconfig, &missing).await;
    assert!(!ok);
    assert!(stderr.contains("reading node node-8"), "{stderr}");
    assert!(!missing.exists());

    let unlabelled = serde_json::json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-9", "labels": {"kubernetes.io/hostname": "node-9"}}});
    let (addr9, _) = node_api(unlabelled, "t0ken").await;
    let kubeconfig9 = dir.path().join("kubeconfig9");
    std::fs::write(
        &kubeconfig9,
        std::fs::read_to_string(&kubeconfig)
            .expect("kubeconfig")
            .replace(&addr, &addr9),
    )
    .expect("kubeconfig9");
    let (ok, stderr) = rack("node-9", &kubeconfig9, &missing).await;
    assert!(!ok);
    assert!(
        stderr.contains("node node-9 has no value for label \"topology.kubernetes.io/zone\""),
        "{stderr}"
    );
    assert!(!missing.exists());

    let (ok, stderr) = rack("node-7", &dir.path().join("none"), &missing).await;
    assert!(!ok);
    assert!(
        stderr.contains("no Kubernetes API configuration"),
        "{stderr}"
    );
    assert!(!missing.exists());
}

/// A request message with room for any number of bytes (an unknown field to the agent).
#[derive(Clone, PartialEq, prost::Message)]
struct Padded {
    #[prost(bytes = "vec", tag = "15")]
    pad: Vec<u8>,
}

#[tokio::test]
async fn garbage_huge_heads_and_oversized_messages_leave_the_agent_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // No broker is needed: Health answers that it is unreachable.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind agent");
    let addr = listener.local_addr().expect("addr");
    let service = AgentService::new(AgentConfig {
        broker_admin: "127.0.0.1:1".into(),
        broker_kafka: "127.0.0.1:1".into(),
        node_id: Some(0),
        data_dir: None,
        sasl: None,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(runnel_agent::serve(listener, service, async {
        let _ = stopped.await;
    }));

    // Garbage, then an HTTP/1 head of 1 MiB: each connection is answered with
    // an error or closed, never buffered whole.
    let mut huge = b"POST /runnel.agent.v1.Agent/Health HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    for bytes in [&b"\x00\xff\x13 not http\r\n\r\n"[..], &huge[..]] {
        let mut raw = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = raw.write_all(bytes).await;
        let mut sink = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), raw.read_to_end(&mut sink)).await;
        assert!(
            read.is_ok(),
            "the agent must close a connection sending garbage"
        );
    }

    // A gRPC message above the limit is refused with a status.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect agent");
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("ready");
    let big = Padded {
        pad: vec![7; 4 * runnel_agent::MAX_MESSAGE_BYTES],
    };
    let status = grpc
        .unary::<_, runnel_agent::proto::HealthResponse, _>(
            tonic::Request::new(big),
            tonic::codegen::http::uri::PathAndQuery::from_static("/runnel.agent.v1.Agent/Health"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("an oversized message is refused");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status}");

    // The agent still answers.
    let mut client = AgentClient::new(channel);
    let reply = client
        .health(HealthRequest {})
        .await
        .expect("health rpc")
        .into_inner();
    assert!(!reply.broker_reachable);
    let _ = stop.send(());
    task.await.expect("agent task").expect("agent serves");
}

// ---------------------------------------------------------------------------
// Clusters of real brokers: CanRestart, BrokerStatus's cluster view, Drain.
// ---------------------------------------------------------------------------

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use runnel_agent::proto::{
    CanRestartRequest, CancelDrainRequest, DrainProgress, DrainRequest, QuorumRole,
};
use runnel_client::reassign::{
    FOLLOWER_THROTTLED_REPLICAS, FOLLOWER_THROTTLE_RATE, LEADER_THROTTLED_REPLICAS,
    LEADER_THROTTLE_RATE,
};
use runnel_client::{
    ClusterMetadata, Consumer, FetchOptions, Producer, ProducerConfig, ProducerRecord, StartAt,
};

/// Cluster tests start up to four brokers each; on a small machine they run one at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A follower out of touch this long leaves the ISR (the default 30 s would make tests slow).
const REPLICA_LAG_MS: &str = "5000";
/// A broker without heartbeats this long is fenced.
const SESSION_TIMEOUT_MS: &str = "4000";

/// One broker of a cluster, killed (SIGKILL) on drop.
struct Member {
    node: i32,
    child: Child,
    kafka: String,
    admin: String,
    controller: String,
    dir: tempfile::TempDir,
}

impl Member {
    /// Starts node `node`, joining through `seed` (a controller address) unless it founds the cluster.
    fn start(node: i32, seed: Option<&str>) -> Member {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(broker_bin());
        cmd.args(["--node-id", &node.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--controller-listen", "127.0.0.1:0"])
            .args(["--replica-lag-time-max-ms", REPLICA_LAG_MS])
            .args(["--broker-session-timeout-ms", SESSION_TIMEOUT_MS])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(seed) = seed {
            cmd.args(["--seeds", seed]);
        }
        let mut child = cmd.spawn().expect("spawn broker");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader keeps draining stdout after the ready line, so the broker never writes
        // into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("runnel-broker ready ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let Ok(ready) = rx.recv_timeout(Duration::from_secs(90)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("broker {node} printed no ready line within 90 s");
        };
        let field = |name: &str| {
            ready
                .split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} missing from ready line {ready:?}"))
                .to_string()
        };
        Member {
            node,
            kafka: field("kafka="),
            admin: field("admin="),
            controller: field("controller="),
            child,
            dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn agent_config(&self) -> AgentConfig {
        AgentConfig {
            broker_admin: self.admin.clone(),
            broker_kafka: self.kafka.clone(),
            node_id: Some(self.node),
            data_dir: Some(self.dir.path().to_path_buf()),
            sasl: None,
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `size` brokers forming one cluster: node 0 founds it, the others join through it.
struct Cluster {
    members: Vec<Member>,
    killed: BTreeSet<i32>,
}

impl Cluster {
    async fn start(size: i32) -> Cluster {
        let first = Member::start(0, None);
        let seed = first.controller.clone();
        let mut members = vec![first];
        for node in 1..size {
            // Joining in order makes nodes 0..2 the voters (the first three to join).
            members.push(Member::start(node, Some(&seed)));
        }
        let cluster = Cluster {
            members,
            killed: BTreeSet::new(),
        };
        let client = cluster.client().await;
        let want = usize::try_from(size).expect("size");
        eventually_within("every broker in Metadata", Duration::from_secs(90), || {
            let client = &client;
            async move {
                let m = client.metadata(Some(&[]), false).await.ok()?;
                (m.brokers.len() == want).then_some(())
            }
        })
        .await;
        cluster
    }

    fn member(&self, node: i32) -> &Member {
        self.members
            .iter()
            .find(|m| m.node == node)
            .expect("member")
    }

    fn bootstrap(&self) -> String {
        self.members
            .iter()
            .filter(|m| !self.killed.contains(&m.node))
            .map(|m| m.kafka.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn client(&self) -> Client {
        Client::connect(ClientConfig::new(self.bootstrap()))
            .await
            .expect("cluster client")
    }

    fn kill(&mut self, node: i32) {
        self.killed.insert(node);
        if let Some(m) = self.members.iter_mut().find(|m| m.node == node) {
            m.kill();
        }
    }
}

async fn agent_client(agent: &Agent) -> AgentClient<tonic::transport::Channel> {
    AgentClient::connect(agent.url.clone())
        .await
        .expect("connect agent")
}

async fn create_topic(
    client: &Client,
    name: &str,
    partitions: i32,
    rf: i16,
    configs: &[(&str, &str)],
) {
    client
        .create_topics(
            &[NewTopic {
                name: name.into(),
                partitions: Some(partitions),
                replication_factor: Some(rf),
                configs: configs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            false,
        )
        .await
        .expect("create topic");
}

/// Waits until every partition of `topic` has a leader and a full ISR; returns the metadata.
async fn wait_fully_replicated(client: &Client, topic: &str) -> ClusterMetadata {
    let names = [topic.to_string()];
    eventually_within(
        "a leader and a full ISR everywhere",
        Duration::from_secs(60),
        || async {
            let m = client.metadata(Some(&names), false).await.ok()?;
            let t = m.topics.iter().find(|t| t.name == topic)?;
            let full = !t.partitions.is_empty()
                && t.partitions
                    .iter()
                    .all(|p| p.leader >= 0 && p.isr.len() == p.replicas.len());
            full.then_some(m)
        },
    )
    .await
}

/// `topic-partition` names of `topic`'s partitions that satisfy `keep`.
fn partitions_where(
    m: &ClusterMetadata,
    topic: &str,
    keep: impl Fn(&runnel_client::PartitionMetadata) -> bool,
) -> BTreeSet<String> {
    m.topics
        .iter()
        .filter(|t| t.name == topic)
        .flat_map(|t| t.partitions.iter())
        .filter(|p| keep(p))
        .map(|p| format!("{topic}-{}", p.partition))
        .collect()
}

#[tokio::test]
async fn broker_status_reports_quorum_roles_hosted_partitions_and_cluster_health() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(4).await;
    let client = cluster.client().await;
    create_topic(&client, "status", 4, 3, &[]).await;
    create_topic(&client, "solo", 8, 1, &[]).await;
    wait_fully_replicated(&client, "status").await;
    let before = wait_fully_replicated(&client, "solo").await;
    let before = client.metadata(None, false).await.unwrap_or(before);

    let mut agents = Vec::new();
    for m in &cluster.members {
        agents.push((m.node, start_agent_with(m.agent_config()).await));
    }
    let mut roles = BTreeMap::new();
    let mut leader_ids = BTreeSet::new();
    for (node, agent) in &agents {
        let mut grpc = agent_client(agent).await;
        let hosted = before
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replicas.contains(node))
            .count();
        let s = eventually("a ready status with the quorum described", || {
            let mut grpc = grpc.clone();
            async move {
                let s = grpc
                    .broker_status(BrokerStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                // ISRs may still be filling right after the topics were created.
                let settled = s.ready
                    && s.quorum_leader_id >= 0
                    && s.cluster_under_replicated_partitions == 0;
                settled.then_some(s)
            }
        })
        .await;
        let _ = grpc.health(HealthRequest {}).await.expect("health");
        assert_eq!(s.node_id, *node);
        assert_eq!(s.hosted_partitions as usize, hosted, "node {node}");
        assert_eq!(s.replica_partitions, s.hosted_partitions);
        assert_eq!(s.cluster_under_replicated_partitions, 0);
        assert_eq!(s.cluster_offline_partitions, 0);
        assert!(
            s.at_risk_partitions.is_empty(),
            "{:?}",
            s.at_risk_partitions
        );
        assert!(
            s.data_dir_bytes > 0,
            "node {node} reports an empty data dir"
        );
        roles.insert(
            *node,
            QuorumRole::try_from(s.quorum_role).expect("known role"),
        );
        leader_ids.insert(s.quorum_leader_id);
    }
    // Three voters by default (the first three to join), the fourth observes.
    assert_eq!(
        leader_ids.len(),
        1,
        "every broker names the same quorum leader: {leader_ids:?}"
    );
    let leader = *leader_ids.first().expect("a leader");
    assert!((0..3).contains(&leader), "leader {leader} is a voter");
    for (node, role) in &roles {
        let want = if *node == leader {
            QuorumRole::Leader
        } else if *node < 3 {
            QuorumRole::Voter
        } else {
            QuorumRole::Observer
        };
        assert_eq!(*role, want, "node {node}: {roles:?}");
    }

    // Killing the observer leaves its rf-3 partitions under-replicated and its rf-1 ones offline.
    let urp = partitions_where(&before, "status", |p| p.replicas.contains(&3)).len();
    let offline = partitions_where(&before, "solo", |p| p.replicas.contains(&3)).len();
    assert!(
        urp > 0 && offline > 0,
        "placement put nothing on node 3: {before:?}"
    );
    cluster.kill(3);
    let (_, agent0) = &agents[0];
    let grpc = agent_client(agent0).await;
    eventually_within(
        "the ISR shrink and the offline partitions",
        Duration::from_secs(60),
        || {
            let mut grpc = grpc.clone();
            async move {
                let s = grpc
                    .broker_status(BrokerStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                // Every rf-3 partition of node 3 is under-replicated; its rf-1 ones are offline
                // (and under-replicated too if the controller empties their ISR).
                let under = s.cluster_under_replicated_partitions as usize;
                let down = s.cluster_offline_partitions as usize;
                (down == offline && (urp..=urp + offline).contains(&under)).then_some(())
            }
        },
    )
    .await;
    for (_, agent) in agents {
        agent.shutdown().await;
    }
}

#[tokio::test]
async fn can_restart_refuses_while_stopping_would_drop_an_isr_below_min_insync_replicas() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(4).await;
    let client = cluster.client().await;
    create_topic(&client, "guarded", 4, 3, &[("min.insync.replicas", "2")]).await;
    let before = wait_fully_replicated(&client, "guarded").await;
    let mut agents = BTreeMap::new();
    for m in &cluster.members {
        agents.insert(m.node, start_agent_with(m.agent_config()).await);
    }
    // Full ISRs (3 > min 2) and an in-sync quorum: every broker may restart.
    for (node, agent) in &agents {
        let grpc = agent_client(agent).await;
        eventually("a safe answer with full ISRs", || {
            let mut grpc = grpc.clone();
            async move {
                let r = grpc
                    .can_restart(CanRestartRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (r.safe && r.reasons.is_empty() && r.at_risk_partitions.is_empty()).then_some(())
            }
        })
        .await;
        let _ = node;
    }

    // kill -9 the observer (node 3, so the quorum keeps all its voters): the partitions it
    // replicated shrink to an ISR of 2 = min.insync.replicas.
    let shrunk = partitions_where(&before, "guarded", |p| p.replicas.contains(&3));
    assert!(
        !shrunk.is_empty(),
        "placement put nothing on node 3: {before:?}"
    );
    cluster.kill(3);
    let names = ["guarded".to_string()];
    let after = eventually_within("node 3 out of every ISR", Duration::from_secs(60), || {
        let client = &client;
        let names = &names;
        async move {
            let m = client.metadata(Some(names), false).await.ok()?;
            let t = m.topics.iter().find(|t| t.name == "guarded")?;
            t.partitions
                .iter()
                .all(|p| !p.isr.contains(&3) && p.leader >= 0 && p.leader != 3)
                .then_some(m)
        }
    })
    .await;

    for node in 0..3 {
        let mut grpc = agent_client(&agents[&node]).await;
        // The answer is checked against the metadata read around it; a follower briefly
        // leaving an ISR in between (a slow machine) only means asking again.
        let (r, expected) = eventually("an answer under stable metadata", || {
            let mut grpc = grpc.clone();
            let client = &client;
            let names = &names;
            async move {
                let read = || async {
                    let m = client.metadata(Some(names), false).await.ok()?;
                    m.topics.into_iter().find(|t| t.name == "guarded")
                };
                let m1 = read().await?;
                let r = grpc
                    .can_restart(CanRestartRequest {})
                    .await
                    .ok()?
                    .into_inner();
                let m2 = read().await?;
                (m1 == m2).then_some(())?;
                let meta = ClusterMetadata {
                    cluster_id: None,
                    controller_id: -1,
                    brokers: Vec::new(),
                    topics: vec![m1],
                };
                // rf 3 > min 2 everywhere: at risk iff this node is in an ISR of at most 2.
                let expected = partitions_where(&meta, "guarded", |p| {
                    p.isr.contains(&node) && p.isr.len() <= 2
                });
                Some((r, expected))
            }
        })
        .await;
        let named: BTreeSet<String> = r.at_risk_partitions.iter().cloned().collect();
        assert_eq!(named, expected, "node {node}: {r:?}");
        assert_eq!(r.safe, expected.is_empty(), "node {node}: {r:?}");
        for partition in &expected {
            assert!(
                r.reasons
                    .iter()
                    .any(|reason| reason.starts_with(&format!("{partition}: ISR ["))
                        && reason.ends_with("would drop below min.insync.replicas=2")),
                "node {node} names {partition} in {:?}",
                r.reasons
            );
        }
        assert!(
            !r.reasons
                .iter()
                .any(|reason| reason.contains("metadata quorum")),
            "all voters are alive: {:?}",
            r.reasons
        );
        let s = grpc
            .broker_status(BrokerStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        for partition in &s.at_risk_partitions {
            assert!(
                partition.starts_with("guarded-"),
                "{:?}",
                s.at_risk_partitions
            );
        }
        assert!(
            !s.at_risk_partitions.is_empty() || expected.is_empty(),
            "BrokerStatus names the at-risk partitions too: {s:?}"
        );
    }
    // At least one live broker is in a shrunk ISR, so the test refused somewhere.
    assert!(
        (0..3).any(
            |n| !partitions_where(&after, "guarded", |p| p.isr.contains(&n)
                && p.isr.len() == 2)
            .is_empty()
        ),
        "no ISR shrank: {after:?}"
    );
    for (_, agent) in agents {
        agent.shutdown().await;
    }
}

#[tokio::test]
async fn can_restart_refuses_stopping_a_voter_while_another_voter_is_dead() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let mut cluster = Cluster::start(3).await;
    let mut agents = BTreeMap::new();
    for m in &cluster.members {
        agents.insert(m.node, start_agent_with(m.agent_config()).await);
    }
    // All three voters in sync: any may restart.
    let mut leader = -1;
    for agent in agents.values() {
        let grpc = agent_client(agent).await;
        eventually("a safe answer with every voter in sync", || {
            let mut grpc = grpc.clone();
            async move {
                let r = grpc
                    .can_restart(CanRestartRequest {})
                    .await
                    .ok()?
                    .into_inner();
                r.safe.then_some(())
            }
        })
        .await;
        let s = grpc
            .clone()
            .broker_status(BrokerStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        leader = s.quorum_leader_id;
    }
    assert!((0..3).contains(&leader), "leader {leader}");
    let followers: Vec<i32> = (0..3).filter(|&n| n != leader).collect();
    let (dead, asked) = (followers[0], followers[1]);
    cluster.kill(dead);

    for node in [asked, leader] {
        let mut grpc = agent_client(&agents[&node]).await;
        let r = grpc
            .can_restart(CanRestartRequest {})
            .await
            .expect("can_restart")
            .into_inner();
        assert!(!r.safe, "node {node} with voter {dead} dead: {r:?}");
        assert_eq!(
            r.reasons,
            vec![format!(
                "metadata quorum: stopping voter {node} leaves 1 of 3 voters in sync, a majority needs 2"
            )],
            "node {node}"
        );
        assert!(r.at_risk_partitions.is_empty());
    }
    for (_, agent) in agents {
        agent.shutdown().await;
    }
}

/// Reads a Drain stream to its end (at most `limit`), returning every progress report.
async fn read_drain(
    stream: &mut tonic::Streaming<DrainProgress>,
    limit: Duration,
) -> Vec<DrainProgress> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, stream.message())
            .await
            .unwrap_or_else(|_| panic!("the drain did not end within {limit:?}: {seen:?}"))
            .expect("drain stream");
        match next {
            Some(p) => seen.push(p),
            None => return seen,
        }
    }
}

/// Produces `batches` batches of `per_batch` records of `size` bytes to every partition.
async fn fill(
    client: &Client,
    topic: &str,
    partitions: i32,
    batches: usize,
    per_batch: usize,
    size: usize,
) -> usize {
    let mut producer = Producer::new(client, topic, ProducerConfig::default())
        .await
        .expect("producer");
    let mut n = 0;
    for batch in 0..batches {
        for p in 0..partitions {
            for i in 0..per_batch {
                let mut value = format!("{topic}/{p}/{batch}/{i}/").into_bytes();
                value.resize(size.max(value.len()), b'x');
                producer
                    .send(ProducerRecord {
                        value: Some(Bytes::from(value)),
                        partition: Some(p),
                        ..ProducerRecord::default()
                    })
                    .await
                    .expect("send");
                n += 1;
            }
        }
        // One flush per round, so each partition gets `batches` separate batches.
        producer.flush().await.expect("flush");
    }
    n
}

/// Whether no throttle config is left: the rates of `brokers` at their default and no
/// throttled-replica list on `topic`.
async fn throttle_gone(client: &Client, topic: &str, brokers: &[i32]) -> bool {
    let Ok(topic_configs) = client.describe_topic_configs(topic).await else {
        return false;
    };
    let lists_clear = topic_configs
        .iter()
        .filter(|e| e.name == LEADER_THROTTLED_REPLICAS || e.name == FOLLOWER_THROTTLED_REPLICAS)
        .all(|e| !e.is_topic_override() && e.value.as_deref().unwrap_or("").is_empty());
    let mut rates_clear = true;
    for b in brokers {
        let Ok(configs) = client.describe_broker_configs(Some(*b)).await else {
            return false;
        };
        rates_clear &= configs
            .iter()
            .filter(|e| e.name == LEADER_THROTTLE_RATE || e.name == FOLLOWER_THROTTLE_RATE)
            .all(|e| e.value.as_deref() == Some(&i64::MAX.to_string()));
    }
    lists_clear && rates_clear
}

#[tokio::test]
async fn drain_moves_every_replica_off_keeps_every_record_and_removes_the_throttle() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(4).await;
    let client = cluster.client().await;
    create_topic(&client, "drained", 8, 2, &[]).await;
    wait_fully_replicated(&client, "drained").await;
    let produced = fill(&client, "drained", 8, 2, 25, 100).await;
    let before = client.metadata(None, false).await.expect("metadata");
    let node = 1;
    let hosted = partitions_where(&before, "drained", |p| p.replicas.contains(&node));
    assert!(!hosted.is_empty(), "node {node} hosts nothing: {before:?}");

    let agent = start_agent_with(cluster.member(node).agent_config()).await;
    let mut grpc = agent_client(&agent).await;

    // With every other broker avoided no partition can move: the drain fails at once, says
    // why, and moves nothing.
    let mut refused = grpc
        .drain(DrainRequest {
            throttle_bytes_per_second: 1,
            avoid_brokers: vec![0, 2, 3],
        })
        .await
        .expect("drain")
        .into_inner();
    let reports = read_drain(&mut refused, Duration::from_secs(60)).await;
    let last = reports.last().expect("a report");
    assert!(!last.done, "{reports:?}");
    assert!(
        last.detail.contains("cannot drain broker 1") && last.detail.contains("drained-"),
        "{reports:?}"
    );
    assert!(client
        .list_reassignments(None)
        .await
        .expect("list")
        .is_empty());
    let unchanged = client.metadata(None, false).await.expect("metadata");
    assert_eq!(
        partitions_where(&unchanged, "drained", |p| p.replicas.contains(&node)),
        hosted
    );
    assert!(throttle_gone(&client, "drained", &[0, 1, 2, 3]).await);

    let request = DrainRequest {
        throttle_bytes_per_second: 50_000_000,
        avoid_brokers: Vec::new(),
    };
    // The first caller goes away after one report: the job must carry on without it.
    let mut first = grpc
        .drain(request.clone())
        .await
        .expect("drain")
        .into_inner();
    let _ = tokio::time::timeout(Duration::from_secs(60), first.message())
        .await
        .expect("a first report")
        .expect("drain stream");
    drop(first);
    let mut joined = grpc
        .drain(request.clone())
        .await
        .expect("drain")
        .into_inner();
    let reports = read_drain(&mut joined, Duration::from_secs(180)).await;
    let last = reports.last().expect("at least one report");
    assert!(last.done, "the drain ends done: {reports:?}");
    assert_eq!((last.remaining_replicas, last.moving_partitions), (0, 0));

    let after = client.metadata(None, false).await.expect("metadata");
    let still = partitions_where(&after, "drained", |p| p.replicas.contains(&node));
    assert!(still.is_empty(), "node {node} still in {still:?}");
    assert!(client
        .list_reassignments(None)
        .await
        .expect("list")
        .is_empty());
    // Replication factor kept.
    assert!(after
        .topics
        .iter()
        .filter(|t| t.name == "drained")
        .flat_map(|t| &t.partitions)
        .all(|p| p.replicas.len() == 2));
    assert!(
        throttle_gone(&client, "drained", &[0, 1, 2, 3]).await,
        "the throttle configs are removed"
    );

    // Every record is still readable.
    let mut consumer = Consumer::new(
        &client,
        "drained",
        None,
        StartAt::Earliest,
        FetchOptions::default(),
    )
    .await
    .expect("consumer");
    let mut values = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while values.len() < produced {
        assert!(
            Instant::now() < deadline,
            "read {} of {produced} records",
            values.len()
        );
        if let Ok(records) = consumer.poll().await {
            values.extend(records.into_iter().map(|r| r.value.expect("value")));
        }
    }
    assert_eq!(values.len(), produced);

    // A second drain of an empty broker is done at once.
    let mut again = grpc.drain(request).await.expect("drain").into_inner();
    let reports = read_drain(&mut again, Duration::from_secs(30)).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].done && reports[0].remaining_replicas == 0,
        "{reports:?}"
    );
    agent.shutdown().await;
}

#[tokio::test]
async fn cancel_drain_stops_the_moves_and_removes_the_throttle() {
    let _serial = ONE_CLUSTER_AT_A_TIME.lock().await;
    let cluster = Cluster::start(4).await;
    let client = cluster.client().await;
    create_topic(&client, "slow", 8, 2, &[]).await;
    wait_fully_replicated(&client, "slow").await;
    // Many batches per partition: at 1 byte/s no new replica can catch up.
    fill(&client, "slow", 8, 10, 10, 1000).await;
    let before = client.metadata(None, false).await.expect("metadata");
    let node = 1;
    let hosted = partitions_where(&before, "slow", |p| p.replicas.contains(&node));
    assert!(!hosted.is_empty(), "node {node} hosts nothing: {before:?}");

    let agent = start_agent_with(cluster.member(node).agent_config()).await;
    let mut grpc = agent_client(&agent).await;
    let request = DrainRequest {
        throttle_bytes_per_second: 1,
        avoid_brokers: Vec::new(),
    };
    let mut stream = grpc
        .drain(request.clone())
        .await
        .expect("drain")
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = tokio::time::timeout_at(deadline.into(), stream.message())
            .await
            .expect("reassignments submitted within 60 s")
            .expect("stream")
            .expect("the stream stays open while moving");
        assert!(!p.done, "{p:?}");
        if p.moving_partitions > 0 {
            break;
        }
    }
    drop(stream);
    // The throttle is in force while the drain runs.
    let rates = client
        .describe_broker_configs(Some(node))
        .await
        .expect("configs");
    let rate = rates
        .iter()
        .find(|e| e.name == LEADER_THROTTLE_RATE)
        .expect("rate");
    assert_eq!(rate.value.as_deref(), Some("1"));
    assert!(!throttle_gone(&client, "slow", &[0, 1, 2, 3]).await);

    // The job outlived its stream: a new Drain joins it and sees it still moving.
    let mut joined = grpc.drain(request).await.expect("drain").into_inner();
    let p = tokio::time::timeout(Duration::from_secs(30), joined.message())
        .await
        .expect("a report")
        .expect("stream")
        .expect("a report from the running job");
    assert!(
        !p.done && p.remaining_replicas as usize == hosted.len(),
        "{p:?}"
    );

    let cancelled = grpc
        .cancel_drain(CancelDrainRequest {})
        .await
        .expect("cancel")
        .into_inner()
        .cancelled_partitions;
    assert_eq!(cancelled as usize, hosted.len());
    let rest = read_drain(&mut joined, Duration::from_secs(30)).await;
    let last = rest.last().expect("a final report");
    assert!(!last.done && last.detail.contains("cancelled"), "{rest:?}");

    let names = ["slow".to_string()];
    eventually_within(
        "the cancelled moves reverted",
        Duration::from_secs(60),
        || {
            let client = &client;
            let names = &names;
            let hosted = &hosted;
            async move {
                let ongoing = client.list_reassignments(None).await.ok()?;
                let m = client.metadata(Some(names), false).await.ok()?;
                let now = partitions_where(&m, "slow", |p| p.replicas.contains(&node));
                let reverted = m
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .all(|p| p.replicas.len() == 2);
                (ongoing.is_empty() && &now == hosted && reverted).then_some(())
            }
        },
    )
    .await;
    assert!(
        throttle_gone(&client, "slow", &[0, 1, 2, 3]).await,
        "throttle removed"
    );
    // Nothing left to cancel.
    let again = grpc
        .cancel_drain(CancelDrainRequest {})
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(again.cancelled_partitions, 0);
    agent.shutdown().await;
}

#[tokio::test]
async fn can_restart_allows_a_broker_that_is_not_ready_without_asking_further() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An admin port whose /readyz answers 503, and no Kafka listener at all: an agent that
    // went on to ask the broker would answer UNAVAILABLE instead.
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin_addr = admin.local_addr().expect("addr").to_string();
    let fake = tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = admin.accept().await else {
                return;
            };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let agent = start_agent_with(AgentConfig {
        broker_admin: admin_addr,
        broker_kafka: "127.0.0.1:1".into(),
        node_id: Some(0),
        data_dir: None,
        sasl: None,
    })
    .await;
    let mut grpc = agent_client(&agent).await;
    let reply = grpc
        .can_restart(CanRestartRequest {})
        .await
        .expect("can_restart answers")
        .into_inner();
    assert!(reply.safe, "{reply:?}");
    assert!(reply.reasons.is_empty() && reply.at_risk_partitions.is_empty());
    fake.abort();
    agent.shutdown().await;
}

/// A broker whose only Kafka listener is SASL_PLAINTEXT (user `admin`, password in
/// `password_file`): its ready line's `kafka=` is that listener.
fn start_sasl_broker(
    dir: &std::path::Path,
    password_file: &std::path::Path,
) -> (Child, String, String) {
    let mut child = Command::new(broker_bin())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listeners", "SASL_PLAINTEXT://127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(["--controller-listen", "127.0.0.1:0"])
        .args(["--sasl-bootstrap-user", "admin"])
        .arg("--sasl-bootstrap-password-file")
        .arg(password_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = loop {
        let line = lines
            .next()
            .expect("broker printed a ready line")
            .expect("read broker stdout");
        if let Some(rest) = line.strip_prefix("runnel-broker ready ") {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let field = |name: &str| {
        ready
            .split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing from {ready:?}"))
            .to_string()
    };
    (child, field("kafka="), field("admin="))
}

#[tokio::test]
async fn on_a_sasl_listener_the_agent_logs_in_with_its_password_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "operator-secret\n").expect("write");
    let (mut child, kafka, admin) = start_sasl_broker(dir.path(), &password_file);
    let config = |sasl: Option<runnel_agent::AgentSasl>| AgentConfig {
        broker_admin: admin.clone(),
        broker_kafka: kafka.clone(),
        node_id: Some(0),
        data_dir: None,
        sasl,
    };
    let sasl = |file: PathBuf| runnel_agent::AgentSasl {
        mechanism: "SCRAM-SHA-512".into(),
        username: "admin".into(),
        password_file: file,
    };

    // With the password file: BrokerStatus answers from the broker's metadata.
    let agent = start_agent_with(config(Some(sasl(password_file.clone())))).await;
    let mut grpc = agent_client(&agent).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match grpc.broker_status(BrokerStatusRequest {}).await {
            Ok(reply) => break reply.into_inner(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("BrokerStatus over SASL: {e}"),
        }
    };
    assert_eq!(status.node_id, 0, "{status:?}");
    agent.shutdown().await;

    // Without credentials, or with a wrong or missing password file: UNAVAILABLE, saying why.
    for (config, says) in [
        (config(None), "broker kafka"),
        (
            config(Some(sasl(dir.path().join("missing")))),
            "SASL password file",
        ),
    ] {
        let agent = start_agent_with(config).await;
        let err = agent_client(&agent)
            .await
            .broker_status(BrokerStatusRequest {})
            .await
            .expect_err("refused");
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert!(err.message().contains(says), "{says}: {}", err.message());
        agent.shutdown().await;
    }
    std::fs::write(dir.path().join("wrong"), "guess\n").expect("write");
    let agent = start_agent_with(config(Some(sasl(dir.path().join("wrong"))))).await;
    let err = agent_client(&agent)
        .await
        .broker_status(BrokerStatusRequest {})
        .await
        .expect_err("a wrong password is refused");
    assert!(
        err.message().contains("authentication"),
        "{}",
        err.message()
    );
    agent.shutdown().await;
    let _ = child.kill();
    let _ = child.wait();
}
