//! Leader election with a `coordination.k8s.io/v1` Lease, so that of several operator replicas
//! exactly one reconciles. Written here because the maintained crates either target an older
//! kube (kube-leader-election 0.44: kube 4) or renew with strategic-merge patches that the chart's
//! least-privilege RBAC (get/create/update on leases) and our in-memory test apiserver do not
//! need; this one uses only get, create and update (replace).
//!
//! Safety comes from optimistic concurrency: every write carries the resourceVersion that was
//! read, so of two candidates racing for an expired Lease the apiserver accepts one and answers
//! 409 Conflict to the other. Expiry is judged like client-go does it: by how long *this* process
//! has seen the same Lease record unchanged on its own monotonic clock, not by comparing the
//! holder's renewTime with our wall clock (which could be skewed).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

use crate::Error;

/// Where the Lease lives, who we are, and the timings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (the pod name).
    pub identity: String,
    /// How long a holder that stops renewing keeps the Lease.
    pub lease_duration: Duration,
    /// How often the holder renews (well under `lease_duration`) and candidates retry.
    pub renew_period: Duration,
}

impl LeaseConfig {
    /// Defaults: 15 s lease renewed every 5 s (client-go's defaults are 15 s / 10 s / 2 s).
    pub fn new(namespace: String, identity: String) -> LeaseConfig {
        LeaseConfig {
            namespace,
            name: "runnel-operator-leader".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_period: Duration::from_secs(5),
        }
    }
}

/// One candidate in a Lease election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The resourceVersion last read and when this process first saw it, for expiry.
    observed: Mutex<Option<(String, Instant)>>,
}

fn conflict_or_exists(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

fn kube_err(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Kube {
        what: what.to_string(),
        source,
    }
}

impl LeaderElector {
    /// A candidate for the Lease described by `config`.
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
        }
    }

    /// The configuration of this candidate.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// The lease duration in whole seconds as the Lease stores it (rounded up, at least 1: a
    /// 0 would let every candidate take the Lease at once).
    fn duration_secs(&self) -> i32 {
        let secs = self.config.lease_duration.as_millis().div_ceil(1000).max(1);
        i32::try_from(secs).unwrap_or(i32::MAX)
    }

    /// One round: takes the Lease if it is free or expired, renews it if we hold it. Returns
    /// whether we hold it afterwards. A lost race (409) is "not leader", not an error.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, Error> {
        let now = MicroTime(Timestamp::now());
        let Some(lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(kube_err("get leader Lease"))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict_or_exists(&e) => Ok(false),
                Err(e) => Err(kube_err("create leader Lease")(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let expired = {
            let mut observed = self.observed.lock().unwrap_or_else(|e| e.into_inner());
            let since = match observed.as_ref() {
                Some((v, since)) if *v == version => *since,
                _ => {
                    *observed = Some((version, Instant::now()));
                    Instant::now()
                }
            };
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(self.config.lease_duration, Duration::from_secs);
            spec.holder_identity.as_deref().is_none_or(str::is_empty) || since.elapsed() >= duration
        };
        if !ours && !expired {
            return Ok(false);
        }
        let mut next = lease;
        next.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.duration_secs()),
            acquire_time: if ours {
                spec.acquire_time
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(spec.lease_transitions.unwrap_or(0) + if ours { 0 } else { 1 }),
            ..spec
        });
        // replace() sends our resourceVersion: if anyone wrote the Lease since we read it, the
        // apiserver refuses with 409 and we are not the leader this round.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict_or_exists(&e) => Ok(false),
            Err(e) => Err(kube_err("update leader Lease")(e)),
        }
    }

    /// Gives the Lease up if we hold it, so another replica takes over without waiting for it
    /// to expire.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(kube_err("get leader Lease"))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if conflict_or_exists(&e) => Ok(()),
            Err(e) => Err(kube_err("release leader Lease")(e)),
        }
    }
}
