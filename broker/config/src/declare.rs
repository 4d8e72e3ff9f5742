//! The `declare_broker_config!` macro: turns the one declaration of every key
//! into the [`BrokerConfig`](crate::BrokerConfig) struct, its `Default`, the
//! [`KEYS`](crate::KEYS) table and the range checks, so none of them can
//! disagree with another.

use crate::ConfigError;

/// Declares `BrokerConfig`, its `Default`, `KEYS` and `BrokerConfig::check_ranges`.
/// Each entry reads:
///
/// ```text
/// /// Rust documentation of the field.
/// name: Type = default,
///     doc: "one line, for DescribeConfigs",
///     [help: "the --help line, when it differs from doc",]
///     [kafka: ["kafka.name", ...],]
///     cluster: Settable | Reserved | Hidden
///     [, min: lowest [, max: highest]];
/// ```
///
/// A `min` alone is reported as "must be >= min", with `max` as "must be
/// between min and max".
macro_rules! declare_broker_config {
    ($(
        $(#[$attr:meta])*
        $name:ident: $ty:ty = $default:expr,
            doc: $doc:literal,
            $(help: $help:literal,)?
            $(kafka: [$($kafka:literal),+ $(,)?],)?
            cluster: $cluster:ident
            $(, min: $min:expr $(, max: $max:expr)?)?;
    )*) => {
        /// The broker's configuration. Field names are the TOML keys.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct BrokerConfig {
            $(
                $(#[$attr])*
                pub $name: $ty,
            )*
        }

        impl Default for BrokerConfig {
            fn default() -> Self {
                BrokerConfig {
                    $($name: $default,)*
                }
            }
        }

        /// Every config key in declaration order (the reference list).
        pub const KEYS: &[$crate::Key] = &[$(
            $crate::Key {
                name: stringify!($name),
                kind: <$ty as $crate::key::ValueKind>::KIND,
                doc: $doc,
                help: $crate::declare::help_or_doc!($($help,)? $doc),
                kafka_names: &[$($($kafka),+)?],
                cluster: $crate::ClusterAccess::$cluster,
            },
        )*];

        impl BrokerConfig {
            /// Checks every declared range, in declaration order.
            fn check_ranges(&self) -> Result<(), $crate::ConfigError> {
                $($(
                    $crate::declare::check_range(
                        stringify!($name),
                        self.$name,
                        i128::from($min),
                        None $(.or(Some(i128::from($max))))?,
                    )?;
                )?)*
                Ok(())
            }
        }
    };
}

/// The flag's help line: the declared one, else the key's doc.
macro_rules! help_or_doc {
    ($help:literal, $doc:literal) => {
        $help
    };
    ($doc:literal) => {
        $doc
    };
}

pub(crate) use {declare_broker_config, help_or_doc};

/// The error for a value outside `min..=max` (or below `min` when there is no max).
pub(crate) fn check_range(
    key: &str,
    value: impl TryInto<i128>,
    min: i128,
    max: Option<i128>,
) -> Result<(), ConfigError> {
    // Every field type fits in i128 (usize is at most 64 bits).
    let value: i128 = value.try_into().unwrap_or(i128::MAX);
    let message = match max {
        Some(max) if value < min || value > max => format!("must be between {min} and {max}"),
        None if value < min => format!("must be >= {min}"),
        _ => return Ok(()),
    };
    Err(ConfigError::Invalid {
        key: key.to_string(),
        message,
    })
}
