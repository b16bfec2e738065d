//! tollgate-server: being written.
