//! tollgate-client: being written.
