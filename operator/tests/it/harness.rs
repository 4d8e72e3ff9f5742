//! Test harness: the fake apiserver, a reconcile Context on it held to the chart's RBAC, and a
//! kubelet with a StatefulSet controller for the Cluster's brokers.
//!
//! [`Env::kubelet`] plays both for real: one `runnel-broker` per replica forming one cluster
//! (node id = ordinal, pod 0's metadata listener as every broker's seed), a `runnel-agent`
//! sidecar beside each, data directories that live as long as their PersistentVolumeClaim
//! objects, Pods labelled with their template's revision, rolling updates or OnDelete, scale
//! up and down, and the StatefulSet status computed from the brokers' own `/readyz`. Every stop
//! and start is recorded in a timeline tests can assert on ([`Env::timeline`],
//! [`max_down_at_once`], [`restart_order`]); [`Env::drive`] alternates reconciles and kubelet
//! passes until a condition holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use runnel_operator::controller::{self, Context};
use runnel_operator::crd::{Cluster, ClusterSpec, StorageSpec, Topic};
use runnel_operator::kafka::BootstrapResolver;
use runnel_operator::metrics::Metrics;
use runnel_operator::Error;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::fake_api::FakeApi;
use crate::rbac::{ChartValues, Rbac};

pub(crate) const NS: &str = "kafka";

/// How long a broker or agent may take to print its ready line (a joining broker waits for the
/// metadata quorum).
const READY_LINE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping broker may take after SIGTERM (it fsyncs and closes every log) before it
/// is killed; the pod's terminationGracePeriodSeconds plays this part in a cluster.
const STOP_GRACE: Duration = Duration::from_secs(60);
/// How long a kubelet pass waits for the brokers it started to answer `/readyz` with 200, so
/// one pass leaves a started pod Ready as a kubelet's first readiness probes would.
const READY_WAIT: Duration = Duration::from_secs(20);
/// Address of a port nothing listens on: what an unreachable Service resolves to.
const CLOSED: &str = "127.0.0.1:1";

