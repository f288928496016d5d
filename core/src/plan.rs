//! Memory planning: one arena, sized up front.

use serde::{Deserialize, Serialize};

/// KV cache element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KvDtype {
    /// 4 bytes per value (exact reference numerics).
    F32,
    /// 2 bytes per value.
    F16,
}
