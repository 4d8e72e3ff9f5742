//! DescribeClientQuotas and AlterClientQuotas (KIP-546): client quotas of users, client ids
//! and both (`<default>` components included), stored in the metadata quorum. The broker
//! enforces `producer_byte_rate`, `consumer_byte_rate` and `request_percentage` (see
//! `crate::quota`); `controller_mutation_rate` (KIP-599) is refused with INVALID_REQUEST
//! rather than stored and silently ignored.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{
    alter_client_quotas_request, alter_client_quotas_response, describe_client_quotas_response,
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_meta::{Command, QuotaEntity, QuotaValue};

use crate::broker::Broker;
use crate::errors::ApiError;

/// Entity type names on the wire.
const USER: &str = "user";
const CLIENT_ID: &str = "client-id";

/// The quota keys this broker enforces.
pub(crate) const ENFORCED_KEYS: [&str; 3] = [
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
];

/// DescribeClientQuotas match types.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

fn component<'a>(entity: &'a QuotaEntity, entity_type: &str) -> Option<&'a Option<String>> {
    match entity_type {
        USER => entity.user.as_ref(),
        CLIENT_ID => entity.client_id.as_ref(),
        _ => None,
    }
}

/// The entity an AlterClientQuotas entry names, or why it cannot be one.
fn entity_of(parts: &[alter_client_quotas_request::EntityData]) -> Result<QuotaEntity, String> {
    let mut entity = QuotaEntity {
        user: None,
        client_id: None,
    };
    for part in parts {
        let name = part.entity_name.as_ref().map(|n| n.to_string());
        let slot = match part.entity_type.as_str() {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            other => {
                return Err(format!(
                    "unsupported quota entity type '{other}' (user and client-id are)"
                ))
            }
        };
        if slot.is_some() {
            return Err(format!(
                "entity type '{}' is given twice",
                part.entity_type.as_str()
            ));
        }
        *slot = Some(name);
    }
    if entity.user.is_none() && entity.client_id.is_none() {
        return Err("a quota entity needs a user, a client id or both".into());
    }
    Ok(entity)
}

/// The wire form of an entity (user first, as Kafka lists it).
fn entity_parts(entity: &QuotaEntity) -> Vec<(&'static str, Option<String>)> {
    let mut parts = Vec::new();
    if let Some(user) = &entity.user {
        parts.push((USER, user.clone()));
    }
    if let Some(client) = &entity.client_id {
        parts.push((CLIENT_ID, client.clone()));
    }
    parts
}

/// Handles AlterClientQuotas: each entry is checked, then (unless `validate_only`) applied
/// through the metadata quorum on its own, with its own error code.
pub(crate) async fn alter(
    broker: &Arc<Broker>,
    request: AlterClientQuotasRequest,
    _version: i16,
) -> AlterClientQuotasResponse {
    let mut entries = Vec::with_capacity(request.entries.len());
    for entry in request.entries {
        let result = check_entry(&entry);
        let result = match result {
            Ok(command) if !request.validate_only => broker.propose(command).await.map(|_| ()),
            Ok(_) => Ok(()),
            Err(err) => Err(err),
        };
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err(err) => (err.code(), err.message.map(StrBytes::from_string)),
        };
        entries.push(
            alter_client_quotas_response::EntryData::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_entity(
                    entry
                        .entity
                        .iter()
                        .map(|e| {
                            alter_client_quotas_response::EntityData::default()
                                .with_entity_type(e.entity_type.clone())
                                .with_entity_name(e.entity_name.clone())
                        })
                        .collect(),
                ),
        );
    }
    AlterClientQuotasResponse::default().with_entries(entries)
}

fn check_entry(entry: &alter_client_quotas_request::EntryData) -> Result<Command, ApiError> {
    let invalid = |m: String| ApiError::with_message(ResponseError::InvalidRequest, m);
    let entity = entity_of(&entry.entity).map_err(invalid)?;
    let mut set = BTreeMap::new();
    let mut remove = Vec::new();
    for op in &entry.ops {
        let key = op.key.to_string();
        if !ENFORCED_KEYS.contains(&key.as_str()) {
            return Err(invalid(format!(
                "quota key '{key}' is not supported: Runnel enforces {}",
                ENFORCED_KEYS.join(", ")
            )));
        }
        if set.contains_key(&key) || remove.contains(&key) {
            return Err(invalid(format!("quota key '{key}' is given twice")));
        }
        if op.remove {
            remove.push(key);
        } else if !(op.value.is_finite() && op.value > 0.0) {
            return Err(invalid(format!(
                "quota {key} must be a positive number, got {}",
                op.value
            )));
        } else {
            set.insert(key, QuotaValue(op.value));
        }
    }
    Ok(Command::AlterClientQuotas {
        entity,
        set,
        remove,
    })
}