// ---------------------------------------------------------------------------------------------
// Binaries

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$env_var` if set, else `target/debug/<bin>`, built once with cargo when missing (the shared
/// target directory makes later runs free).
fn binary(env_var: &str, package: &str, bin: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return path.into();
    }
    let root = workspace_root();
    let path = root.join("target/debug").join(bin);
    if !path.exists() {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-p", package, "--bin", bin])
            .current_dir(&root)
            .status()
            .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
        assert!(status.success(), "cargo build -p {package} failed");
    }
    path
}

pub(crate) fn broker_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| binary("RUNNEL_BROKER_BIN", "runnel-server", "runnel-broker"))
        .clone()
}

fn agent_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| binary("RUNNEL_AGENT_BIN", "runnel-agent", "runnel-agent"))
        .clone()
}

/// Whether the agent's `--help` lists `--data-dir` (a flag being added in parallel; older
/// agents refuse it).
fn agent_has_data_dir() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new(agent_binary())
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--data-dir"))
            .unwrap_or(false)
    })
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process with stdout drained by a thread (which hands over the ready line) and stderr
/// appended to a log file; killed and reaped on drop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Spawns `cmd`; the receiver gets the rest of the first stdout line starting with
    /// `ready_prefix`, or is dropped if the process exits first.
    fn spawn(mut cmd: Command, log: &Path, ready_prefix: &'static str) -> (Process, ReadyLine) {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open process log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Keep reading to the end so the process never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix(ready_prefix) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.to_string());
                    }
                }
            }
        });
        (
            Process {
                child,
                log: log.to_path_buf(),
            },
            rx,
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the process's stderr, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Asks the process to stop (SIGTERM, as the kubelet does).
    fn terminate(&self) {
        // std cannot send SIGTERM and the workspace forbids unsafe code (libc::kill).
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// Whether the process has exited (reaping it if so).
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `grace` for the process to exit after [`Process::terminate`], then kills it.
    async fn wait_stopped(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while !self.exited() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ready line a [`Process`]'s stdout reader hands over.
type ReadyLine = oneshot::Receiver<String>;

/// Waits for the ready line: `Err(log tail)` when the process exits without one.
async fn ready_line(process: &Process, rx: ReadyLine, what: &str) -> Result<String, String> {
    match tokio::time::timeout(READY_LINE_TIMEOUT, rx).await {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(_)) => Err(process.log_tail()),
        Err(_) => panic!(
            "{what} printed no ready line within {READY_LINE_TIMEOUT:?}; its log ends:\n{}",
            process.log_tail()
        ),
    }
}

/// `key=value` fields of a ready line.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .collect()
}

/// GETs `/readyz` on a broker's admin address: true iff it answers 200.
async fn readyz(admin: &str) -> bool {
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await.ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.ends_with(b" 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), probe).await,
        Ok(Some(true))
    )
}

// ---------------------------------------------------------------------------------------------
// Pods

/// The addresses a pod keeps across restarts, as its DNS name and ports stay the same.
#[derive(Clone, Debug)]
struct PodAddrs {
    kafka: String,
    admin: String,
    controller: String,
    agent: String,
}

/// One pod's containers: a `runnel-broker` and its `runnel-agent` sidecar; both killed on drop.
pub(crate) struct Broker {
    process: Process,
    agent: Process,
    /// Node id (= the pod's ordinal).
    pub(crate) node_id: i32,
    pub(crate) kafka_addr: String,
    pub(crate) admin_addr: String,
    pub(crate) controller_addr: String,
    /// `host:port` of the agent's gRPC listener.
    pub(crate) agent_addr: String,
    /// The data directory, the one of the pod's claim `data-<pod>`.
    pub(crate) data_dir: PathBuf,
    /// `controller-revision-hash` of the Pod this broker runs for.
    pub(crate) revision: String,
    /// uid of that Pod object: another uid (or none) under the same name means it was deleted.
    pod_uid: String,
    /// Whether `/readyz` has answered 200 since this start (the Ready event is recorded).
    ready: bool,
    /// The Ready condition last written to the Pod's status.
    pod_ready: Option<bool>,
}

impl Broker {
    /// The broker's process id: the same id before and after an operation means the broker
    /// was not restarted.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The agent's process id.
    pub(crate) fn agent_pid(&self) -> u32 {
        self.agent.pid()
    }
}

/// What happened to a pod's broker, in the order of [`Env::timeline`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PodEvent {
    /// SIGTERM sent (pod deleted, replaced, scaled away, or its template rolled).
    Stopping,
    /// The process exited (or its container crashed).
    Stopped,
    /// A broker printed its ready line (listeners bound, quorum joined).
    Started,
    /// The first kubelet pass after a start in which `/readyz` answered 200.
    Ready,
}

/// Ordered `(when, pod name, what)` events.
pub(crate) type Timeline = Vec<(Instant, String, PodEvent)>;

/// The most brokers that were down at once: a broker counts as down from its `Stopping` (or a
/// `Stopped` without one: a crash) until its next `Ready`; a pod scaled away stays down.
pub(crate) fn max_down_at_once(timeline: &[(Instant, String, PodEvent)]) -> usize {
    let mut down = BTreeSet::new();
    let mut max = 0;
    for (_, pod, event) in timeline {
        match event {
            PodEvent::Stopping | PodEvent::Stopped => {
                down.insert(pod.as_str());
            }
            PodEvent::Ready => {
                down.remove(pod.as_str());
            }
            PodEvent::Started => {}
        }
        max = max.max(down.len());
    }
    max
}

/// The pods in the order they were stopped (one entry per `Stopping`).
pub(crate) fn restart_order(timeline: &[(Instant, String, PodEvent)]) -> Vec<String> {
    timeline
        .iter()
        .filter(|(_, _, e)| *e == PodEvent::Stopping)
        .map(|(_, pod, _)| pod.clone())
        .collect()
}

/// A claim's directory, tied to the claim object's uid.
struct ClaimDir {
    uid: String,
    dir: PathBuf,
}

/// The StatefulSet as one kubelet pass sees it.
struct StsView {
    cluster: String,
    name: String,
    replicas: i32,
    spec: Value,
    /// `<sts>-<hash of spec.template>`.
    update_revision: String,
    owner: Value,
}

impl StsView {
    fn pod_name(&self, ordinal: i32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The ordinal of `pod` if it is one of this StatefulSet's pods.
    fn ordinal(&self, pod: &str) -> Option<i32> {
        let suffix = pod.strip_prefix(&self.name)?.strip_prefix('-')?;
        if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        suffix.parse().ok()
    }

    /// The Pod the StatefulSet controller creates for `ordinal` from the current template.
    fn pod(&self, ordinal: i32, pid: u32, node: Option<&str>) -> Pod {
        let name = self.pod_name(ordinal);
        let template = &self.spec["template"];
        let mut labels = template["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["controller-revision-hash"] = json!(self.update_revision);
        labels["apps.kubernetes.io/pod-index"] = json!(ordinal.to_string());
        labels["statefulset.kubernetes.io/pod-name"] = json!(name);
        let mut annotations = template["metadata"]["annotations"].clone();
        if !annotations.is_object() {
            annotations = json!({});
        }
        annotations["runnel.test/pid"] = json!(pid.to_string());
        let mut spec = template["spec"].clone();
        spec["hostname"] = json!(name);
        if let Some(node) = node {
            // What the scheduler binds.
            spec["nodeName"] = json!(node);
        }
        if let Some(service) = self.spec["serviceName"].as_str() {
            spec["subdomain"] = json!(service);
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "labels": labels, "annotations": annotations,
                "ownerReferences": self.owner,
            },
            "spec": spec,
        }))
        .expect("Pod from the template")
    }

    fn rolling_update(&self) -> bool {
        self.spec["updateStrategy"]["type"]
            .as_str()
            .is_none_or(|t| t == "RollingUpdate")
    }

    fn partition(&self) -> i32 {
        self.spec["updateStrategy"]["rollingUpdate"]["partition"]
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(0)
    }

    fn parallel(&self) -> bool {
        self.spec["podManagementPolicy"] == "Parallel"
    }

    fn delete_claims_when_scaled(&self) -> bool {
        self.spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Delete"
    }

    /// Names of the claims of `pod`, one per volumeClaimTemplate (`<template>-<pod>`).
    fn claim_names(&self, pod: &str) -> Vec<String> {
        self.claim_templates()
            .iter()
            .filter_map(|t| t["metadata"]["name"].as_str())
            .map(|t| format!("{t}-{pod}"))
            .collect()
    }

    fn claim_templates(&self) -> Vec<Value> {
        self.spec["volumeClaimTemplates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The pod template's containers of one kind (`containers`, `initContainers`).
    fn containers(&self, kind: &str) -> Vec<Value> {
        self.spec["template"]["spec"][kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The template's volume `name`.
    fn volume(&self, name: &str) -> Option<Value> {
        self.spec["template"]["spec"]["volumes"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
    }

    /// The volume `container` mounts at `path` or above it, with the rest of the path.
    fn mounted(&self, container: &Value, path: &str) -> Option<(Value, String)> {
        container["volumeMounts"].as_array()?.iter().find_map(|m| {
            let at = m["mountPath"].as_str()?.trim_end_matches('/');
            let rest = path.strip_prefix(at)?;
            if !(rest.is_empty() || rest.starts_with('/')) {
                return None;
            }
            let volume = self.volume(m["name"].as_str()?)?;
            Some((volume, rest.trim_start_matches('/').to_string()))
        })
    }

    /// Whether `container` mounts a projected ServiceAccount token where in-cluster clients read
    /// it (without one, `kube::Client::try_default` in the pod has no credentials).
    fn mounts_api_token(&self, container: &Value) -> bool {
        let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
        self.mounted(container, &format!("{dir}/token"))
            .is_some_and(|(volume, rest)| {
                volume["projected"]["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s["serviceAccountToken"]["path"] == rest.as_str())
            })
    }

    /// The ConfigMap mounted in the pod template (the brokers' `runnel.toml`), if any.
    fn config_map(&self) -> Option<String> {
        self.spec["template"]["spec"]["volumes"]
            .as_array()?
            .iter()
            .find_map(|v| v["configMap"]["name"].as_str())
            .map(str::to_string)
    }
}

/// The `controller-revision-hash` label of a Pod.
fn revision_label_of(pod: &Pod) -> String {
    pod.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

/// A stable, short hash of a JSON value (keys in sorted order), as the StatefulSet controller's
/// revision names carry.
pub(crate) fn revision_hash(value: &Value) -> String {
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    canonical(&map[key], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for item in items {
                    canonical(item, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    canonical(value, &mut text);
    // FNV-1a: stable across processes and Rust versions, unlike std's DefaultHasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{:010x}", hash & 0xff_ffff_ffff)
}

// ---------------------------------------------------------------------------------------------
// Resolver

/// Where the harness's brokers and agents of one Cluster listen.
#[derive(Clone, Default)]
struct Endpoints {
    bootstrap: String,
    agents: BTreeMap<i32, String>,
}

/// Points each Cluster (by namespace/name) at the local brokers and agents the harness started
/// for it.
#[derive(Default)]
pub(crate) struct LocalBrokers(Mutex<HashMap<(String, String), Endpoints>>);

impl LocalBrokers {
    /// Sets the bootstrap servers of a Cluster.
    pub(crate) fn set(&self, ns: &str, name: &str, bootstrap: String) {
        self.0
            .lock()
            .expect("lock")
            .entry((ns.into(), name.into()))
            .or_default()
            .bootstrap = bootstrap;
    }

    fn set_agents(&self, ns: &str, name: &str, agents: BTreeMap<i32, String>) {
        self.0
            .lock()
            .expect("lock")
            .entry((ns.into(), name.into()))
            .or_default()
            .agents = agents;
    }

    fn endpoints(&self, cluster: &Cluster) -> Endpoints {
        let key = (cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.0
            .lock()
            .expect("lock")
            .get(&key)
            .cloned()
            .unwrap_or_default()
    }
}

impl BootstrapResolver for LocalBrokers {
    fn bootstrap(&self, cluster: &Cluster) -> Result<String, Error> {
        // An unknown cluster resolves to a closed port: connecting fails like an unreachable
        // Service would.
        let bootstrap = self.endpoints(cluster).bootstrap;
        Ok(if bootstrap.is_empty() {
            CLOSED.into()
        } else {
            bootstrap
        })
    }

    fn agent(&self, cluster: &Cluster, ordinal: i32) -> Result<String, Error> {
        let endpoints = self.endpoints(cluster);
        let addr = endpoints
            .agents
            .get(&ordinal)
            .map_or(CLOSED, String::as_str);
        Ok(format!("http://{addr}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Env

/// A fake apiserver, a Context on it, and the pods the kubelet runs.
pub(crate) struct Env {
    pub(crate) api: FakeApi,
    /// A cluster admin's client: tests create and observe objects with it, as a user would.
    pub(crate) client: kube::Client,
    /// The operator's client, held to the RBAC the chart grants it (`ctx` uses it too).
    pub(crate) operator: kube::Client,
    pub(crate) ctx: Arc<Context>,
    pub(crate) resolver: Arc<LocalBrokers>,
    /// The broker running for each pod, by pod name (namespace NS). Declared before `root` so
    /// the processes are killed before their directories are removed.
    pub(crate) brokers: BTreeMap<String, Broker>,
    /// Addresses of every pod that has run, by pod name: a restarted pod keeps them.
    addrs: BTreeMap<String, PodAddrs>,
    /// The directory of each claim object the kubelet knows, by claim name.
    claims: BTreeMap<String, ClaimDir>,
    /// Directories of deleted claims, removed once no broker runs on them.
    released: Vec<PathBuf>,
    timeline: Timeline,
    /// Pods whose init container failed, by pod name, with the Pod's uid: the kubelet retries
    /// their init containers in the same Pod on each pass, as a real one does with backoff.
    init_failed: BTreeMap<String, String>,
    /// Claims' data, logs (`logs/<pod>.broker.log`, `.agent.log`) and config files; kept after
    /// the test when `RUNNEL_KEEP_TEST_DIRS` is set.
    root: tempfile::TempDir,
}

pub(crate) fn cluster_spec(replicas: i32) -> ClusterSpec {
    ClusterSpec {
        replicas,
        image: None,
        storage: StorageSpec {
            size: "1Gi".into(),
            storage_class: None,
            delete_claim: false,
        },
        resources: None,
        config: Default::default(),
        agent: None,
        rack_label: None,
        pod_template: None,
        metrics: None,
        rebalance: None,
        image_policy: Default::default(),
        listeners: Vec::new(),
        require_tls_external: false,
    }
}

/// Polls `check` until it returns Some, failing after `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A StatefulSet's name from its Cluster's.
pub(crate) fn sts_name(cluster: &str) -> String {
    format!("{cluster}-brokers")
}

