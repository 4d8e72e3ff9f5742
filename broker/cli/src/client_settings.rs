//! Client settings: `--command-config` (a Kafka properties file, as the Kafka
//! tools take) and the `--sasl-*` flags, turned into the client's SASL
//! credentials and TLS files (`ssl.ca.location`, `ssl.certificate.location`,
//! `ssl.key.location`, librdkafka's names). The password never comes from a
//! flag: from the file or from `RUNNEL_SASL_PASSWORD`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use runnel_client::{ClientConfig, ClientTls, SaslCredentials, TlsFiles};

/// The environment variable holding the SASL password.
const PASSWORD_ENV: &str = "RUNNEL_SASL_PASSWORD";

/// `key=value` (or `key: value`) lines; `#` and `!` start comments.
fn parse_properties(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

/// `name="value"` inside a `sasl.jaas.config` line.
fn jaas_option(jaas: &str, name: &str) -> Option<String> {
    let start = jaas.find(&format!("{name}=\""))? + name.len() + 2;
    let len = jaas[start..].find('"')?;
    Some(jaas[start..start + len].to_string())
}

/// How the CLI's connections authenticate and encrypt.
#[derive(Debug, PartialEq)]
struct Security {
    sasl: Option<SaslCredentials>,
    tls: Option<TlsFiles>,
}

/// Sets the SASL credentials and TLS of `config` from the settings.
pub(crate) fn apply(
    config: &mut ClientConfig,
    command_config: Option<&Path>,
    mechanism: Option<&str>,
    username: Option<&str>,
) -> Result<()> {
    let props = match command_config {
        Some(path) => parse_properties(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --command-config {}", path.display()))?,
        ),
        None => HashMap::new(),
    };
    let env_password = std::env::var(PASSWORD_ENV).ok();
    let security = resolve(&props, mechanism, username, env_password)?;
    config.sasl = security.sasl;
    config.tls = match security.tls {
        Some(files) => Some(ClientTls::from_files(&files)?),
        None => None,
    };
    Ok(())
}

fn resolve(
    props: &HashMap<String, String>,
    mechanism: Option<&str>,
    username: Option<&str>,
    env_password: Option<String>,
) -> Result<Security> {
    let protocol = props
        .get("security.protocol")
        .map(|p| p.to_uppercase())
        .unwrap_or_else(|| {
            if mechanism.is_some() || username.is_some() {
                "SASL_PLAINTEXT".into()
            } else {
                "PLAINTEXT".into()
            }
        });
    let (sasl, tls) = match protocol.as_str() {
        "PLAINTEXT" => (false, false),
        "SASL_PLAINTEXT" => (true, false),
        "SSL" => (false, true),
        "SASL_SSL" => (true, true),
        other => {
            bail!("unknown security.protocol {other:?} (PLAINTEXT, SASL_PLAINTEXT, SSL, SASL_SSL)")
        }
    };
    let tls = tls.then(|| TlsFiles {
        ca_location: props.get("ssl.ca.location").map(Into::into),
        certificate_location: props.get("ssl.certificate.location").map(Into::into),
        key_location: props.get("ssl.key.location").map(Into::into),
    });
    if !sasl {
        return Ok(Security { sasl: None, tls });
    }
    let jaas = props.get("sasl.jaas.config");
    let mechanism = mechanism
        .map(str::to_string)
        .or_else(|| props.get("sasl.mechanism").cloned())
        .context("SASL needs a mechanism: --sasl-mechanism or sasl.mechanism")?;
    if !matches!(
        mechanism.as_str(),
        "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512"
    ) {
        bail!(
            "SASL mechanism {mechanism:?} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
        );
    }
    let username = username
        .map(str::to_string)
        .or_else(|| props.get("sasl.username").cloned())
        .or_else(|| jaas.and_then(|j| jaas_option(j, "username")))
        .context("SASL needs a user: --sasl-username, sasl.username or sasl.jaas.config")?;
    let password = env_password
        .or_else(|| props.get("sasl.password").cloned())
        .or_else(|| jaas.and_then(|j| jaas_option(j, "password")))
        .with_context(|| {
            format!("SASL needs a password: {PASSWORD_ENV}, sasl.password or sasl.jaas.config")
        })?;
    Ok(Security {
        sasl: Some(SaslCredentials {
            mechanism,
            username,
            password,
        }),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_style_command_config_and_flags_give_the_credentials() {
        let props = parse_properties(
            "# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s=cret\";\n",
        );
        let c = resolve(&props, None, None, None)
            .expect("valid")
            .sasl
            .expect("sasl");
        assert_eq!(
            (
                c.mechanism.as_str(),
                c.username.as_str(),
                c.password.as_str()
            ),
            ("SCRAM-SHA-512", "alice", "s=cret")
        );
        // Flags and the environment win over the file.
        let c = resolve(&props, Some("PLAIN"), Some("bob"), Some("env-pw".into()))
            .expect("valid")
            .sasl
            .expect("sasl");
        assert_eq!(
            (
                c.mechanism.as_str(),
                c.username.as_str(),
                c.password.as_str()
            ),
            ("PLAIN", "bob", "env-pw")
        );
        // No settings: plaintext.
        assert_eq!(
            resolve(&HashMap::new(), None, None, None).expect("valid"),
            Security {
                sasl: None,
                tls: None
            }
        );
    }

    #[test]
    fn ssl_settings_give_the_tls_files() {
        let props = parse_properties(
            "security.protocol=SSL\nssl.ca.location=/etc/ca.pem\n\
             ssl.certificate.location=/etc/me.pem\nssl.key.location=/etc/me.key\n",
        );
        let s = resolve(&props, None, None, None).expect("valid");
        assert_eq!(s.sasl, None);
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                ca_location: Some("/etc/ca.pem".into()),
                certificate_location: Some("/etc/me.pem".into()),
                key_location: Some("/etc/me.key".into()),
            })
        );
        // SASL_SSL: both; without ssl.ca.location the system's CAs are trusted.
        let props = parse_properties(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n\
             sasl.username=alice\nsasl.password=pw\n",
        );
        let s = resolve(&props, None, None, None).expect("valid");
        assert_eq!(s.sasl.expect("sasl").username, "alice");
        assert_eq!(s.tls, Some(TlsFiles::default()));
    }

    #[test]
    fn missing_or_unsupported_settings_are_named() {
        let props = |text: &str| parse_properties(text);
        let err = |p: &HashMap<String, String>| {
            resolve(p, None, None, None)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&props("security.protocol=SASL_PLAINTEXT\n")).contains("mechanism"));
        assert!(err(&props(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=a\n"
        ))
        .contains(PASSWORD_ENV));
        assert!(err(&props("security.protocol=TLS\n")).contains("unknown security.protocol"));
        assert!(err(&props(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n"
        ))
        .contains("GSSAPI"));
    }
}
