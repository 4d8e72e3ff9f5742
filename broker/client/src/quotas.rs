//! Client quotas (KIP-546): DescribeClientQuotas and AlterClientQuotas.

use kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, AlterClientQuotasRequest,
    DescribeClientQuotasRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{check, Result};

/// A quota entity: a user, a client id, or both; `Some(None)` is the default of that type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct QuotaEntity {
    /// The user component.
    pub user: Option<Option<String>>,
    /// The client id component.
    pub client_id: Option<Option<String>>,
}

impl std::fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "<default>".into());
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(format!("user={}", show(u)));
        }
        if let Some(c) = &self.client_id {
            parts.push(format!("client-id={}", show(c)));
        }
        f.write_str(&parts.join(","))
    }
}

impl QuotaEntity {
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(("user", u.clone()));
        }
        if let Some(c) = &self.client_id {
            parts.push(("client-id", c.clone()));
        }
        parts
    }
}

/// One quota change: set `key` to a value, or remove it (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaOp {
    /// Quota key, e.g. `producer_byte_rate`.
    pub key: String,
    /// New value, or `None` to remove the quota.
    pub value: Option<f64>,
}

/// An entity's quotas.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuotas {
    /// The entity.
    pub entity: QuotaEntity,
    /// (key, value) pairs.
    pub values: Vec<(String, f64)>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

impl Client {
    /// Sets and removes quotas of `entity` (AlterClientQuotas).
    pub async fn alter_client_quotas(
        &self,
        entity: &QuotaEntity,
        ops: &[QuotaOp],
        validate_only: bool,
    ) -> Result<()> {
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(AlterClientQuotasRequest::default()
                    .with_entries(vec![alter_client_quotas_request::EntryData::default()
                        .with_entity(
                            entity
                                .parts()
                                .into_iter()
                                .map(|(t, n)| {
                                    alter_client_quotas_request::EntityData::default()
                                        .with_entity_type(s(t))
                                        .with_entity_name(n.as_deref().map(s))
                                })
                                .collect(),
                        )
                        .with_ops(
                            ops.iter()
                                .map(|op| {
                                    alter_client_quotas_request::OpData::default()
                                        .with_key(s(&op.key))
                                        .with_value(op.value.unwrap_or(0.0))
                                        .with_remove(op.value.is_none())
                                })
                                .collect(),
                        )])
                    .with_validate_only(validate_only))
            })
            .await?;
        for e in resp.entries {
            check(
                e.error_code,
                || format!("quotas of {entity}"),
                e.error_message.as_deref(),
            )?;
        }
        Ok(())
    }

    /// Quotas of every entity with a user and/or client-id component matching the filter:
    /// `None` ignores that type, `Some(None)` matches its default, `Some(Some(name))` that name.
    pub async fn describe_client_quotas(
        &self,
        user: Option<Option<String>>,
        client_id: Option<Option<String>>,
    ) -> Result<Vec<EntityQuotas>> {
        let component = |t: &str, v: Option<String>| {
            describe_client_quotas_request::ComponentData::default()
                .with_entity_type(s(t))
                .with_match_type(if v.is_some() { 0 } else { 1 })
                .with_match(v.as_deref().map(s))
        };
        let mut components = Vec::new();
        if let Some(u) = user {
            components.push(component("user", u));
        }
        if let Some(c) = client_id {
            components.push(component("client-id", c));
        }
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(DescribeClientQuotasRequest::default()
                    .with_components(components.clone())
                    .with_strict(false))
            })
            .await?;
        check(
            resp.error_code,
            || "client quotas".to_string(),
            resp.error_message.as_deref(),
        )?;
        let mut out: Vec<EntityQuotas> = resp
            .entries
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let mut entity = QuotaEntity::default();
                for part in e.entity {
                    let name = part.entity_name.map(|n| n.to_string());
                    match part.entity_type.as_str() {
                        "user" => entity.user = Some(name),
                        "client-id" => entity.client_id = Some(name),
                        _ => {}
                    }
                }
                EntityQuotas {
                    entity,
                    values: e
                        .values
                        .into_iter()
                        .map(|v| (v.key.to_string(), v.value))
                        .collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.entity.cmp(&b.entity));
        Ok(out)
    }
}
