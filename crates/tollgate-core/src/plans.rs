//! Plans (CONTRACT §5). Placeholder: being written.
