//! `runnel-operator run`: the HTTP endpoint, leader election, and the Cluster, Topic, Consumer
//! and User controllers (one set per watched namespace, or one for all namespaces), stopped
//! together by one shutdown signal.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::{Client, ResourceExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::controller::{self, error_policy, Context};
use crate::crd::{Cluster, Consumer, Topic, User};
use crate::http::{self, HttpState};
use crate::kafka::BootstrapResolver;
use crate::leader::{LeaderElector, LeaseConfig};
use crate::metrics::Metrics;
use crate::Error;

/// Everything `run` needs besides the Kubernetes client.
pub struct RunConfig {
    /// Namespaces to watch; empty watches all namespaces.
    pub namespaces: Vec<String>,
    /// Lease election settings; None runs the controllers right away (a single replica).
    pub leader_election: Option<LeaseConfig>,
    /// Broker image for Clusters without `spec.image`.
    pub broker_image: Option<String>,
    /// Manage ServiceMonitors of Clusters that ask for one (needs the chart's
    /// `serviceMonitor.enabled` RBAC).
    pub service_monitors: bool,
    /// The ClusterRole bound to the brokers of Clusters with `rackLabel`; None: the operator
    /// may not create those bindings (see [`crate::controller::Context::rack_cluster_role`]).
    pub rack_cluster_role: Option<String>,
    /// Periodic re-reconcile of healthy objects.
    pub resync: Duration,
    /// How a Cluster's brokers are reached.
    pub resolver: Arc<dyn BootstrapResolver>,
    /// This replica's name for Events (the pod name).
    pub instance: Option<String>,
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    // An error means the sender was dropped: nobody can ask us to keep running any more.
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Runs the operator until `shutdown` completes (or leadership is lost, an error: the process
/// should exit so that its restart campaigns again). `listener` serves /metrics, /healthz and
/// /readyz when given.
pub async fn run(
    client: Client,
    config: RunConfig,
    listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listener) = listener {
        let state = HttpState {
            metrics: metrics.clone(),
            ready: ready.clone(),
        };
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move {
            if let Err(err) = http::serve(listener, state, stop).await {
                tracing::error!(%err, "HTTP endpoint failed");
            }
        });
    }
    let mut ctx = Context::new(
        client.clone(),
        metrics,
        config.resolver.clone(),
        config.instance.clone(),
    );
    ctx.broker_image = config.broker_image.clone();
    ctx.service_monitors = config.service_monitors;
    ctx.rack_cluster_role = config.rack_cluster_role.clone();
    ctx.resync = config.resync;
    let ctx = Arc::new(ctx);

    let Some(lease) = config.leader_election.clone() else {
        ready.store(true, Ordering::Relaxed);
        tokio::select! {
            () = controllers(ctx, &config.namespaces) => {}
            () = stopped(stop_rx) => {}
        }
        return Ok(());
    };

