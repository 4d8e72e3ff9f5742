//! The shapes of the generated schema table (`schema.rs`).

/// An inclusive version range; `min > max` is the empty range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V(pub(crate) i16, pub(crate) i16);

impl V {
    pub(crate) fn contains(self, version: i16) -> bool {
        self.0 <= version && version <= self.1
    }
}

/// Which kind of message a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Response,
    Header,
    /// A versioned structure carried inside another message's bytes (the
    /// consumer protocol's subscription and assignment).
    Data,
}

/// A field's wire type.
#[derive(Debug)]
pub(crate) enum Ty {
    Bool,
    Int8,
    Int16,
    Uint16,
    Int32,
    Int64,
    Float64,
    Uuid,
    String,
    Bytes,
    Records,
    Array(&'static Ty),
    Struct(&'static [Field]),
}

/// One field of a message or nested struct.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    /// Versions in which the field is on the wire.
    pub(crate) versions: V,
    /// Versions in which it may be null.
    pub(crate) nullable: V,
    /// Its tag and the versions in which it is a tagged field.
    pub(crate) tag: Option<(u32, V)>,
    /// A field-level override of the message's flexible versions
    /// (the request header's client id stays a classic string).
    pub(crate) flexible: Option<V>,
}

/// One top-level message.
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) name: &'static str,
    pub(crate) api_key: i16,
    pub(crate) kind: Kind,
    pub(crate) valid: V,
    pub(crate) flexible: V,
    pub(crate) fields: &'static [Field],
}