/// Handles DescribeClientQuotas: the stored entities that match every filter component
/// (exact name, the default, or any name of that type), and with `strict` only entities with
/// no other component.
pub(crate) async fn describe(
    broker: &Arc<Broker>,
    request: DescribeClientQuotasRequest,
    _version: i16,
) -> DescribeClientQuotasResponse {
    let refuse = |m: String| {
        DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_error_message(Some(StrBytes::from_string(m)))
    };
    for c in &request.components {
        if !matches!(c.entity_type.as_str(), USER | CLIENT_ID) {
            return refuse(format!(
                "unsupported quota entity type '{}' (user and client-id are)",
                c.entity_type.as_str()
            ));
        }
        if !matches!(c.match_type, MATCH_EXACT | MATCH_DEFAULT | MATCH_ANY) {
            return refuse(format!("unknown match type {}", c.match_type));
        }
        if c.match_type == MATCH_EXACT && c._match.is_none() {
            return refuse(format!(
                "an exact match on '{}' needs a name",
                c.entity_type.as_str()
            ));
        }
    }
    let state = broker.cluster();
    let entries = state
        .client_quotas
        .iter()
        .filter(|(entity, _)| {
            let matches = request.components.iter().all(|c| {
                match (component(entity, c.entity_type.as_str()), c.match_type) {
                    (Some(Some(name)), MATCH_EXACT) => {
                        c._match.as_ref().is_some_and(|m| m.as_str() == name)
                    }
                    (Some(None), MATCH_DEFAULT) => true,
                    (Some(_), MATCH_ANY) => true,
                    _ => false,
                }
            });
            let extra = entity_parts(entity).iter().any(|(t, _)| {
                !request
                    .components
                    .iter()
                    .any(|c| c.entity_type.as_str() == *t)
            });
            matches && !(request.strict && extra)
        })
        .map(|(entity, values)| {
            describe_client_quotas_response::EntryData::default()
                .with_entity(
                    entity_parts(entity)
                        .into_iter()
                        .map(|(t, name)| {
                            describe_client_quotas_response::EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(t))
                                .with_entity_name(name.map(StrBytes::from_string))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            describe_client_quotas_response::ValueData::default()
                                .with_key(StrBytes::from_string(k.clone()))
                                .with_value(v.0)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default().with_entries(Some(entries))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alter_client_quotas_request::{EntityData, EntryData, OpData};

    fn part(t: &str, name: Option<&str>) -> EntityData {
        EntityData::default()
            .with_entity_type(StrBytes::from_string(t.into()))
            .with_entity_name(name.map(|n| StrBytes::from_string(n.into())))
    }

    fn op(key: &str, value: f64, remove: bool) -> OpData {
        OpData::default()
            .with_key(StrBytes::from_string(key.into()))
            .with_value(value)
            .with_remove(remove)
    }

    fn refusal(entry: EntryData) -> String {
        match check_entry(&entry) {
            Err(e) => {
                assert_eq!(e.code, ResponseError::InvalidRequest);
                e.message.unwrap_or_default()
            }
            Ok(c) => panic!("accepted: {c:?}"),
        }
    }

    #[test]
    fn entries_become_commands_and_bad_ones_are_refused_naming_the_problem() {
        let entry = EntryData::default()
            .with_entity(vec![part("user", None), part("client-id", Some("app"))])
            .with_ops(vec![
                op("producer_byte_rate", 1024.0, false),
                op("consumer_byte_rate", 0.0, true),
            ]);
        match check_entry(&entry).expect("valid") {
            Command::AlterClientQuotas {
                entity,
                set,
                remove,
            } => {
                assert_eq!(entity.user, Some(None));
                assert_eq!(entity.client_id, Some(Some("app".into())));
                assert_eq!(set["producer_byte_rate"], QuotaValue(1024.0));
                assert_eq!(remove, ["consumer_byte_rate"]);
            }
            other => panic!("{other:?}"),
        }
        let m = refusal(
            EntryData::default()
                .with_entity(vec![part("ip", Some("1.2.3.4"))])
                .with_ops(vec![op("producer_byte_rate", 1.0, false)]),
        );
        assert!(m.contains("unsupported quota entity type 'ip'"), "{m}");
        let m = refusal(
            EntryData::default()
                .with_entity(vec![part("client-id", Some("a"))])
                .with_ops(vec![op("controller_mutation_rate", 50.0, false)]),
        );
        assert!(
            m.contains("quota key 'controller_mutation_rate' is not supported"),
            "{m}"
        );
        let m = refusal(
            EntryData::default()
                .with_entity(vec![part("client-id", Some("a"))])
                .with_ops(vec![op("producer_byte_rate", -5.0, false)]),
        );
        assert!(m.contains("must be a positive number"), "{m}");
        let m = refusal(
            EntryData::default()
                .with_entity(vec![part("user", Some("a")), part("user", Some("b"))])
                .with_ops(vec![]),
        );
        assert!(m.contains("given twice"), "{m}");
        let m = refusal(EntryData::default());
        assert!(m.contains("needs a user, a client id or both"), "{m}");
    }
}
