//! Named listeners (Kafka's `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map` and `inter.broker.listener.name`): the
//! keys read together into one [`ListenerConfig`] per listener, with the
//! errors that name the key at fault. A broker whose `listeners` is empty has
//! one `PLAINTEXT` listener on `listen`, advertised as `advertised_address`,
//! exactly as before named listeners existed.

use std::collections::HashSet;

use crate::{split_host_port, BrokerConfig, ConfigError};

/// Kafka's security protocol names, the values of `listener_security_protocol_map`.
pub const SECURITY_PROTOCOLS: [&str; 4] = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The listener of a broker configured with `listen` alone.
pub const DEFAULT_LISTENER: &str = "PLAINTEXT";

/// The values `ssl_client_auth` may take (Kafka's `ssl.client.auth`).
pub const SSL_CLIENT_AUTH: [&str; 3] = ["none", "requested", "required"];

/// One listener as the configuration defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Its name, upper case (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    /// Its security protocol: one of [`SECURITY_PROTOCOLS`].
    pub protocol: &'static str,
    /// The `host:port` it binds (port 0 = any free port).
    pub bind: String,
    /// The host and port it gives clients; `None` = the bound address.
    pub advertised: Option<(String, u16)>,
}

impl ListenerConfig {
    /// Whether its connections are wrapped in TLS.
    pub fn uses_tls(&self) -> bool {
        matches!(self.protocol, "SSL" | "SASL_SSL")
    }
}

fn invalid(key: &str, message: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message,
    }
}

/// Splits `NAME://host:port` into the upper-cased name and `host:port`.
fn split_listener<'a>(key: &str, entry: &'a str) -> Result<(String, &'a str), ConfigError> {
    let (name, addr) = entry.split_once("://").ok_or_else(|| {
        invalid(
            key,
            format!("{entry:?} is not NAME://host:port (e.g. PLAINTEXT://0.0.0.0:9092)"),
        )
    })?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !name_ok {
        return Err(invalid(
            key,
            format!("{entry:?}: a listener name is letters, digits, '_' and '-'"),
        ));
    }
    if split_host_port(addr).is_none() {
        return Err(invalid(
            key,
            format!("{entry:?}: expected host:port after {name}://"),
        ));
    }
    Ok((name.to_ascii_uppercase(), addr))
}

/// The protocol of a Kafka protocol name (case-insensitive), as its canonical name.
fn protocol_named(name: &str) -> Option<&'static str> {
    SECURITY_PROTOCOLS
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(name))
}