impl Env {
    /// The operator installed with the chart's default values.
    pub(crate) fn new() -> Env {
        Env::installed_with(ChartValues::Default)
    }

    /// The operator installed with `values`: its client holds the RBAC the chart renders with
    /// them, and its settings are the flags the chart's Deployment passes with them.
    pub(crate) fn installed_with(values: ChartValues) -> Env {
        let api = FakeApi::new();
        let client = api.client();
        let operator = api.client_as(Rbac::chart(values));
        let resolver = Arc::new(LocalBrokers::default());
        let mut ctx = Context::new(
            operator.clone(),
            Metrics::new(),
            resolver.clone(),
            Some("test".into()),
        );
        ctx.service_monitors = matches!(values, ChartValues::ServiceMonitor);
        // The chart installs the brokers' rack ClusterRole and passes its name to the operator.
        let rack_role = Rbac::chart_rack_role(values);
        api.seed(
            "apis/rbac.authorization.k8s.io/v1",
            "clusterroles",
            "",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": rack_role.name}, "rules": rack_role.rules,
            }),
        );
        ctx.rack_cluster_role = Some(rack_role.name);
        let mut root = tempfile::Builder::new()
            .prefix("runnel-kubelet-")
            .tempdir()
            .expect("tempdir");
        if std::env::var_os("RUNNEL_KEEP_TEST_DIRS").is_some() {
            // Brokers' and agents' logs and data for a post-mortem; the caller removes them.
            root.disable_cleanup(true);
            eprintln!("kubelet directory (kept): {}", root.path().display());
        }
        for sub in ["claims", "logs", "config", "volumes", "emptydirs"] {
            std::fs::create_dir_all(root.path().join(sub)).expect("kubelet dirs");
        }
        Env {
            api,
            client,
            operator,
            ctx: Arc::new(ctx),
            resolver,
            brokers: BTreeMap::new(),
            addrs: BTreeMap::new(),
            claims: BTreeMap::new(),
            released: Vec::new(),
            timeline: Vec::new(),
            init_failed: BTreeMap::new(),
            root,
        }
    }

    /// Every stop and start of a broker so far, in order.
    pub(crate) fn timeline(&self) -> Timeline {
        self.timeline.clone()
    }

    fn record(&mut self, pod: &str, event: PodEvent) {
        self.timeline.push((Instant::now(), pod.to_string(), event));
    }

    /// The broker of pod `<cluster>-brokers-<ordinal>`; panics when it does not run.
    pub(crate) fn broker(&self, cluster: &str, ordinal: i32) -> &Broker {
        let pod = format!("{}-{ordinal}", sts_name(cluster));
        self.brokers
            .get(&pod)
            .unwrap_or_else(|| panic!("no broker runs for pod {pod}"))
    }

    /// Deletes the Pod object `<cluster>-brokers-<ordinal>` as a user or the operator would;
    /// the next kubelet pass restarts its broker.
    pub(crate) async fn delete_pod(&self, cluster: &str, ordinal: i32) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        pods.delete(
            &format!("{}-{ordinal}", sts_name(cluster)),
            &DeleteParams::default(),
        )
        .await
        .expect("delete Pod");
    }

    /// One pass of the StatefulSet controller and the kubelet for the Cluster's StatefulSet,
    /// from current state (idempotent; call it repeatedly):
    ///
    /// - a broker whose Pod object was deleted is stopped (SIGTERM) and started again on the
    ///   same data and addresses under a new Pod from the current template; a crashed broker
    ///   is restarted in its Pod; an orphaned Pod is adopted with its broker kept;
    /// - pods of ordinals >= replicas are stopped and deleted (their claims too when
    ///   `persistentVolumeClaimRetentionPolicy.whenScaled` is `Delete`);
    /// - claims `<template>-<pod>` are created bound from the volumeClaimTemplates (a grown
    ///   request is expanded at once, as an online expansion ends); a claim's data directory
    ///   goes when its claim object does;
    /// - missing pods are created (all at once with `podManagementPolicy: Parallel`, else one
    ///   per pass once the lower ordinals are Ready), pod 0 first when the cluster is new;
    /// - with the RollingUpdate strategy and every pod Ready, the highest ordinal not at the
    ///   update revision (and >= the partition) is deleted and re-created; OnDelete leaves
    ///   pods at their revision until they are deleted;
    /// - each Pod's Ready condition and the StatefulSet status come from the brokers'
    ///   `/readyz`; the resolver points at the running brokers and agents.
    pub(crate) async fn kubelet(&mut self, cluster: &str) {
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), NS);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let name = sts_name(cluster);
        let sts = sts_api
            .get(&name)
            .await
            .expect("the Cluster reconciler created the StatefulSet");
        let spec = serde_json::to_value(&sts.spec).expect("json");
        let view = StsView {
            cluster: cluster.to_string(),
            replicas: sts.spec.replicas.unwrap_or(1),
            update_revision: format!("{name}-{}", revision_hash(&spec["template"])),
            owner: json!([{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                "uid": sts.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }]),
            name,
            spec,
        };
        self.release_claims().await;

        // Pods whose object is gone or replaced: their containers stop. Orphans are adopted.
        let objects: BTreeMap<String, Pod> = pods
            .list(&ListParams::default())
            .await
            .expect("list Pods")
            .items
            .into_iter()
            .filter(|p| view.ordinal(&p.name_any()).is_some())
            .map(|p| (p.name_any(), p))
            .collect();
        let running: Vec<String> = self
            .brokers
            .keys()
            .filter(|p| view.ordinal(p).is_some())
            .cloned()
            .collect();
        let mut deleted = Vec::new();
        for pod in &running {
            match objects.get(pod) {
                Some(object) if object.uid().as_deref() == Some(&self.brokers[pod].pod_uid) => {
                    let controlled = object
                        .owner_references()
                        .iter()
                        .any(|o| o.controller == Some(true));
                    if !controlled {
                        pods.patch(
                            pod,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"metadata": {"ownerReferences": view.owner}})),
                        )
                        .await
                        .expect("adopt Pod");
                    }
                }
                _ => deleted.push(pod.clone()),
            }
        }
        self.stop(&deleted).await;

        // Scale-down: everything at ordinals >= replicas goes, highest first.
        let mut extra: Vec<String> = self
            .brokers
            .keys()
            .chain(objects.keys())
            .filter(|p| view.ordinal(p).is_some_and(|o| o >= view.replicas))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        extra.sort_by_key(|p| std::cmp::Reverse(view.ordinal(p)));
        if !extra.is_empty() {
            self.stop(&extra).await;
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), NS);
            for pod in &extra {
                if objects.contains_key(pod) {
                    pods.delete(pod, &DeleteParams::default())
                        .await
                        .expect("delete scaled-down Pod");
                }
                if view.delete_claims_when_scaled() {
                    for claim in view.claim_names(pod) {
                        if claims.get_opt(&claim).await.expect("get claim").is_some() {
                            claims
                                .delete(&claim, &DeleteParams::default())
                                .await
                                .expect("delete claim");
                        }
                    }
                }
            }
            self.release_claims().await;
        }

        // Crashed containers restart in their pod.
        let crashed: Vec<String> = self
            .brokers
            .iter_mut()
            .filter_map(|(p, b)| {
                (view.ordinal(p).is_some() && b.process.exited()).then(|| p.clone())
            })
            .collect();
        let mut restarts = Vec::new();
        for pod in crashed {
            let broker = self.brokers.remove(&pod).expect("crashed broker");
            self.record(&pod, PodEvent::Stopped);
            restarts.push((pod, broker.revision.clone(), Some(broker.pod_uid.clone())));
        }

        // Pods whose init containers failed: forgotten once their Pod is gone or replaced (or
        // scaled away); otherwise retried in the same Pod.
        self.init_failed.retain(|pod, uid| {
            view.ordinal(pod).is_some_and(|o| o < view.replicas)
                && objects
                    .get(pod)
                    .is_some_and(|object| object.uid().as_deref() == Some(uid.as_str()))
        });
        for (pod, uid) in &self.init_failed {
            if view.ordinal(pod).is_some() {
                restarts.push((
                    pod.clone(),
                    revision_label_of(&objects[pod]),
                    Some(uid.clone()),
                ));
            }
        }

        // Claims for every ordinal that should run.
        for ordinal in 0..view.replicas {
            self.ensure_claims(&view, &view.pod_name(ordinal)).await;
        }

        // Missing pods.
        let missing: Vec<i32> = (0..view.replicas)
            .filter(|o| {
                let pod = view.pod_name(*o);
                !self.brokers.contains_key(&pod)
                    && !restarts.iter().any(|(p, _, _)| *p == pod)
                    && !self.init_failed.contains_key(&pod)
            })
            .collect();
        let create: Vec<i32> = if view.parallel() {
            missing
        } else {
            // OrderedReady: the lowest missing ordinal, once every lower one is Ready.
            let mut create = Vec::new();
            if let Some(&first) = missing.first() {
                let mut lower_ready = true;
                for o in 0..first {
                    let admin = self
                        .brokers
                        .get(&view.pod_name(o))
                        .map(|b| b.admin_addr.clone());
                    lower_ready &= match admin {
                        Some(admin) => readyz(&admin).await,
                        None => false,
                    };
                }
                if lower_ready {
                    create.push(first);
                }
            }
            create
        };
        for ordinal in create {
            let pod = view.pod_name(ordinal);
            if objects.contains_key(&pod) {
                // A Pod object no broker runs for (made by someone else): replace it.
                pods.delete(&pod, &DeleteParams::default())
                    .await
                    .expect("replace Pod");
            }
            restarts.push((pod, view.update_revision.clone(), None));
        }
        let started = self.start(&view, restarts).await;

        // Rolling update: with every pod Ready, replace the highest one at an old revision.
        let mut rolled = Vec::new();
        if view.rolling_update() && started.is_empty() {
            let mut all_ready = true;
            for ordinal in 0..view.replicas {
                let admin = self
                    .brokers
                    .get(&view.pod_name(ordinal))
                    .map(|b| b.admin_addr.clone());
                all_ready &= match admin {
                    Some(admin) => readyz(&admin).await,
                    None => false,
                };
            }
            let next = (view.partition()..view.replicas).rev().find(|o| {
                self.brokers
                    .get(&view.pod_name(*o))
                    .is_some_and(|b| b.revision != view.update_revision)
            });
            if let (true, Some(ordinal)) = (all_ready, next) {
                let pod = view.pod_name(ordinal);
                pods.delete(&pod, &DeleteParams::default())
                    .await
                    .expect("delete Pod of an old revision");
                self.stop(std::slice::from_ref(&pod)).await;
                rolled = self
                    .start(&view, vec![(pod, view.update_revision.clone(), None)])
                    .await;
            }
        }

        // Pods started in this pass get their first readiness probes.
        let fresh: Vec<String> = started.into_iter().chain(rolled).collect();
        let deadline = Instant::now() + READY_WAIT;
        for pod in &fresh {
            let admin = self.brokers[pod].admin_addr.clone();
            while !readyz(&admin).await && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.probe_and_publish(&view, &sts).await;
    }

    /// Stops the brokers of `pods` gracefully, all at once (SIGTERM, then SIGKILL after the
    /// grace period), recording Stopping and Stopped.
    async fn stop(&mut self, pods: &[String]) {
        let mut stopping = Vec::new();
        for pod in pods {
            if let Some(broker) = self.brokers.remove(pod) {
                self.record(pod, PodEvent::Stopping);
                broker.process.terminate();
                broker.agent.terminate();
                stopping.push((pod.clone(), broker));
            }
        }
        for (pod, mut broker) in stopping {
            broker.process.wait_stopped(STOP_GRACE).await;
            broker.agent.wait_stopped(STOP_GRACE).await;
            self.record(&pod, PodEvent::Stopped);
        }
    }

    /// Starts brokers (and their agents) for `(pod, revision, kept pod uid)`: pod 0 first when
    /// the cluster has no metadata listener yet, the rest at once. A new Pod object is created
    /// for each unless a uid is kept (a container restart in its pod). Returns the pods
    /// started.
    async fn start(
        &mut self,
        view: &StsView,
        pods: Vec<(String, String, Option<String>)>,
    ) -> Vec<String> {
        if pods.is_empty() {
            return Vec::new();
        }
        let config = self.write_config(view).await;
        let seed_pod = view.pod_name(0);
        let (first, rest): (Vec<_>, Vec<_>) = pods
            .into_iter()
            .partition(|(p, _, _)| *p == seed_pod && !self.addrs.contains_key(&seed_pod));
        let mut started = Vec::new();
        for batch in [first, rest] {
            if batch.is_empty() {
                continue;
            }
            let seeds = self.addrs.get(&seed_pod).map(|a| a.controller.clone());
            let mut spawned = Vec::new();
            for (pod, revision, uid) in batch {
                let ordinal = view.ordinal(&pod).expect("a pod of the StatefulSet");
                // Init containers run in a new Pod, and again while they have not succeeded;
                // a container restart in its Pod keeps what they wrote.
                if uid.is_none() || self.init_failed.contains_key(&pod) {
                    if uid.is_none() {
                        // A new Pod's emptyDir volumes start empty.
                        let dir = self.root.path().join("emptydirs").join(&pod);
                        if dir.exists() {
                            std::fs::remove_dir_all(&dir).expect("clear emptyDir volumes");
                        }
                    }
                    let node = self.node_for(ordinal).await;
                    if let Err(message) =
                        self.run_init_containers(view, &pod, node.as_deref()).await
                    {
                        self.init_container_failed(view, &pod, ordinal, uid, node, message)
                            .await;
                        continue;
                    }
                    self.init_failed.remove(&pod);
                }
                let data_dir = self.data_dir(view, &pod);
                let launch = self.spawn_broker(
                    view,
                    &pod,
                    ordinal,
                    &data_dir,
                    seeds.as_deref(),
                    config.as_deref(),
                );
                spawned.push((pod, ordinal, revision, uid, data_dir, launch));
            }
            for (pod, ordinal, revision, uid, data_dir, launch) in spawned {
                let broker = self
                    .finish_start(
                        view,
                        &pod,
                        ordinal,
                        revision,
                        uid,
                        data_dir,
                        seeds.as_deref(),
                        config.as_deref(),
                        launch,
                    )
                    .await;
                self.brokers.insert(pod.clone(), broker);
                started.push(pod);
            }
        }
        started
    }

    /// Spawns the broker of `pod` on its kept addresses (port 0 the first time).
    fn spawn_broker(
        &self,
        view: &StsView,
        pod: &str,
        ordinal: i32,
        data_dir: &Path,
        seeds: Option<&str>,
        config: Option<&Path>,
    ) -> (Process, ReadyLine) {
        let any = "127.0.0.1:0".to_string();
        let addrs = self.addrs.get(pod);
        let mut cmd = Command::new(broker_binary());
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("--node-id")
            .arg(ordinal.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(addrs.map_or(&any, |a| &a.kafka))
            .arg("--admin-listen")
            .arg(addrs.map_or(&any, |a| &a.admin))
            .arg("--controller-listen")
            .arg(addrs.map_or(&any, |a| &a.controller));
        // Every pod gets pod 0's metadata listener, as the StatefulSet's RUNNEL_SEEDS; pod 0
        // ignores its own address.
        if let Some(seeds) = seeds {
            cmd.arg("--seeds").arg(seeds);
        }
        for (name, path) in self.broker_env(view, pod) {
            cmd.env(name, path);
        }
        let log = self
            .root
            .path()
            .join("logs")
            .join(format!("{pod}.broker.log"));
        Process::spawn(cmd, &log, "runnel-broker ready ")
    }

    /// Waits for a spawned broker's ready line (spawning it again while its kept ports are
    /// still taken), starts its agent and creates its Pod object.
    #[allow(clippy::too_many_arguments)]
    async fn finish_start(
        &mut self,
        view: &StsView,
        pod: &str,
        ordinal: i32,
        revision: String,
        uid: Option<String>,
        data_dir: PathBuf,
        seeds: Option<&str>,
        config: Option<&Path>,
        (mut process, mut rx): (Process, ReadyLine),
    ) -> Broker {
        let deadline = Instant::now() + READY_LINE_TIMEOUT;
        let line = loop {
            match ready_line(&process, rx, &format!("broker of {pod}")).await {
                Ok(line) => break line,
                // A kept port can be taken for a moment (another process's ephemeral port).
                Err(log) if log.contains("in use") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    (process, rx) = self.spawn_broker(view, pod, ordinal, &data_dir, seeds, config);
                }
                Err(log) => panic!("the broker of {pod} exited before its ready line:\n{log}"),
            }
        };
        let f = fields(&line);
        let kafka = f["kafka"].to_string();
        let admin = f["admin"].to_string();
        let controller = f["controller"].to_string();
        self.record(pod, PodEvent::Started);

        let agent_listen = self
            .addrs
            .get(pod)
            .map_or_else(|| "127.0.0.1:0".to_string(), |a| a.agent.clone());
        let (agent, agent_addr) = loop {
            let mut cmd = Command::new(agent_binary());
            cmd.args(["--listen", &agent_listen])
                .args(["--broker-admin", &admin, "--broker-kafka", &kafka])
                .args(["--node-id", &ordinal.to_string()]);
            if agent_has_data_dir() {
                cmd.arg("--data-dir").arg(&data_dir);
            }
            let log = self
                .root
                .path()
                .join("logs")
                .join(format!("{pod}.agent.log"));
            let (agent, rx) = Process::spawn(cmd, &log, "runnel-agent ready ");
            match ready_line(&agent, rx, &format!("agent of {pod}")).await {
                Ok(line) => break (agent, fields(&line)["grpc"].to_string()),
                Err(log) if log.contains("in use") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(log) => panic!("the agent of {pod} exited before its ready line:\n{log}"),
            }
        };
        self.addrs.insert(
            pod.to_string(),
            PodAddrs {
                kafka: kafka.clone(),
                admin: admin.clone(),
                controller: controller.clone(),
                agent: agent_addr.clone(),
            },
        );

        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let pod_uid = match uid {
            Some(uid) => {
                // A container restart: same Pod object, new process.
                pods.patch(
                    pod,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {
                        "runnel.test/pid": process.pid().to_string(),
                    }}})),
                )
                .await
                .expect("annotate restarted Pod");
                uid
            }
            None => {
                let created = pods
                    .create(
                        &PostParams::default(),
                        &view.pod(
                            ordinal,
                            process.pid(),
                            self.node_for(ordinal).await.as_deref(),
                        ),
                    )
                    .await
                    .expect("create Pod");
                created.uid().expect("a created Pod has a uid")
            }
        };
        // A real apiserver ignores status in a create: the kubelet writes it.
        pods.patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "False"}],
            }})),
        )
        .await
        .expect("Pod status");
        Broker {
            process,
            agent,
            node_id: ordinal,
            kafka_addr: kafka,
            admin_addr: admin,
            controller_addr: controller,
            agent_addr,
            data_dir,
            revision,
            pod_uid,
            ready: false,
            pod_ready: Some(false),
        }
    }

    /// Records that `pod`'s init container failed with `message`: its Pod (created now unless it
    /// exists, `uid`) stays Pending with the container waiting in CrashLoopBackOff and the
    /// message in its last termination, as `kubectl describe pod` shows it; the broker does not
    /// start.
    async fn init_container_failed(
        &mut self,
        view: &StsView,
        pod: &str,
        ordinal: i32,
        uid: Option<String>,
        node: Option<String>,
        message: String,
    ) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let uid = match uid {
            Some(uid) => uid,
            None => pods
                .create(
                    &PostParams::default(),
                    &view.pod(ordinal, 0, node.as_deref()),
                )
                .await
                .expect("create Pod")
                .uid()
                .expect("a created Pod has a uid"),
        };
        let name = view
            .containers("initContainers")
            .first()
            .and_then(|c| c["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        pods.patch_status(
            pod,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "Initialized", "status": "False"},
                    {"type": "Ready", "status": "False"},
                ],
                "initContainerStatuses": [{
                    "name": name, "ready": false, "restartCount": 1, "image": "", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                    "lastState": {"terminated": {
                        "exitCode": 1, "reason": "Error", "message": message,
                    }},
                }],
            }})),
        )
        .await
        .expect("Pod status");
        self.init_failed.insert(pod.to_string(), uid);
    }

    /// The node the scheduler puts the pod of `ordinal` on: the Nodes that exist, by name, in
    /// turn; None while there are none (the pods then carry no nodeName).
    async fn node_for(&self, ordinal: i32) -> Option<String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let mut names: Vec<String> = nodes
            .list(&ListParams::default())
            .await
            .expect("list Nodes")
            .items
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        names.sort();
        let i = usize::try_from(ordinal).ok()? % names.len().max(1);
        names.get(i).cloned()
    }

    /// Where `path` inside `container` of `pod` lives on this machine: under one of its emptyDir
    /// volumes (`emptydirs/<pod>/<volume>`); None for a path on no emptyDir.
    fn empty_dir_path(
        &self,
        view: &StsView,
        pod: &str,
        container: &Value,
        path: &str,
    ) -> Option<PathBuf> {
        let (volume, rest) = view.mounted(container, path)?;
        volume["emptyDir"].as_object()?;
        let dir = self
            .root
            .path()
            .join("emptydirs")
            .join(pod)
            .join(volume["name"].as_str()?);
        Some(if rest.is_empty() { dir } else { dir.join(rest) })
    }

    /// The broker container's environment that names files on emptyDir volumes (the rack file),
    /// with those paths mapped to this machine.
    fn broker_env(&self, view: &StsView, pod: &str) -> Vec<(String, PathBuf)> {
        let containers = view.containers("containers");
        let Some(broker) = containers.iter().find(|c| c["name"] == "broker") else {
            return Vec::new();
        };
        broker["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let value = e["value"].as_str()?;
                let path = self.empty_dir_path(view, pod, broker, value)?;
                Some((e["name"].as_str()?.to_string(), path))
            })
            .collect()
    }

    /// Runs the pod template's init containers for `pod` on `node`, as the kubelet would before
    /// its containers start. The only one the operator makes is `runnel-agent rack`: its
    /// arguments get their `$(VAR)` references expanded from its environment (the downward API
    /// gives `spec.nodeName`), its output path is mapped to the pod's emptyDir, and it reads the
    /// Node with the pod's ServiceAccount, held to what the stored RBAC grants it, only when
    /// the container mounts a projected token. Returns the failure as the container would
    /// print it.
    async fn run_init_containers(
        &self,
        view: &StsView,
        pod: &str,
        node: Option<&str>,
    ) -> Result<(), String> {
        for c in view.containers("initContainers") {
            let name = c["name"].as_str().unwrap_or_default();
            let command: Vec<String> = serde_json::from_value(c["command"].clone())
                .map_err(|e| format!("init container {name}: command: {e}"))?;
            let args: Vec<String> = serde_json::from_value(c["args"].clone())
                .map_err(|e| format!("init container {name}: args: {e}"))?;
            assert_eq!(
                (command.as_slice(), args.first().map(String::as_str)),
                (&["runnel-agent".to_string()][..], Some("rack")),
                "the kubelet harness runs only the rack init container"
            );
            let mut vars = BTreeMap::new();
            for e in c["env"].as_array().into_iter().flatten() {
                let value = match (
                    e["value"].as_str(),
                    e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
                ) {
                    (Some(v), _) => v.to_string(),
                    (None, Some("spec.nodeName")) => node.unwrap_or_default().to_string(),
                    (None, other) => panic!("init container {name}: env from {other:?}"),
                };
                vars.insert(e["name"].as_str().unwrap_or_default().to_string(), value);
            }
            let expanded: Vec<String> = args
                .iter()
                .map(|a| {
                    vars.iter()
                        .fold(a.clone(), |a, (k, v)| a.replace(&format!("$({k})"), v))
                })
                .collect();
            let mut rack = runnel_agent::rack::RackArgs::try_parse_from(&expanded)
                .map_err(|e| format!("init container {name}: {e}"))?;
            let out = rack.out.to_string_lossy().to_string();
            rack.out = self
                .empty_dir_path(view, pod, &c, &out)
                .ok_or_else(|| format!("init container {name}: {out} is on no emptyDir volume"))?;
            std::fs::create_dir_all(rack.out.parent().expect("a file in a directory"))
                .expect("emptyDir");
            if !view.mounts_api_token(&c) {
                return Err(format!(
                    "init container {name}: no Kubernetes API configuration: no token mounted"
                ));
            }
            let account = view.spec["template"]["spec"]["serviceAccountName"]
                .as_str()
                .unwrap_or("default");
            let client = self.api.client_as_service_account(NS, account);
            runnel_agent::rack::write_rack(client, &rack)
                .await
                .map_err(|e| format!("init container {name}: {e}"))?;
        }
        Ok(())
    }

    /// Copies the mounted ConfigMap's `runnel.toml` to a file the brokers read at start (their
    /// flags override its listeners and data directory), or None without one.
    async fn write_config(&self, view: &StsView) -> Option<PathBuf> {
        let name = view.config_map()?;
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), NS);
        let map = maps.get_opt(&name).await.expect("get ConfigMap")?;
        let text = map.data?.get("runnel.toml")?.clone();
        let path = self
            .root
            .path()
            .join("config")
            .join(format!("{}.toml", view.cluster));
        std::fs::write(&path, text).expect("write runnel.toml");
        Some(path)
    }

    /// The data directory of `pod`: the one of its first claim (`data-<pod>`), or a directory
    /// of the pod's own when the StatefulSet has no volumeClaimTemplates.
    fn data_dir(&self, view: &StsView, pod: &str) -> PathBuf {
        let dir = match view.claim_names(pod).first() {
            Some(claim) => self
                .claims
                .get(claim)
                .map(|c| c.dir.join("data"))
                .unwrap_or_else(|| panic!("claim {claim} of {pod} is not bound")),
            None => self.root.path().join("volumes").join(pod),
        };
        std::fs::create_dir_all(&dir).expect("data dir");
        dir
    }

    /// Creates the claims of `pod` that are missing (bound, with the requested capacity) and
    /// expands grown ones; each new claim object gets a fresh directory.
    async fn ensure_claims(&mut self, view: &StsView, pod: &str) {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), NS);
        for template in view.claim_templates() {
            let Some(template_name) = template["metadata"]["name"].as_str() else {
                continue;
            };
            let claim_name = format!("{template_name}-{pod}");
            let claim = match claims.get_opt(&claim_name).await.expect("get claim") {
                None => {
                    let mut claim = template.clone();
                    claim["metadata"]["name"] = json!(claim_name);
                    claim["status"] = Value::Null;
                    let created = claims
                        .create(
                            &PostParams::default(),
                            &serde_json::from_value(claim).expect("claim"),
                        )
                        .await
                        .expect("create claim");
                    claims
                        .patch_status(
                            &claim_name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"status": {
                                "phase": "Bound",
                                "capacity": template["spec"]["resources"]["requests"],
                            }})),
                        )
                        .await
                        .expect("bind claim");
                    created
                }
                Some(claim) => {
                    let requests = claim
                        .spec
                        .as_ref()
                        .and_then(|s| s.resources.as_ref())
                        .and_then(|r| r.requests.clone())
                        .unwrap_or_default();
                    let capacity = claim
                        .status
                        .as_ref()
                        .and_then(|s| s.capacity.clone())
                        .unwrap_or_default();
                    if requests.get("storage") != capacity.get("storage") {
                        claims
                            .patch_status(
                                &claim_name,
                                &PatchParams::default(),
                                &Patch::Merge(json!({"status": {"capacity": requests}})),
                            )
                            .await
                            .expect("expand claim");
                    }
                    claim
                }
            };
            let uid = claim.uid().unwrap_or_default();
            if self.claims.get(&claim_name).is_none_or(|c| c.uid != uid) {
                if let Some(old) = self.claims.remove(&claim_name) {
                    self.released.push(old.dir);
                }
                let dir = self
                    .root
                    .path()
                    .join("claims")
                    .join(format!("{claim_name}-{uid}"));
                std::fs::create_dir_all(&dir).expect("claim dir");
                self.claims.insert(claim_name, ClaimDir { uid, dir });
            }
        }
    }

    /// Forgets the directories of claims whose object is gone (or was re-created), and removes
    /// them once no broker runs on them (as a volume outlives its claim while a pod uses it).
    async fn release_claims(&mut self) {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), NS);
        let live: HashMap<String, String> = claims
            .list(&ListParams::default())
            .await
            .expect("list claims")
            .items
            .into_iter()
            .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
            .collect();
        let gone: Vec<String> = self
            .claims
            .iter()
            .filter(|(name, c)| live.get(*name) != Some(&c.uid))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(c) = self.claims.remove(&name) {
                self.released.push(c.dir);
            }
        }
        let in_use: Vec<PathBuf> = self.brokers.values().map(|b| b.data_dir.clone()).collect();
        self.released.retain(|dir| {
            if in_use.iter().any(|d| d.starts_with(dir)) {
                return true;
            }
            let _ = std::fs::remove_dir_all(dir);
            false
        });
    }

    /// Probes every broker of the StatefulSet, writes each Pod's Ready condition when it
    /// changed, points the resolver at the brokers and agents, and writes the StatefulSet
    /// status.
    async fn probe_and_publish(&mut self, view: &StsView, sts: &StatefulSet) {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let ours: Vec<String> = self
            .brokers
            .keys()
            .filter(|p| view.ordinal(p).is_some())
            .cloned()
            .collect();
        let mut ready_count = 0;
        for pod in &ours {
            let admin = self.brokers[pod].admin_addr.clone();
            let ready = readyz(&admin).await;
            ready_count += i32::from(ready);
            let first_ready = {
                let broker = self.brokers.get_mut(pod).expect("running");
                let first = ready && !broker.ready;
                broker.ready |= ready;
                first
            };
            if first_ready {
                self.record(pod, PodEvent::Ready);
            }
            if self.brokers[pod].pod_ready != Some(ready) {
                pods.patch_status(
                    pod,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": [{
                        "type": "Ready", "status": if ready { "True" } else { "False" },
                    }]}})),
                )
                .await
                .expect("Pod Ready condition");
                self.brokers.get_mut(pod).expect("running").pod_ready = Some(ready);
            }
        }

        let mut by_ordinal: Vec<(i32, &Broker)> = ours
            .iter()
            .map(|p| (view.ordinal(p).unwrap_or_default(), &self.brokers[p]))
            .collect();
        by_ordinal.sort_by_key(|(o, _)| *o);
        let bootstrap: Vec<&str> = by_ordinal
            .iter()
            .map(|(_, b)| b.kafka_addr.as_str())
            .collect();
        self.resolver.set(NS, &view.cluster, bootstrap.join(","));
        self.resolver.set_agents(
            NS,
            &view.cluster,
            by_ordinal
                .iter()
                .map(|(o, b)| (*o, b.agent_addr.clone()))
                .collect(),
        );

        let existing = i32::try_from(by_ordinal.len()).unwrap_or(i32::MAX);
        let updated = by_ordinal
            .iter()
            .filter(|(_, b)| b.revision == view.update_revision)
            .count();
        let previous = sts
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|r| !r.is_empty());
        let current_revision = if existing == view.replicas && updated == by_ordinal.len() {
            view.update_revision.clone()
        } else {
            previous
                .or_else(|| {
                    by_ordinal
                        .iter()
                        .map(|(_, b)| b.revision.clone())
                        .find(|r| *r != view.update_revision)
                })
                .unwrap_or_else(|| view.update_revision.clone())
        };
        let current = by_ordinal
            .iter()
            .filter(|(_, b)| b.revision == current_revision)
            .count();
        let status = json!({"status": {
            "observedGeneration": sts.metadata.generation,
            "replicas": existing,
            "readyReplicas": ready_count,
            "availableReplicas": ready_count,
            "updatedReplicas": updated,
            "currentReplicas": current,
            "currentRevision": current_revision,
            "updateRevision": view.update_revision,
        }});
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), NS);
        sts_api
            .patch_status(&view.name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .expect("StatefulSet status");
    }

    /// Reconciles the Cluster `name` once, as the controller would.
    pub(crate) async fn reconcile_cluster(&self, name: &str) -> Result<(), Error> {
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = api.get(name).await.expect("Cluster");
        controller::cluster::reconcile(Arc::new(c), self.ctx.clone())
            .await
            .map(|_| ())
    }

    /// Alternates a reconcile of the Cluster and a kubelet pass every ~200 ms until `until`
    /// holds of the Cluster and its StatefulSet, failing after `secs` seconds with the last
    /// status conditions and reconcile error. Reconcile errors do not stop it (a reconcile of
    /// a cluster mid-restart may fail and be retried, as the controller would).
    pub(crate) async fn drive(
        &mut self,
        cluster: &str,
        secs: u64,
        what: &str,
        mut until: impl FnMut(&Cluster, &StatefulSet) -> bool,
    ) -> Cluster {
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let sts_api: Api<StatefulSet> = Api::namespaced(self.client.clone(), NS);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last_error = None;
        loop {
            if let Err(e) = self.reconcile_cluster(cluster).await {
                last_error = Some(e.to_string());
            }
            self.kubelet(cluster).await;
            let c = api.get(cluster).await.expect("Cluster");
            let sts = sts_api.get(&sts_name(cluster)).await.expect("StatefulSet");
            if until(&c, &sts) {
                return c;
            }
            if Instant::now() > deadline {
                let conditions: Vec<String> = c
                    .status
                    .map(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
                    .collect();
                panic!(
                    "timed out after {secs}s driving {cluster} until {what}; conditions: {conditions:?}; \
                     StatefulSet status: {:?}; last reconcile error: {last_error:?}",
                    sts.status
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates a Cluster, reconciles it, runs the kubelet until every replica's broker is Ready
    /// and the metadata from the bootstrap lists all of them, then reconciles it again.
    pub(crate) async fn ready_cluster(&mut self, name: &str, replicas: i32) -> Cluster {
        self.ready_cluster_with(name, cluster_spec(replicas)).await
    }

    /// [`Env::ready_cluster`] with a whole spec.
    pub(crate) async fn ready_cluster_with(&mut self, name: &str, spec: ClusterSpec) -> Cluster {
        let replicas = spec.replicas;
        let api: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = api
            .create(&PostParams::default(), &Cluster::new(name, spec))
            .await
            .expect("create Cluster");
        controller::cluster::reconcile(Arc::new(c), self.ctx.clone())
            .await
            .expect("reconcile Cluster");
        self.wait_brokers(name, replicas, 60).await;
        let c = api.get(name).await.expect("Cluster");
        controller::cluster::reconcile(Arc::new(c), self.ctx.clone())
            .await
            .expect("reconcile Cluster");
        api.get(name).await.expect("Cluster")
    }

    /// Runs kubelet passes until `replicas` brokers of `cluster` are Ready and the metadata
    /// from its bootstrap lists exactly node ids `0..replicas`.
    pub(crate) async fn wait_brokers(&mut self, cluster: &str, replicas: i32, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let want: Vec<i32> = (0..replicas).collect();
        loop {
            self.kubelet(cluster).await;
            let pods: Vec<&Broker> = (0..replicas)
                .filter_map(|o| self.brokers.get(&format!("{}-{o}", sts_name(cluster))))
                .collect();
            let last = if pods.len() == want.len() && pods.iter().all(|b| b.ready) {
                match self.broker_ids(cluster).await {
                    Ok(ids) if ids == want => return,
                    Ok(ids) => format!("metadata lists brokers {ids:?}"),
                    Err(e) => e,
                }
            } else {
                let ready = pods.iter().filter(|b| b.ready).count();
                format!("{ready} of {replicas} brokers Ready")
            };
            assert!(
                Instant::now() < deadline,
                "{cluster}: {replicas} brokers not Ready within {secs}s: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node ids in the metadata the bootstrap servers of `cluster` answer with, sorted.
    async fn broker_ids(&self, cluster: &str) -> Result<Vec<i32>, String> {
        let c: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = c.get(cluster).await.expect("Cluster");
        let bootstrap = self.resolver.bootstrap(&c).map_err(|e| e.to_string())?;
        let client = runnel_operator::kafka::connect(&bootstrap)
            .await
            .map_err(|e| e.to_string())?;
        let meta = client
            .metadata(Some(&[]), false)
            .await
            .map_err(|e| e.to_string())?;
        let mut ids: Vec<i32> = meta.brokers.iter().map(|b| b.node_id).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// A runnel-client admin client on the brokers of `cluster`.
    pub(crate) async fn kafka(&self, cluster: &str) -> runnel_client::Client {
        let c: Api<Cluster> = Api::namespaced(self.client.clone(), NS);
        let c = c.get(cluster).await.expect("Cluster");
        runnel_operator::kafka::connect(&self.resolver.bootstrap(&c).expect("bootstrap"))
            .await
            .expect("connect")
    }

    pub(crate) fn topics(&self) -> Api<Topic> {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Reconciles the Topic `name` as the controller would: again right away when the first
    /// pass only added the finalizer (the controller is woken by that write).
    pub(crate) async fn reconcile_topic(&self, name: &str) -> Result<(), Error> {
        for _ in 0..2 {
            let Some(t) = self.topics().get_opt(name).await.expect("get Topic") else {
                return Ok(());
            };
            let had_finalizer = t
                .finalizers()
                .iter()
                .any(|f| f == controller::topic::TOPIC_FINALIZER);
            controller::topic::reconcile(Arc::new(t), self.ctx.clone()).await?;
            if had_finalizer {
                break;
            }
        }
        Ok(())
    }
}
