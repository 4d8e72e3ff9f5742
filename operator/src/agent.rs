//! How the operator asks a broker's sidecar agent before it acts on that broker: its status,
//! whether it may restart now, and draining it before a scale-down. Every call has a short
//! deadline, so an unreachable agent fails one reconcile (retried with backoff) instead of
//! blocking a worker; the endpoint comes from the [`crate::kafka::BootstrapResolver`].

use std::time::Duration;

use futures::StreamExt;
use runnel_agent::proto::{
    BrokerStatusRequest, BrokerStatusResponse, CanRestartRequest, CanRestartResponse,
    DrainProgress, DrainRequest,
};
use runnel_agent::AgentClient;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

/// Deadline of one agent call (connect included).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected agent of one broker.
pub struct Agent {
    endpoint: String,
    client: AgentClient<Channel>,
}

fn agent_err(endpoint: &str, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Agent {
        what: format!("{what} (agent {endpoint})"),
        reason: reason.to_string(),
    }
}

impl Agent {
    /// Connects to the agent at `endpoint` (`http://host:port`).
    pub async fn connect(endpoint: &str) -> Result<Agent, Error> {
        let channel = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| agent_err(endpoint, "parse endpoint", e))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .map_err(|e| agent_err(endpoint, "connect", e))?;
        Ok(Agent {
            endpoint: endpoint.to_string(),
            client: AgentClient::new(channel),
        })
    }

    /// The broker's status (`BrokerStatus`).
    pub async fn status(&mut self) -> Result<BrokerStatusResponse, Error> {
        self.client
            .broker_status(BrokerStatusRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| agent_err(&self.endpoint, "BrokerStatus", e.message()))
    }

    /// Whether stopping the broker now keeps every partition at or above
    /// `min.insync.replicas` and the metadata quorum's majority (`CanRestart`).
    pub async fn can_restart(&mut self) -> Result<CanRestartResponse, Error> {
        self.client
            .can_restart(CanRestartRequest {})
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| agent_err(&self.endpoint, "CanRestart", e.message()))
    }

    /// Starts (or joins) the drain of the broker and returns its first progress report. The
    /// drain goes on in the agent after the stream is dropped; a later call reports it again.
    pub async fn drain(
        &mut self,
        throttle_bytes_per_second: u64,
        avoid_brokers: Vec<i32>,
    ) -> Result<DrainProgress, Error> {
        let mut stream = self
            .client
            .drain(DrainRequest {
                throttle_bytes_per_second,
                avoid_brokers,
            })
            .await
            .map_err(|e| agent_err(&self.endpoint, "Drain", e.message()))?
            .into_inner();
        match tokio::time::timeout(CALL_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(progress))) => Ok(progress),
            Ok(Some(Err(e))) => Err(agent_err(&self.endpoint, "Drain", e.message())),
            Ok(None) => Err(agent_err(
                &self.endpoint,
                "Drain",
                "the stream ended without a report",
            )),
            Err(_) => Err(agent_err(&self.endpoint, "Drain", "no report in time")),
        }
    }
}
