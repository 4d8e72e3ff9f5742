//! Multi-node clusters.
