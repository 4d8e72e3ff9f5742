//! The processor API: a processor is user code that sees each record, may read and write the
//! stores it declared, and passes on any number of records.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Result, StreamsError};
use crate::graph::{Data, StoreSpec};
use crate::node::{node, ProcessorContext, TaskBuild};
use crate::query::TypedCodec;
use crate::record::Record;
use crate::serdes::SerdeRef;
use crate::store::KeyValueStore;
use crate::store::StoreKind;
use crate::stream::KStream;

/// User code run on each record of a stream.
pub trait Processor<K, V, KO, VO>: Send + 'static {
    /// Called once per task before the first record, with the stores the processor declared.
    fn init(&mut self, stores: &StoreAccess<'_>) -> Result<()> {
        let _ = stores;
        Ok(())
    }

    /// Handles one record; records pushed to `forward` go on to the next operations.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_>,
        record: Record<K, V>,
        forward: &mut Vec<Record<KO, VO>>,
    ) -> Result<()>;
}

/// A key-value store a processor declares (queryable over HTTP like the DSL's stores).
pub struct StoreDecl {
    name: String,
    query: Arc<dyn crate::query::QueryCodec>,
}

impl StoreDecl {
    /// A key-value store named `name` with these serdes.
    pub fn key_value<K, V>(name: &str, key_serde: SerdeRef<K>, value_serde: SerdeRef<V>) -> Self
    where
        K: Serialize + DeserializeOwned + 'static,
        V: Serialize + 'static,
    {
        StoreDecl {
            name: name.to_string(),
            query: Arc::new(TypedCodec {
                key_serde,
                value_serde,
            }),
        }
    }
}

/// The stores a processor declared, in its task.
pub struct StoreAccess<'a> {
    build: &'a TaskBuild,
    declared: &'a [String],
}

impl StoreAccess<'_> {
    /// The task's instance of the declared store `name`, typed with these serdes.
    pub fn key_value<K, V>(
        &self,
        name: &str,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
    ) -> Result<KeyValueStore<K, V>> {
        if !self.declared.iter().any(|d| d == name) {
            return Err(StreamsError::Topology(format!(
                "the processor did not declare store {name}"
            )));
        }
        Ok(KeyValueStore {
            raw: self.build.store(name)?,
            key_serde,
            value_serde,
        })
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Runs a processor made by `supplier` (one per task) on each record; it may use the stores
    /// in `stores`, each backed by a changelog like the DSL's.
    pub fn process<KO: Data, VO: Data, P: Processor<K, V, KO, VO>>(
        &self,
        stores: Vec<StoreDecl>,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> KStream<KO, VO> {
        let mut names = Vec::new();
        {
            let mut st = self.state.lock();
            for decl in stores {
                match st.claim(&decl.name) {
                    Ok(()) => {
                        st.stores.push(StoreSpec {
                            name: decl.name.clone(),
                            group: self.group,
                            kind: StoreKind::KeyValue,
                            query: decl.query,
                        });
                        names.push(decl.name);
                    }
                    Err(e) => {
                        drop(st);
                        self.record_error(e);
                        st = self.state.lock();
                    }
                }
            }
        }
        let names = Arc::new(names);
        let supplier = Arc::new(supplier);
        self.then(true, move |mut next, b| {
            let mut processor = supplier();
            processor.init(&StoreAccess {
                build: b,
                declared: &names,
            })?;
            let mut forward = Vec::new();
            Ok(node(move |ctx, r: Record<K, V>| {
                processor.process(ctx, r, &mut forward)?;
                for out in forward.drain(..) {
                    next.process(ctx, out)?;
                }
                Ok(())
            }))
        })
    }
}
