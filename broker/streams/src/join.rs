//! Stream–table joins: each record of a stream looks up its key in a table's store.

use std::sync::Arc;

use crate::error::StreamsError;
use crate::graph::Data;
use crate::node::node;
use crate::record::Record;
use crate::stream::{serialize_error, KStream};
use crate::table::KTable;

impl<K: Data, V: Data> KStream<K, V> {
    /// Inner stream–table join: each record joined with the table's current value of its key;
    /// records whose key the table does not hold are dropped. The stream and the table must be
    /// co-partitioned (same key, same partition count).
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.lookup(table, move |v, vt| vt.map(|vt| joiner(v, vt)))
    }

    /// Left stream–table join: every record, with the table's value of its key if it has one.
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.lookup(table, move |v, vt| Some(joiner(v, vt)))
    }

    fn lookup<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        if self.key_changed {
            self.record_error(StreamsError::Topology(format!(
                "a stream whose keys were changed cannot be joined with table {} without a repartition; group or write it to a topic first",
                table.store
            )));
        }
        let group = self.state.lock().union(self.group, table.group);
        let joiner = Arc::new(joiner);
        let store_name = table.store.clone();
        let (ks, vs) = (table.key_serde.clone(), table.value_serde.clone());
        let mut child = self.then(false, move |mut next, b| {
            let store = b.store(&store_name)?;
            let (joiner, ks, vs) = (joiner.clone(), ks.clone(), vs.clone());
            Ok(node(move |ctx, r: Record<K, V>| {
                let key = ks
                    .serialize(&r.key)
                    .map_err(|e| serialize_error("key", store.name(), e))?;
                let current = match store.get(&key)? {
                    Some(bytes) => Some(
                        vs.deserialize(&bytes)
                            .map_err(|e| StreamsError::store(store.name(), e))?,
                    ),
                    None => None,
                };
                match joiner(&r.value, current.as_ref()) {
                    Some(value) => next.process(ctx, Record::new(r.key, value, r.timestamp)),
                    None => Ok(()),
                }
            }))
        });
        child.group = group;
        child
    }
}
