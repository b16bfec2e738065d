//! tollgate-store: being written.
