//! Pure builders of the Kubernetes objects a `Cluster` owns: same spec in, same objects out.
