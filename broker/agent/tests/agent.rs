//! The agent against a real `runnel-broker` process, called over gRPC with the generated client.
//! Needs `cargo build -p runnel-server` first (the broker binary in target/debug).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runnel_agent::proto::{BrokerStatusRequest, HealthRequest};
use runnel_agent::{AgentClient, AgentConfig, AgentService};
use runnel_client::{Client, ClientConfig, NewTopic};
use tokio::sync::oneshot;

struct Broker {
    child: Child,
    kafka: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
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
            _dir: dir,
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind agent");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let service = AgentService::new(AgentConfig {
        broker_admin: broker.admin.clone(),
        broker_kafka: broker.kafka.clone(),
        node_id: None,
        data_dir: None,
    });
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
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
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
