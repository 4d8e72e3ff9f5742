//! A Runnel broker in this process on port 0, stopped on drop.

use runnel_server::{BrokerConfig, Server};

pub struct Broker {
    pub bootstrap: String,
    _runtime: tokio::runtime::Runtime,
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
            _runtime: runtime,
            shutdown: Some(tx),
            _dir: dir,
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
