//! Small metadata files under `data_dir` (meta.json; topics.json and
//! producer_ids.json of pre-quorum brokers), written atomically: temp file, fsync, rename, fsync dir.
//! Also the cluster identity kept in `meta.json`. Failures are this module's
//! own [`PersistError`] (it imports nothing of the crate); the broker's
//! start-up error converts it into `Error::Io` / `Error::Metadata`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A metadata file that could not be read, written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file or its directory could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is damaged or disagrees with the configuration.
    #[error("{0}")]
    Metadata(String),
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_no_dir_sync(path, bytes)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// [`write_atomic`] without the directory fsync: the caller fsyncs the
/// directory (once for several files) before relying on the rename.
pub(crate) fn write_atomic_no_dir_sync(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and parses a JSON file; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<Option<T>, PersistError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PersistError::Metadata(format!("{} is damaged: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PersistError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Serializes and atomically writes a JSON file.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| PersistError::Metadata(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, &bytes).map_err(|source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The identity of this data directory: which cluster and node it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// Kafka-style cluster id (22 characters of URL-safe base64).
    pub cluster_id: String,
    /// The node id that owns this data directory.
    pub node_id: i32,
}

/// Path of the identity file.
pub(crate) fn meta_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meta.json")
}

/// Reads `meta.json` if it exists. A configured cluster id or node id that
/// disagrees with the stored one is refused: the data belongs to another broker.
pub(crate) fn read_meta(
    data_dir: &Path,
    node_id: i32,
    configured_cluster_id: Option<&str>,
) -> Result<Option<Meta>, PersistError> {
    let path = meta_path(data_dir);
    if !path.exists() {
        return Ok(None);
    }
    load_or_create_meta(data_dir, node_id, configured_cluster_id).map(Some)
}

/// Writes `meta.json`.
pub(crate) fn store_meta(data_dir: &Path, meta: &Meta) -> Result<(), PersistError> {
    write_json(&meta_path(data_dir), meta)
}

/// Loads `meta.json`, creating it on first start. A configured cluster id or
/// node id that disagrees with the stored one is refused: the data belongs to
/// another broker.
pub(crate) fn load_or_create_meta(
    data_dir: &Path,
    node_id: i32,
    configured_cluster_id: Option<&str>,
) -> Result<Meta, PersistError> {
    let path = meta_path(data_dir);
    if let Some(meta) = read_json::<Meta>(&path)? {
        if meta.node_id != node_id {
            return Err(PersistError::Metadata(format!(
                "data_dir {} belongs to node_id {} but this broker is configured with node_id {node_id}; \
                 refusing to start",
                data_dir.display(),
                meta.node_id
            )));
        }
        if let Some(configured) = configured_cluster_id {
            if configured != meta.cluster_id {
                return Err(PersistError::Metadata(format!(
                    "data_dir {} belongs to cluster {} but cluster_id is configured as {configured}; \
                     refusing to start",
                    data_dir.display(),
                    meta.cluster_id
                )));
            }
        }
        return Ok(meta);
    }
    let cluster_id = configured_cluster_id
        .map(str::to_string)
        .unwrap_or_else(runnel_meta::generate_cluster_id);
    let meta = Meta {
        cluster_id,
        node_id,
    };
    write_json(&path, &meta)?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_created_once_and_mismatches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_meta(dir.path(), 1, None).unwrap();
        let again = load_or_create_meta(dir.path(), 1, None).unwrap();
        assert_eq!(first, again);
        let err = load_or_create_meta(dir.path(), 2, None).unwrap_err();
        assert!(err.to_string().contains("node_id"));
        let err = load_or_create_meta(dir.path(), 1, Some("other")).unwrap_err();
        assert!(err.to_string().contains("cluster"));
        assert!(load_or_create_meta(dir.path(), 1, Some(&first.cluster_id)).is_ok());
    }
}
