//! The server side of SCRAM (RFC 5802) with SHA-256 and SHA-512 (RFC 7677), as
//! Kafka speaks it: no channel binding, the user name in `n=`, Kafka's
//! extensions after the nonce ignored. Pure: messages in, messages out; the
//! hashes, HMACs and PBKDF2 are ring's.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use runnel_client::scram::{hash, hmac as client_hmac, random_bytes, stored_keys, ScramHash};
use runnel_meta::{ScramCredential, ScramMechanism};
use subtle::ConstantTimeEq;

/// Length of the random part the server adds to the client's nonce.
const NONCE_BYTES: usize = 24;
/// Length of a new credential's salt.
const SALT_BYTES: usize = 32;

fn hash_of(m: ScramMechanism) -> ScramHash {
    match m {
        ScramMechanism::Sha256 => ScramHash::Sha256,
        ScramMechanism::Sha512 => ScramHash::Sha512,
    }
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    client_hmac(hash_of(m), key, data)
}

/// `Hi(password, salt, i)`: the salted password.
pub(crate) fn salted_password(
    m: ScramMechanism,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
) -> Vec<u8> {
    runnel_client::scram::salted_password(hash_of(m), password, salt, iterations)
}

/// The stored credential of a salted password (what AlterUserScramCredentials sends).
pub(crate) fn credential_from_salted(
    m: ScramMechanism,
    salted: &[u8],
    salt: &[u8],
    iterations: u32,
) -> ScramCredential {
    let (stored_key, server_key) = stored_keys(hash_of(m), salted);
    ScramCredential {
        salt: salt.to_vec(),
        iterations,
        stored_key,
        server_key,
    }
}

/// A new credential for `password` with a random salt.
pub(crate) fn new_credential(
    m: ScramMechanism,
    password: &[u8],
    iterations: u32,
) -> Result<ScramCredential, String> {
    let salt = random_bytes(SALT_BYTES)?;
    let salted = salted_password(m, password, &salt, iterations);
    Ok(credential_from_salted(m, &salted, &salt, iterations))
}

/// Whether `password` is the one `credential` was made from (SASL PLAIN checks
/// passwords against the SCRAM credentials, so a user has one password).
pub(crate) fn password_matches(
    m: ScramMechanism,
    credential: &ScramCredential,
    password: &[u8],
) -> bool {
    let salted = salted_password(m, password, &credential.salt, credential.iterations);
    let derived = credential_from_salted(m, &salted, &credential.salt, credential.iterations);
    bool::from(derived.stored_key.ct_eq(&credential.stored_key))
}

/// Why a SCRAM exchange failed. Every failure is reported to the client as
/// SASL_AUTHENTICATION_FAILED; the detail is for the broker's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ScramError {
    /// The client's message does not follow RFC 5802.
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    /// The user is unknown or the proof is wrong (not told apart, on purpose).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The system random generator failed.
    #[error("no random bytes for the server nonce")]
    Random,
}

