//! The broker's configuration. Every key is declared once in the
//! `runnel-config` crate (shared with the operator) and re-exported here under
//! the paths the broker uses. `runnel.example.toml`, next to this crate, is the
//! commented reference of every key and default; the test below keeps it in
//! sync with [`KEYS`].

pub(crate) use runnel_config::{
    dynamic, find_key, BrokerConfig, ConfigError, Key, KeyKind, KEYS, MAX_PARTITIONS,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_documents_every_key_with_its_default() {
        let text = include_str!("../runnel.example.toml");
        let parsed = BrokerConfig::from_toml_str(text).unwrap();
        assert_eq!(
            parsed,
            BrokerConfig::default(),
            "uncommented example values must be the defaults"
        );
        let defaults = BrokerConfig::default();
        for key in KEYS.iter().map(|k| k.name) {
            let line = text
                .lines()
                .find(|l| {
                    let l = l.trim_start_matches('#').trim_start();
                    l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
                })
                .unwrap_or_else(|| panic!("example config does not mention {key}"));
            if let Some(default) = defaults.value_of(key) {
                let shown = line.split_once('=').unwrap().1.trim();
                // A list is written as a TOML array; value_of joins its items with commas.
                let shown = match shown.parse::<toml::Value>() {
                    Ok(toml::Value::Array(items)) if shown.starts_with('[') => items
                        .iter()
                        .map(|v| v.as_str().unwrap_or_default().to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => shown.trim_matches('"').to_string(),
                };
                assert_eq!(shown, default, "example shows a wrong default for {key}");
            }
        }
    }
}
