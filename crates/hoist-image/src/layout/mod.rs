//! OCI image layout directories: `oci-layout`, `index.json` and `blobs/sha256/`.

use serde::{Deserialize, Serialize};

mod read;
mod write;

pub use read::read_oci_layout;
pub use write::write_oci_layout;

/// The `imageLayoutVersion` that hoist writes and reads.
const LAYOUT_VERSION: &str = "1.0.0";

/// The `oci-layout` file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayoutHeader {
    image_layout_version: String,
}