impl BrokerConfig {
    /// Every listener, in the order of `listeners` (the first one is the one
    /// the ready line shows and the default inter-broker listener), or the one
    /// `PLAINTEXT` listener on `listen` when `listeners` is empty.
    pub fn listener_configs(&self) -> Result<Vec<ListenerConfig>, ConfigError> {
        if self.listeners.is_empty() {
            for (key, set) in [
                (
                    "advertised_listeners",
                    !self.advertised_listeners.is_empty(),
                ),
                (
                    "listener_security_protocol_map",
                    !self.listener_security_protocol_map.is_empty(),
                ),
                (
                    "inter_broker_listener_name",
                    self.inter_broker_listener_name.is_some(),
                ),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        "needs listeners (without it the broker has one PLAINTEXT listener on listen)"
                            .into(),
                    ));
                }
            }
            return Ok(vec![ListenerConfig {
                name: DEFAULT_LISTENER.to_string(),
                protocol: "PLAINTEXT",
                bind: self.listen.clone(),
                advertised: self.advertised_address.as_deref().and_then(split_host_port),
            }]);
        }
        if self.listen != BrokerConfig::default().listen {
            return Err(invalid(
                "listen",
                "set either listen or listeners, not both (listeners replaces listen)".into(),
            ));
        }
        if self.advertised_address.is_some() {
            return Err(invalid(
                "advertised_address",
                "set advertised_listeners instead when listeners is set".into(),
            ));
        }
        let mut protocols: Vec<(String, &'static str)> = Vec::new();
        for entry in &self.listener_security_protocol_map {
            let key = "listener_security_protocol_map";
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| invalid(key, format!("{entry:?} is not NAME:PROTOCOL")))?;
            let name = name.trim().to_ascii_uppercase();
            let protocol = protocol_named(protocol.trim()).ok_or_else(|| {
                invalid(
                    key,
                    format!(
                        "{entry:?}: unknown security protocol {protocol:?} (expected one of {})",
                        SECURITY_PROTOCOLS.join(", ")
                    ),
                )
            })?;
            if protocols.iter().any(|(n, _)| *n == name) {
                return Err(invalid(key, format!("listener {name} is mapped twice")));
            }
            protocols.push((name, protocol));
        }
        let mut listeners: Vec<ListenerConfig> = Vec::new();
        for entry in &self.listeners {
            let (name, bind) = split_listener("listeners", entry)?;
            if listeners.iter().any(|l| l.name == name) {
                return Err(invalid(
                    "listeners",
                    format!("listener {name} is declared twice"),
                ));
            }
            let fixed_port = !bind.ends_with(":0");
            if fixed_port && listeners.iter().any(|l| l.bind == bind) {
                return Err(invalid(
                    "listeners",
                    format!("{bind} is bound by two listeners"),
                ));
            }
            let protocol = protocols
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| *p)
                .or_else(|| protocol_named(&name))
                .ok_or_else(|| {
                    invalid(
                        "listener_security_protocol_map",
                        format!(
                            "listener {name} has no security protocol: add {name}:PROTOCOL (one of {})",
                            SECURITY_PROTOCOLS.join(", ")
                        ),
                    )
                })?;
            listeners.push(ListenerConfig {
                name,
                protocol,
                bind: bind.to_string(),
                advertised: None,
            });
        }
        let mut advertised_names = HashSet::new();
        for entry in &self.advertised_listeners {
            let key = "advertised_listeners";
            let (name, addr) = split_listener(key, entry)?;
            let Some(listener) = listeners.iter_mut().find(|l| l.name == name) else {
                return Err(invalid(
                    key,
                    format!("{entry:?}: there is no listener named {name} in listeners"),
                ));
            };
            if !advertised_names.insert(name.clone()) {
                return Err(invalid(key, format!("listener {name} is advertised twice")));
            }
            let (host, port) = split_host_port(addr)
                .ok_or_else(|| invalid(key, format!("{entry:?}: expected host:port")))?;
            if port == 0 || matches!(host.as_str(), "0.0.0.0" | "::") {
                return Err(invalid(
                    key,
                    format!("{entry:?}: clients cannot connect to that address"),
                ));
            }
            listener.advertised = Some((host, port));
        }
        if let Some(name) = &self.inter_broker_listener_name {
            let key = "inter_broker_listener_name";
            let name = name.to_ascii_uppercase();
            if !listeners.iter().any(|l| l.name == name) {
                return Err(invalid(
                    key,
                    format!("there is no listener named {name} in listeners"),
                ));
            }
        }
        Ok(listeners)
    }

    /// The name of the listener other brokers connect to: `inter_broker_listener_name`,
    /// else the first listener.
    pub fn inter_broker_listener(&self) -> Result<ListenerConfig, ConfigError> {
        let listeners = self.listener_configs()?;
        let wanted = self
            .inter_broker_listener_name
            .as_deref()
            .map(str::to_ascii_uppercase);
        listeners
            .iter()
            .find(|l| wanted.as_deref().is_none_or(|w| l.name == w))
            .cloned()
            .ok_or_else(|| invalid("listeners", "no listener is configured".into()))
    }

    /// The SASL user and password file brokers authenticate with to each other:
    /// `inter_broker_sasl_username` and its file, or else the bootstrap user's.
    pub fn inter_broker_sasl_user(&self) -> Option<(&str, &str)> {
        match (
            &self.inter_broker_sasl_username,
            &self.inter_broker_sasl_password_file,
        ) {
            (Some(user), Some(file)) => Some((user, file)),
            (None, None) => self
                .sasl_bootstrap_user
                .as_deref()
                .zip(self.sasl_bootstrap_password_file.as_deref()),
            _ => None,
        }
    }

    /// Checks the listener keys and the TLS keys they need.
    pub(crate) fn validate_listeners(&self) -> Result<(), ConfigError> {
        let listeners = self.listener_configs()?;
        let inter_broker = self.inter_broker_listener()?;
        if matches!(inter_broker.protocol, "SASL_PLAINTEXT" | "SASL_SSL")
            && self.inter_broker_sasl_user().is_none()
        {
            return Err(invalid(
                "inter_broker_sasl_username",
                format!(
                    "the inter-broker listener {} uses SASL: set inter_broker_sasl_username and inter_broker_sasl_password_file (or sasl_bootstrap_user and its password file)",
                    inter_broker.name
                ),
            ));
        }
        if !SSL_CLIENT_AUTH.contains(&self.ssl_client_auth.as_str()) {
            return Err(invalid(
                "ssl_client_auth",
                format!(
                    "{:?}: expected one of {}",
                    self.ssl_client_auth,
                    SSL_CLIENT_AUTH.join(", ")
                ),
            ));
        }
        for (key, value) in [
            ("ssl_certificate_location", &self.ssl_certificate_location),
            ("ssl_key_location", &self.ssl_key_location),
            ("ssl_truststore_location", &self.ssl_truststore_location),
        ] {
            if value.as_deref() == Some("") {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if let Some(tls) = listeners.iter().find(|l| l.uses_tls()) {
            for (key, value) in [
                ("ssl_certificate_location", &self.ssl_certificate_location),
                ("ssl_key_location", &self.ssl_key_location),
            ] {
                if value.is_none() {
                    return Err(invalid(
                        key,
                        format!("listener {} uses {} and needs it", tls.name, tls.protocol),
                    ));
                }
            }
            if self.ssl_client_auth != "none" && self.ssl_truststore_location.is_none() {
                return Err(invalid(
                    "ssl_truststore_location",
                    format!(
                        "ssl_client_auth {} needs the CAs client certificates are verified against",
                        self.ssl_client_auth
                    ),
                ));
            }
        }
        Ok(())
    }
}
