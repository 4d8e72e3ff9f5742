//! SCRAM (RFC 5802) over SHA-256 and SHA-512 (RFC 7677): the key derivations
//! both sides need and the client's side of the exchange. The hashes, HMACs,
//! PBKDF2 and random nonces are ring's; nothing here is hand-written crypto.
//! The broker's server side builds on the same derivations.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// The hash a SCRAM mechanism is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramHash {
    /// The SASL mechanism name.
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The hash of a SASL mechanism name.
    pub fn from_mechanism(name: &str) -> Option<ScramHash> {
        [ScramHash::Sha256, ScramHash::Sha512]
            .into_iter()
            .find(|h| h.mechanism() == name)
    }

    /// Kafka's mechanism type (AlterUserScramCredentials): 1 and 2.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramHash::Sha256 => 1,
            ScramHash::Sha512 => 2,
        }
    }

    /// Bytes of the hash (and of a salted password).
    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramHash::Sha256 => &digest::SHA256,
            ScramHash::Sha512 => &digest::SHA512,
        }
    }
}

/// `HMAC(key, data)`.
pub fn hmac(h: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    let alg = match h {
        ScramHash::Sha256 => hmac::HMAC_SHA256,
        ScramHash::Sha512 => hmac::HMAC_SHA512,
    };
    hmac::sign(&hmac::Key::new(alg, key), data)
        .as_ref()
        .to_vec()
}

/// `H(data)`.
pub fn hash(h: ScramHash, data: &[u8]) -> Vec<u8> {
    digest::digest(h.digest(), data).as_ref().to_vec()
}

/// `Hi(password, salt, i)`: the salted password (PBKDF2 with HMAC).
pub fn salted_password(h: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let alg = match h {
        ScramHash::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
        ScramHash::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
    };
    let rounds = std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN);
    let mut out = vec![0u8; h.output_len()];
    pbkdf2::derive(alg, rounds, salt, password, &mut out);
    out
}

/// What a server stores for a salted password: `(StoredKey, ServerKey)`.
pub fn stored_keys(h: ScramHash, salted: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let client_key = hmac(h, salted, b"Client Key");
    (hash(h, &client_key), hmac(h, salted, b"Server Key"))
}

/// `n` random bytes from the system's secure generator.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    use ring::rand::SecureRandom;
    let mut out = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "the system random generator failed".to_string())?;
    Ok(out)
}

/// A user name as a SCRAM `saslname` (`,` and `=` escaped).
fn encode_saslname(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The client's side of one SCRAM exchange.
#[derive(Debug)]
pub struct ScramClient {
    hash: ScramHash,
    password: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    /// Set by [`ScramClient::final_message`]: the server signature to expect.
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// A new exchange for `user`; its first message is [`ScramClient::first_message`].
    pub fn new(hash: ScramHash, user: &str, password: &str) -> Result<ScramClient, String> {
        let nonce = B64.encode(random_bytes(24)?);
        Ok(ScramClient {
            hash,
            password: password.as_bytes().to_vec(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            nonce,
            expected_server_signature: None,
        })
    }

    /// The client-first-message (no channel binding).
    pub fn first_message(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final-message answering the server's first message.
    pub fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| "the server's first SCRAM message is not UTF-8".to_string())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for part in text.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(format!("malformed server-first-message '{text}'"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| "the server's salt is not base64".to_string())?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("bad iteration count '{iterations}'"))?;
        if iterations < 4096 {
            return Err(format!("the server asks for only {iterations} iterations"));
        }
        let h = self.hash;
        let salted = salted_password(h, &self.password, &salt, iterations);
        let client_key = hmac(h, &salted, b"Client Key");
        let stored_key = hash(h, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = hmac(h, &stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(h, &salted, b"Server Key");
        self.expected_server_signature = Some(hmac(h, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final-message: the server proved it knows the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(server_final);
        if let Some(error) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {error}"));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v.split(',').next().unwrap_or_default()).ok())
            .ok_or_else(|| format!("malformed server-final-message '{text}'"))?;
        match &self.expected_server_signature {
            Some(expected) if *expected == signature => Ok(()),
            _ => Err("the server's signature is wrong: it does not know the credential".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7677_example_derives_the_same_proof_and_server_signature() {
        // RFC 7677 section 3, with our client nonce replaced by the RFC's.
        let mut c = ScramClient::new(ScramHash::Sha256, "user", "pencil").expect("random");
        c.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        c.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let final_msg = c.final_message(server_first).expect("final");
        assert_eq!(
            String::from_utf8(final_msg).expect("utf-8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the RFC's server signature");
        assert!(c.verify_server_final(b"v=AAAA").is_err());
        assert!(c.verify_server_final(b"e=invalid-proof").is_err());
    }

    #[test]
    fn a_server_that_does_not_extend_the_nonce_or_asks_for_few_iterations_is_refused() {
        let mut c = ScramClient::new(ScramHash::Sha512, "a,b=c", "pw").expect("random");
        assert!(String::from_utf8(c.first_message())
            .expect("utf-8")
            .starts_with("n,,n=a=2Cb=3Dc,r="));
        assert!(c.final_message(b"r=other,s=AAAA,i=4096").is_err());
        let ours = c.nonce.clone();
        assert!(c
            .final_message(format!("r={ours}x,s=AAAA,i=1").as_bytes())
            .is_err());
        assert!(c
            .final_message(format!("r={ours}x,s=AAAA,i=4096").as_bytes())
            .is_ok());
    }
}