    let elector = LeaderElector::new(client, lease.clone());
    // Campaign until we hold the Lease; a standby replica is ready (it serves if it leads).
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(leading) => {
                ready.store(true, Ordering::Relaxed);
                if leading {
                    break;
                }
            }
            Err(err) => tracing::warn!(%err, "leader election round failed"),
        }
        tokio::select! {
            () = stopped(stop_rx.clone()) => return Ok(()),
            () = tokio::time::sleep(lease.renew_period) => {}
        }
    }
    tracing::info!(identity = %lease.identity, lease = %lease.name, "leading");
    let renew = async {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(lease.renew_period).await;
            match elector.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return Error::LostLeadership(lease.name.clone()),
                // Keep leading through API hiccups, but stop well before others may take over.
                Err(err) if last_renewed.elapsed() + lease.renew_period < lease.lease_duration => {
                    tracing::warn!(%err, "cannot renew the leader Lease; retrying")
                }
                Err(_) => return Error::LostLeadership(lease.name.clone()),
            }
        }
    };
    tokio::select! {
        () = controllers(ctx, &config.namespaces) => Ok(()),
        err = renew => Err(err),
        () = stopped(stop_rx) => {
            if let Err(err) = elector.release().await {
                tracing::warn!(%err, "cannot release the leader Lease");
            }
            Ok(())
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Logs what a controller reports; failed reconciles are already logged by the error policy.
async fn report<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) {
    match result {
        Ok(obj) => tracing::debug!(?obj, "reconciled"),
        Err(err) => tracing::debug!(%err, "controller"),
    }
}

/// The objects in `store` whose cluster reference (read by `cluster_of`) names `cluster`.
fn referring<K>(
    store: &Store<K>,
    cluster: &Cluster,
    cluster_of: impl Fn(&K) -> &String,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    let name = cluster.name_any();
    let ns = cluster.namespace();
    store
        .state()
        .iter()
        .filter(|o| *cluster_of(o) == name && o.namespace() == ns)
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// The Users whose password is in `secret`: the one owning it (a generated password) and
/// those naming it in `spec.authentication.password`.
fn users_of_secret(store: &Store<User>, secret: &Secret) -> Vec<ObjectRef<User>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    let owners: Vec<String> = secret
        .owner_references()
        .iter()
        .map(|o| o.uid.clone())
        .collect();
    store
        .state()
        .iter()
        .filter(|u| u.namespace() == ns)
        .filter(|u| {
            u.uid().is_some_and(|uid| owners.contains(&uid))
                || u.spec
                    .authentication
                    .password
                    .as_ref()
                    .is_some_and(|p| p.secret_key_ref.name == name)
        })
        .map(|u| ObjectRef::from_obj(u.as_ref()))
        .collect()
}

/// Runs the four controllers for every watched namespace (None: all) until they end.
async fn controllers(ctx: Arc<Context>, namespaces: &[String]) {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    let client = &ctx.client;
    let mut runs: Vec<BoxFuture<'static, ()>> = Vec::new();
    let mut cluster_stores: Vec<Store<Cluster>> = Vec::new();
    let mut topic_stores: Vec<Store<Topic>> = Vec::new();
    let mut consumer_stores: Vec<Store<Consumer>> = Vec::new();
    let mut user_stores: Vec<Store<User>> = Vec::new();
    for ns in scopes {
        let clusters = Controller::new(api::<Cluster>(client, ns), watcher::Config::default())
            // The StatefulSet's status (ready brokers) feeds the Cluster's status.
            .owns(api::<StatefulSet>(client, ns), watcher::Config::default());
        cluster_stores.push(clusters.store());
        runs.push(
            clusters
                .run(controller::cluster::reconcile, error_policy, ctx.clone())
                .for_each(report)
                .boxed(),
        );
        let topics = Controller::new(api::<Topic>(client, ns), watcher::Config::default());
        let store = topics.store();
        // A Cluster change (created, brokers ready) re-reconciles the Topics that refer to it
        // instead of leaving them to their backoff or resync.
        let topics = topics.watches(
            api::<Cluster>(client, ns),
            watcher::Config::default(),
            move |cluster| referring(&store, &cluster, |t: &Topic| &t.spec.cluster_ref.name),
        );
        topic_stores.push(topics.store());
        runs.push(
            topics
                .run(controller::topic::reconcile, error_policy, ctx.clone())
                .for_each(report)
                .boxed(),
        );
        let consumers = Controller::new(api::<Consumer>(client, ns), watcher::Config::default());
        let store = consumers.store();
        let consumers = consumers.watches(
            api::<Cluster>(client, ns),
            watcher::Config::default(),
            move |cluster| referring(&store, &cluster, |c: &Consumer| &c.spec.cluster_ref.name),
        );
        consumer_stores.push(consumers.store());
        runs.push(
            consumers
                .run(controller::consumer::reconcile, error_policy, ctx.clone())
                .for_each(report)
                .boxed(),
        );
        let users = Controller::new(api::<User>(client, ns), watcher::Config::default());
        let store = users.store();
        let users = users.watches(
            api::<Cluster>(client, ns),
            watcher::Config::default(),
            move |cluster| referring(&store, &cluster, |u: &User| &u.spec.cluster),
        );
        let store = users.store();
        // A changed password Secret (the generated one, owned by its User, or one a User names)
        // sets the password again right away rather than at the next resync.
        let users = users.watches(
            api::<Secret>(client, ns),
            watcher::Config::default(),
            move |secret| users_of_secret(&store, &secret),
        );
        user_stores.push(users.store());
        runs.push(
            users
                .run(controller::user::reconcile, error_policy, ctx.clone())
                .for_each(report)
                .boxed(),
        );
    }
    let metrics = ctx.metrics.clone();
    let gauges = async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics.set_managed(
                "Cluster",
                cluster_stores.iter().map(|s| s.state().len()).sum(),
            );
            metrics.set_managed("Topic", topic_stores.iter().map(|s| s.state().len()).sum());
            metrics.set_managed(
                "Consumer",
                consumer_stores.iter().map(|s| s.state().len()).sum(),
            );
            metrics.set_managed("User", user_stores.iter().map(|s| s.state().len()).sum());
        }
    };
    tokio::select! {
        _ = join_all(runs) => {}
        () = gauges => {}
    }
}
