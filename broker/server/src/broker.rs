//! The state shared by every connection and handler of one broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::group::Coordinator;
use crate::metrics::Metrics;
use crate::producer_ids::ProducerIdAllocator;
use crate::topics::TopicRegistry;

/// Leader epoch of every partition: a single broker never changes leaders.
pub const LEADER_EPOCH: i32 = 0;

/// Shared broker state (one per running broker, behind an `Arc`).
pub struct Broker {
    /// Effective configuration.
    pub config: BrokerConfig,
    /// Cluster id (from meta.json).
    pub cluster_id: String,
    /// Host advertised to clients.
    pub advertised_host: String,
    /// Port advertised to clients.
    pub advertised_port: u16,
    /// Topics and their logs.
    pub topics: Arc<TopicRegistry>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Producer id allocator.
    pub producer_ids: ProducerIdAllocator,
    /// The consumer group coordinator.
    pub groups: Arc<Coordinator>,
    // Bumped after every successful append; long-polling fetches wait on it.
    appended: watch::Sender<u64>,
    // Flips to true once when shutdown starts; every task watches it.
    shutdown: watch::Receiver<bool>,
    ready: AtomicBool,
}

impl Broker {
    /// Assembles the shared state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: BrokerConfig,
        cluster_id: String,
        advertised_host: String,
        advertised_port: u16,
        topics: Arc<TopicRegistry>,
        producer_ids: ProducerIdAllocator,
        shutdown: watch::Receiver<bool>,
    ) -> Broker {
        let metrics = Metrics::new();
        let groups = Arc::new(Coordinator::new(
            &config,
            topics.clone(),
            metrics.group_rebalances.clone(),
            shutdown.clone(),
        ));
        Broker {
            config,
            cluster_id,
            advertised_host,
            advertised_port,
            topics,
            metrics,
            producer_ids,
            groups,
            appended: watch::channel(0).0,
            shutdown,
            ready: AtomicBool::new(false),
        }
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Wakes fetches waiting for data.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that sees every later append (subscribe before reading).
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A receiver of the shutdown flag.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// True once listeners are bound and recovery is done, until shutdown starts.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !*self.shutdown.borrow()
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Waits until the shutdown flag is set (or its sender is gone).
pub async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}