/// One SCRAM exchange after the server's first message: what the final
/// client message is checked against.
#[derive(Debug)]
pub(crate) struct ScramExchange {
    mechanism: ScramMechanism,
    user: String,
    /// `None` for an unknown user: the exchange goes on with a made-up salt so
    /// that the client cannot tell unknown users from wrong passwords, and fails.
    credential: Option<ScramCredential>,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

/// The attributes `k=v` of a SCRAM message, in order.
fn attributes(message: &str) -> Result<Vec<(char, &str)>, ScramError> {
    message
        .split(',')
        .map(|part| {
            let mut chars = part.chars();
            match (chars.next(), chars.next()) {
                (Some(k), Some('=')) if k.is_ascii_alphabetic() => Ok((k, &part[2..])),
                _ => Err(ScramError::Malformed(format!("bad attribute '{part}'"))),
            }
        })
        .collect()
}

/// A `saslname` (RFC 5802: `=2C` is `,`, `=3D` is `=`, no other `=`).
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed(format!("bad user name '{name}'"))),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramExchange {
    /// Reads the client's first message and answers the server's first one.
    /// `lookup` finds the user's credential; `fake_salt_key` makes a stable
    /// salt for unknown users.
    pub(crate) fn start(
        mechanism: ScramMechanism,
        client_first: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
        fake_salt_key: &[u8],
    ) -> Result<(ScramExchange, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError::Malformed("client-first-message is not UTF-8".into()))?;
        // gs2-header: "n,," or "y,," (no channel binding), optionally "n,a=authzid,".
        let mut parts = text.splitn(3, ',');
        let (Some(cb), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ScramError::Malformed("no gs2 header".into()));
        };
        if cb != "n" && cb != "y" {
            return Err(ScramError::Malformed(format!(
                "channel binding '{cb}' is not supported"
            )));
        }
        let attrs = attributes(bare)?;
        let (user, client_nonce) = match attrs.as_slice() {
            [('n', user), ('r', nonce), ..] if !nonce.is_empty() => {
                (decode_saslname(user)?, *nonce)
            }
            _ => {
                return Err(ScramError::Malformed(
                    "client-first-message needs n= and r=".into(),
                ))
            }
        };
        if !authzid.is_empty() && authzid != format!("a={}", &attrs[0].1) {
            return Err(ScramError::Malformed(
                "an authorization id other than the user is not supported".into(),
            ));
        }
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                hmac(mechanism, fake_salt_key, user.as_bytes())[..SALT_BYTES].to_vec(),
                4096,
            ),
        };
        let server_nonce = B64.encode(random_bytes(NONCE_BYTES).map_err(|_| ScramError::Random)?);
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        let exchange = ScramExchange {
            mechanism,
            user,
            credential,
            gs2_header: format!("{cb},{authzid},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((exchange, server_first.into_bytes()))
    }

    /// The mechanism of this exchange.
    pub(crate) fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// The user this exchange authenticates.
    pub(crate) fn user(&self) -> &str {
        &self.user
    }

    /// Checks the client's final message; on success answers the server's final
    /// message (its signature, which proves the server knew the credential).
    pub(crate) fn finish(self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError::Malformed("client-final-message is not UTF-8".into()))?;
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return Err(ScramError::Malformed(
                "client-final-message has no proof".into(),
            ));
        };
        let attrs = attributes(without_proof)?;
        let (binding, nonce) = match attrs.as_slice() {
            [('c', binding), ('r', nonce), ..] => (*binding, *nonce),
            _ => {
                return Err(ScramError::Malformed(
                    "client-final-message needs c= and r=".into(),
                ))
            }
        };
        if binding != B64.encode(&self.gs2_header) {
            return Err(ScramError::Malformed(
                "channel binding does not match".into(),
            ));
        }
        // RFC 5802 wants the nonce the server sent; librdkafka before 2.6.1 sends its own
        // nonce again in front of it. Kafka (since 3.8.1) accepts a nonce that ends with
        // the server's, and so do we: Debian's kcat and many clients in the field are older.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::Malformed(format!(
                "nonce does not match: got {nonce:?}, sent {:?}",
                self.nonce
            )));
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64".into()))?;
        let Some(credential) = self.credential else {
            return Err(ScramError::InvalidCredentials);
        };
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let m = self.mechanism;
        let client_signature = hmac(m, &credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored = hash(hash_of(m), &client_key);
        if !bool::from(stored.ct_eq(&credential.stored_key)) {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = hmac(m, &credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example, with the server nonce replaced by ours:
    /// a client computed from the RFC's formulas must be accepted.
    fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let attrs = attributes(server_first).expect("server-first parses");
        let nonce = attrs[0].1;
        let salt = B64.decode(attrs[1].1).expect("salt is base64");
        let iterations: u32 = attrs[2].1.parse().expect("iterations");
        let salted = salted_password(m, password.as_bytes(), &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(hash_of(m), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(m, stored_key.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(m, &salted, b"Server Key");
        let expected_server_final =
            format!("v={}", B64.encode(hmac(m, &server_key, auth.as_bytes()))).into_bytes();
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            expected_server_final,
        )
    }

    #[test]
    fn salted_password_matches_rfc_7677_example() {
        // RFC 7677 section 3: user "user", password "pencil", this salt, 4096 iterations.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64");
        let salted = salted_password(ScramMechanism::Sha256, b"pencil", &salt, 4096);
        let c = credential_from_salted(ScramMechanism::Sha256, &salted, &salt, 4096);
        // The RFC's ServerSignature for its nonces, recomputed from our keys.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_signature = hmac(ScramMechanism::Sha256, &c.server_key, auth.as_bytes());
        assert_eq!(
            B64.encode(server_signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_client_with_the_right_password_is_accepted_and_gets_the_server_signature() {
        for m in ScramMechanism::ALL {
            let credential = new_credential(m, b"s3cret", 4096).expect("random");
            let first = b"n,,n=alice,r=clientnonce123";
            let (exchange, server_first) = ScramExchange::start(
                m,
                first,
                |u| (u == "alice").then(|| credential.clone()),
                b"k",
            )
            .expect("first message");
            assert_eq!(exchange.user(), "alice");
            let server_first = String::from_utf8(server_first).expect("utf-8");
            assert!(
                server_first.starts_with("r=clientnonce123"),
                "{server_first}"
            );
            let (final_msg, expected) =
                client_final(m, "s3cret", "n=alice,r=clientnonce123", &server_first);
            assert_eq!(exchange.finish(final_msg.as_bytes()), Ok(expected));
        }
    }

    #[test]
    fn old_librdkafka_that_repeats_its_nonce_in_the_final_message_is_accepted() {
        // librdkafka < 2.6.1 sends r=<client nonce><server's r=>; its proof is computed over
        // that message, so the exchange still proves the password.
        let m = ScramMechanism::Sha256;
        let credential = new_credential(m, b"pw", 4096).expect("random");
        let (exchange, server_first) =
            ScramExchange::start(m, b"n,,n=u,r=abc", |_| Some(credential.clone()), b"k")
                .expect("first");
        let server_first = String::from_utf8(server_first).expect("utf-8");
        let nonce = attributes(&server_first).expect("attrs")[0].1.to_string();
        let attrs = attributes(&server_first).expect("attrs");
        let salt = B64.decode(attrs[1].1).expect("salt");
        let salted = salted_password(m, b"pw", &salt, 4096);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(hash_of(m), &client_key);
        let without_proof = format!("c=biws,r=abc{nonce}");
        let auth = format!("n=u,r=abc,{server_first},{without_proof}");
        let signature = hmac(m, &stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let final_msg = format!("{without_proof},p={}", B64.encode(proof));
        assert!(exchange.finish(final_msg.as_bytes()).is_ok());
    }

    #[test]
    fn a_wrong_password_or_an_unknown_user_fails_alike() {
        let m = ScramMechanism::Sha512;
        let credential = new_credential(m, b"right", 8192).expect("random");
        let first = b"n,,n=alice,r=abc";
        let (exchange, server_first) =
            ScramExchange::start(m, first, |_| Some(credential.clone()), b"k").expect("first");
        let server_first = String::from_utf8(server_first).expect("utf-8");
        let (final_msg, _) = client_final(m, "wrong", "n=alice,r=abc", &server_first);
        assert_eq!(
            exchange.finish(final_msg.as_bytes()),
            Err(ScramError::InvalidCredentials)
        );
        // An unknown user gets a salt and iteration count too (stable per user name).
        let (exchange, server_first) =
            ScramExchange::start(m, b"n,,n=mallory,r=abc", |_| None, b"k").expect("first");
        let (_, again) =
            ScramExchange::start(m, b"n,,n=mallory,r=abc", |_| None, b"k").expect("first");
        let salt = |s: &[u8]| {
            String::from_utf8_lossy(s)
                .split(',')
                .nth(1)
                .map(str::to_owned)
        };
        assert_eq!(salt(&server_first), salt(&again));
        let server_first = String::from_utf8(server_first).expect("utf-8");
        let (final_msg, _) = client_final(m, "anything", "n=mallory,r=abc", &server_first);
        assert_eq!(
            exchange.finish(final_msg.as_bytes()),
            Err(ScramError::InvalidCredentials)
        );
    }

    #[test]
    fn malformed_messages_and_replayed_nonces_are_refused() {
        let m = ScramMechanism::Sha256;
        let c = new_credential(m, b"pw", 4096).expect("random");
        for bad in [
            &b"p=tls-unique,,n=a,r=x"[..],
            b"n,,r=x",
            b"n,,n=a",
            b"n,,n=a=2X,r=x",
            b"garbage",
            b"n,a=bob,n=alice,r=x",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(
                    ScramExchange::start(m, bad, |_| Some(c.clone()), b"k"),
                    Err(ScramError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let (exchange, _) =
            ScramExchange::start(m, b"n,,n=a=3Db=2Cc,r=x", |_| Some(c.clone()), b"k").expect("ok");
        assert_eq!(exchange.user(), "a=b,c");
        // A final message whose nonce is not the server's.
        let (exchange, _) =
            ScramExchange::start(m, b"n,,n=a,r=x", |_| Some(c.clone()), b"k").expect("first");
        assert!(matches!(
            exchange.finish(b"c=biws,r=xOTHER,p=AAAA"),
            Err(ScramError::Malformed(_))
        ));
    }

    #[test]
    fn plain_passwords_are_checked_against_the_scram_credential() {
        for m in ScramMechanism::ALL {
            let c = new_credential(m, b"hunter2", 4096).expect("random");
            assert!(password_matches(m, &c, b"hunter2"));
            assert!(!password_matches(m, &c, b"hunter3"));
        }
    }
}
