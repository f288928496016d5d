//! tern-pack
