//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): SCRAM
//! users kept in the metadata quorum. The client sends the salted password
//! (never the password); the broker stores the salt, the iteration count and
//! the two keys RFC 5802 derives from it. Each user gets its own result: a
//! user whose alterations are not all acceptable is left unchanged.

use std::collections::BTreeSet;
use std::sync::Arc;

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_user_scram_credentials_response, describe_user_scram_credentials_response,
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use runnel_meta::{Command, ScramCredential, ScramMechanism};

use crate::auth::scram;
use crate::broker::Broker;
use crate::errors::ApiError;

/// Handles DescribeUserScramCredentials: every user with credentials when no
/// users are named; otherwise each named user, RESOURCE_NOT_FOUND for one
/// without credentials and DUPLICATE_RESOURCE for one named twice.
pub(crate) async fn describe(
    broker: &Arc<Broker>,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    let state = broker.cluster();
    let stored = &state.scram_credentials;
    let named: Vec<String> = request
        .users
        .unwrap_or_default()
        .into_iter()
        .map(|u| u.name.to_string())
        .collect();
    let users: Vec<String> = if named.is_empty() {
        stored.keys().cloned().collect()
    } else {
        named.clone()
    };
    let mut seen = BTreeSet::new();
    let duplicated: BTreeSet<&String> = named.iter().filter(|u| !seen.insert(*u)).collect();
    let mut reported = BTreeSet::new();
    let mut results = Vec::new();
    for user in &users {
        if !reported.insert(user.clone()) {
            continue;
        }
        let result =
            describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
        let result = if duplicated.contains(user) {
            result
                .with_error_code(ResponseError::DuplicateResource.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "user '{user}' is named more than once"
                ))))
        } else if let Some(by_mechanism) = stored.get(user) {
            result.with_credential_infos(
                by_mechanism
                    .iter()
                    .map(|(m, c)| {
                        describe_user_scram_credentials_response::CredentialInfo::default()
                            .with_mechanism(m.kafka_type())
                            .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                    })
                    .collect(),
            )
        } else {
            result
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!(
                    "user '{user}' has no SCRAM credentials"
                ))))
        };
        results.push(result);
    }
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One alteration of a user's credential, checked.
type Alteration = (ScramMechanism, Option<ScramCredential>);

fn unacceptable(message: String) -> ApiError {
    ApiError::with_message(ResponseError::UnacceptableCredential, message)
}

fn mechanism_of(user: &str, t: i8) -> Result<ScramMechanism, ApiError> {
    ScramMechanism::from_kafka_type(t).ok_or_else(|| {
        ApiError::with_message(
            ResponseError::UnsupportedSaslMechanism,
            format!("user '{user}': unknown SCRAM mechanism type {t} (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512)"),
        )
    })
}

/// Handles AlterUserScramCredentials.
pub(crate) async fn alter(
    broker: &Arc<Broker>,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    // Group the alterations by user, in the order users first appear.
    let mut by_user: IndexMap<String, Result<Vec<Alteration>, ApiError>> = IndexMap::new();
    let mut add = |user: String, alteration: Result<Alteration, ApiError>| {
        let entry = by_user
            .entry(user.clone())
            .or_insert_with(|| Ok(Vec::new()));
        let Ok(list) = entry else { return };
        match alteration {
            Ok((m, _)) if list.iter().any(|(other, _)| *other == m) => {
                *entry = Err(ApiError::with_message(
                    ResponseError::DuplicateResource,
                    format!(
                        "user '{user}': {} is altered more than once in one request",
                        m.sasl_name()
                    ),
                ));
            }
            Ok(a) => list.push(a),
            Err(e) => *entry = Err(e),
        }
    };
    for d in request.deletions {
        let user = d.name.to_string();
        let alteration = mechanism_of(&user, d.mechanism).map(|m| (m, None));
        add(user, alteration);
    }
    for u in request.upsertions {
        let user = u.name.to_string();
        let alteration = mechanism_of(&user, u.mechanism).and_then(|m| {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            if !ScramMechanism::ITERATIONS.contains(&iterations) {
                return Err(unacceptable(format!(
                    "user '{user}': {} iterations is outside {}..={}",
                    u.iterations,
                    ScramMechanism::ITERATIONS.start(),
                    ScramMechanism::ITERATIONS.end()
                )));
            }
            if u.salt.is_empty() {
                return Err(unacceptable(format!("user '{user}': the salt is empty")));
            }
            let hash_len = match m {
                ScramMechanism::Sha256 => 32,
                ScramMechanism::Sha512 => 64,
            };
            if u.salted_password.len() != hash_len {
                return Err(unacceptable(format!(
                    "user '{user}': a {} salted password has {hash_len} bytes, not {}",
                    m.sasl_name(),
                    u.salted_password.len()
                )));
            }
            Ok((
                m,
                Some(scram::credential_from_salted(
                    m,
                    &u.salted_password,
                    &u.salt,
                    iterations,
                )),
            ))
        });
        add(user, alteration);
    }

    let mut results = Vec::with_capacity(by_user.len());
    for (user, alterations) in by_user {
        let result = match alterations {
            Ok(alterations) => apply(broker, &user, alterations).await,
            Err(e) => Err(e),
        };
        let (code, message) = match result {
            Ok(()) => (0, None),
            Err(e) => (e.code(), e.message.map(StrBytes::from_string)),
        };
        results.push(
            alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user))
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Applies one user's checked alterations: deletions of credentials that do
/// not exist are refused first, so that a user is changed wholly or not at all
/// (unless the quorum itself fails midway).
async fn apply(
    broker: &Arc<Broker>,
    user: &str,
    alterations: Vec<Alteration>,
) -> Result<(), ApiError> {
    if user.is_empty() {
        return Err(unacceptable("the user name is empty".into()));
    }
    let state = broker.cluster();
    for (m, credential) in &alterations {
        let exists = state
            .scram_credentials
            .get(user)
            .is_some_and(|by| by.contains_key(m));
        if credential.is_none() && !exists {
            return Err(ApiError::with_message(
                ResponseError::ResourceNotFound,
                format!(
                    "user '{user}' has no {} credential to delete",
                    m.sasl_name()
                ),
            ));
        }
    }
    for (mechanism, credential) in alterations {
        broker
            .propose(Command::AlterScramCredential {
                user: user.to_string(),
                mechanism,
                credential,
            })
            .await?;
    }
    Ok(())
}
