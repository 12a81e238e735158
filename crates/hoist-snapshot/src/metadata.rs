//! Reading file metadata and extended attributes without following
//! symlinks.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Extended attributes that describe the overlay filesystem itself rather
/// than the file, and so never go into a layer.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// Returns the extended attributes of `path` sorted by name, without
/// following a final symlink. Filesystems without xattr support yield none.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if is_unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut xattrs = Vec::new();
    for name in names {
        if name.as_bytes().starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        if let Some(value) = xattr::get(path, &name)? {
            xattrs.push((name.as_bytes().to_vec(), value));
        }
    }
    xattrs.sort();
    Ok(xattrs)
}

/// Returns the overlay opaque marker of a directory in an upper directory.
pub(crate) fn is_overlay_opaque(path: &Path) -> io::Result<bool> {
    match xattr::get(path, OsStr::new("trusted.overlay.opaque")) {
        Ok(value) => Ok(value.as_deref() == Some(b"y")),
        Err(e) if is_unsupported(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_unsupported(error: &io::Error) -> bool {
    error.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}
