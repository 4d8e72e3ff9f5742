//! A broker in this process, librdkafka helpers, and an application run on a thread.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::TopicPartitionList;
use runnel_server::{BrokerConfig, Server};
use runnel_streams::{KafkaStreams, ProcessingGuarantee, StreamsConfig, Topology};

/// Generous deadline for anything that should happen soon.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct Broker {
    pub bootstrap: String,
    runtime: tokio::runtime::Runtime,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            controller_listen: "127.0.0.1:0".into(),
            auto_create_topics: false,
            ..Default::default()
        };
        let server = runtime.block_on(Server::bind(config)).unwrap();
        let bootstrap = server.kafka_addr().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Broker {
            bootstrap,
            runtime,
            shutdown: Some(tx),
            _dir: dir,
        }
    }

    pub fn create_topic(&self, name: &str, partitions: i32, config: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .unwrap();
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in config {
            topic = topic.set(k, v);
        }
        let results = self
            .runtime
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .unwrap();
        for r in results {
            r.unwrap();
        }
    }

    /// Produces (key, value, timestamp) records with librdkafka (Java's murmur2 partitioner).
    pub fn produce(&self, topic: &str, records: &[(&str, Option<&str>, i64)]) {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        for (k, v, ts) in records {
            let mut rec: BaseRecord<'_, str, str> = BaseRecord::to(topic).key(*k).timestamp(*ts);
            if let Some(v) = v {
                rec = rec.payload(*v);
            }
            producer.send(rec).map_err(|(e, _)| e).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(DEADLINE).unwrap();
    }

    /// Every record of `topic` (read_committed), as (key, value) strings per partition order.
    pub fn read_all(&self, topic: &str, partitions: i32) -> Vec<(String, Option<String>)> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", "it-reader")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let mut at_end = std::collections::BTreeSet::new();
        let deadline = Instant::now() + DEADLINE;
        while at_end.len() < partitions as usize {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    m.payload().map(|v| String::from_utf8_lossy(v).into_owned()),
                )),
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    at_end.insert(p);
                }
                Some(Err(e)) => panic!("reading {topic}: {e}"),
                None => {}
            }
        }
        out
    }

    pub fn config(&self, app: &str, state: &std::path::Path) -> StreamsConfig {
        let mut config = StreamsConfig::new(app, &self.bootstrap, ProcessingGuarantee::ExactlyOnce);
        config.state_dir = state.to_path_buf();
        config.instance_id = "it".into();
        config
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An application running on its own thread, stopped on drop.
pub struct Running {
    pub streams: Arc<KafkaStreams>,
    thread: Option<std::thread::JoinHandle<runnel_streams::Result<()>>>,
}

impl Running {
    pub fn start(topology: Topology, config: StreamsConfig) -> Running {
        let streams = Arc::new(KafkaStreams::new(topology, config).unwrap());
        let s = streams.clone();
        let thread = std::thread::spawn(move || s.run());
        Running {
            streams,
            thread: Some(thread),
        }
    }

    /// Stops the application and returns what `run` returned.
    pub fn stop(mut self) -> runnel_streams::Result<()> {
        self.streams.shutdown_handle().shutdown();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.streams.shutdown_handle().shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `f` returns `Some`, or panics naming `what`.
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
