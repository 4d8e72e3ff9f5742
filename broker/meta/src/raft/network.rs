//! openraft's view of the transport: one [`PeerClient`] per target node,
//! turning Raft RPCs into [`rpc`](super::rpc) calls and transport failures
//! into openraft's error kinds (unreachable peers are backed off, timeouts
//! retried, errors raised by the remote Raft passed through).

use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};

use super::rpc::{CallError, Pool, Request, Response};
use super::{NodeId, TypeConfig};

/// Creates clients for openraft's replication and election tasks.
pub(crate) struct NetworkFactory {
    /// This node (for error reports).
    pub(crate) id: NodeId,
    /// Connections shared with the node's own RPCs.
    pub(crate) pool: Arc<Pool>,
}

/// A client for one target node.
pub(crate) struct PeerClient {
    id: NodeId,
    target: NodeId,
    addr: String,
    pool: Arc<Pool>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            id: self.id,
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<T, E>(
        &self,
        action: RPCTypes,
        request: Request,
        option: &RPCOption,
        unpack: impl FnOnce(Response) -> Option<Result<T, RaftError<NodeId, E>>>,
    ) -> RpcResult<T, E>
    where
        E: std::error::Error,
    {
        let timeout = option.hard_ttl();
        match self.pool.call(&self.addr, request, timeout).await {
            Ok(response) => match unpack(response) {
                Some(Ok(reply)) => Ok(reply),
                Some(Err(remote)) => {
                    Err(RPCError::RemoteError(RemoteError::new(self.target, remote)))
                }
                None => Err(RPCError::Network(NetworkError::new(&CallError::Protocol {
                    addr: self.addr.clone(),
                    reason: format!("unexpected response to {action}"),
                }))),
            },
            Err(CallError::Timeout { .. }) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.id,
                target: self.target,
                timeout,
            })),
            Err(e @ CallError::Unreachable { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(
            RPCTypes::AppendEntries,
            Request::AppendEntries(rpc),
            &option,
            |r| match r {
                Response::AppendEntries(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(
            RPCTypes::InstallSnapshot,
            Request::InstallSnapshot(rpc),
            &option,
            |r| match r {
                Response::InstallSnapshot(r) => Some(r),
                _ => None,
            },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, Request::Vote(rpc), &option, |r| match r {
            Response::Vote(r) => Some(r),
            _ => None,
        })
        .await
    }
}
