//! SCRAM users (KIP-554): DescribeUserScramCredentials and
//! AlterUserScramCredentials. A password never leaves the client: it is
//! salted (a random salt) and hashed with PBKDF2 here, and only the salted
//! password is sent, as Kafka's admin client does.

use bytes::Bytes;
use kafka_protocol::messages::{
    alter_user_scram_credentials_request, describe_user_scram_credentials_request,
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::Client;
use crate::error::{check, Error, Result};
use crate::scram::{random_bytes, salted_password, ScramHash};

/// One user's SCRAM credentials: the mechanisms and iteration counts (never secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    /// User name.
    pub name: String,
    /// `(mechanism, iterations)`, e.g. `("SCRAM-SHA-256", 4096)`.
    pub credentials: Vec<(String, i32)>,
}

/// A change to one user's credential.
#[derive(Debug, Clone)]
pub enum ScramChange {
    /// Set the password for a mechanism.
    Upsert {
        /// User name.
        user: String,
        /// Mechanism.
        hash: ScramHash,
        /// The password (salted and hashed before it is sent).
        password: String,
        /// PBKDF2 iterations (4096 to 16384).
        iterations: i32,
    },
    /// Delete the credential of a mechanism.
    Delete {
        /// User name.
        user: String,
        /// Mechanism.
        hash: ScramHash,
    },
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn mechanism_name(t: i8) -> String {
    match t {
        1 => ScramHash::Sha256.mechanism().to_string(),
        2 => ScramHash::Sha512.mechanism().to_string(),
        other => format!("UNKNOWN({other})"),
    }
}

impl Client {
    /// The SCRAM users named in `users`, or every user when it is empty.
    pub async fn describe_scram_users(&self, users: &[String]) -> Result<Vec<ScramUser>> {
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(
                    DescribeUserScramCredentialsRequest::default().with_users(Some(
                        users
                            .iter()
                            .map(|u| {
                                describe_user_scram_credentials_request::UserName::default()
                                    .with_name(s(u))
                            })
                            .collect(),
                    )),
                )
            })
            .await?;
        check(
            resp.error_code,
            || "SCRAM users".to_string(),
            resp.error_message.as_deref(),
        )?;
        let mut out = Vec::with_capacity(resp.results.len());
        for r in resp.results {
            let name = r.user.to_string();
            check(
                r.error_code,
                || format!("user '{name}'"),
                r.error_message.as_deref(),
            )?;
            out.push(ScramUser {
                name,
                credentials: r
                    .credential_infos
                    .iter()
                    .map(|c| (mechanism_name(c.mechanism), c.iterations))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Applies `changes` (AlterUserScramCredentials); the first user refused is the error.
    pub async fn alter_scram_users(&self, changes: &[ScramChange]) -> Result<()> {
        let mut upsertions = Vec::new();
        let mut deletions = Vec::new();
        for change in changes {
            match change {
                ScramChange::Upsert {
                    user,
                    hash,
                    password,
                    iterations,
                } => {
                    let salt = random_bytes(32).map_err(|reason| Error::Local { reason })?;
                    let rounds = u32::try_from(*iterations).unwrap_or(0);
                    let salted = salted_password(*hash, password.as_bytes(), &salt, rounds);
                    upsertions.push(
                        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                            .with_name(s(user))
                            .with_mechanism(hash.kafka_type())
                            .with_iterations(*iterations)
                            .with_salt(Bytes::from(salt))
                            .with_salted_password(Bytes::from(salted)),
                    );
                }
                ScramChange::Delete { user, hash } => deletions.push(
                    alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(s(user))
                        .with_mechanism(hash.kafka_type()),
                ),
            }
        }
        let resp = self
            .request(self.controller_route(), i16::MAX, |_| {
                Ok(AlterUserScramCredentialsRequest::default()
                    .with_upsertions(upsertions.clone())
                    .with_deletions(deletions.clone()))
            })
            .await?;
        for r in resp.results {
            check(
                r.error_code,
                || format!("user '{}'", r.user.as_str()),
                r.error_message.as_deref(),
            )?;
        }
        Ok(())
    }
}
