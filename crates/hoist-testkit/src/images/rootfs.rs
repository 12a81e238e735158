//! The recipes of the base images' root filesystems.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{DEBIAN_SUITE, SOURCE_DATE_EPOCH};
use crate::error::{Error, Result, io_error};
use crate::process::{file_tail, run};

/// Fills `rootfs` with the busybox image and returns its history text.
pub(super) fn fill_busybox(rootfs: &Path) -> Result<String> {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "home", "proc", "sys", "dev",
    ] {
        make_dir(&rootfs.join(dir), 0o755)?;
    }
    make_dir(&rootfs.join("root"), 0o700)?;
    make_dir(&rootfs.join("tmp"), 0o1777)?;
    make_dir(&rootfs.join("var"), 0o755)?;
    make_dir(&rootfs.join("var/tmp"), 0o1777)?;

    let busybox = rootfs.join("bin/busybox");
    fs::copy("/bin/busybox", &busybox).map_err(io_error("copy /bin/busybox to", &busybox))?;
    fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755))
        .map_err(io_error("set mode of", &busybox))?;
    let applets = run(Command::new("/bin/busybox").arg("--list-full"))?.stdout;
    // Each line is a path such as `bin/sh` or `usr/bin/wget`.
    for applet in String::from_utf8_lossy(&applets).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = rootfs.join(applet);
        if let Some(parent) = link.parent() {
            make_dir(parent, 0o755)?;
        }
        symlink("/bin/busybox", &link).map_err(io_error("create symlink", &link))?;
    }

    write_file(
        &rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    write_file(&rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let version = package_version("busybox-static")?;
    Ok(format!("hoist-testkit: busybox-static {version}"))
}

/// Fills `rootfs` with a cleaned debootstrap tree and returns its history text.
pub(super) fn fill_debian(rootfs: &Path, work: &Path) -> Result<String> {
    let mirror = debian_mirror(DEBIAN_SUITE);
    let log = work.join("debootstrap.log");
    let log_file = fs::File::create(&log).map_err(io_error("create", &log))?;
    let log_for_stderr = log_file.try_clone().map_err(io_error("duplicate", &log))?;
    tracing::info!(%mirror, "running debootstrap --variant=minbase {DEBIAN_SUITE}");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", DEBIAN_SUITE])
        .arg(rootfs)
        .arg(&mirror)
        .stdout(log_file)
        .stderr(log_for_stderr)
        .status()
        .map_err(|source| Error::Spawn {
            program: "debootstrap".to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(Error::CommandFailed {
            command: format!("debootstrap --variant=minbase {DEBIAN_SUITE} {mirror}"),
            status,
            stderr_tail: file_tail(&log),
        });
    }
    clean_debian(rootfs)?;
    Ok(format!(
        "debootstrap --variant=minbase {DEBIAN_SUITE} {mirror}"
    ))
}

/// Makes the debootstrap tree look like a container base image: no apt
/// lists, caches or logs, no device nodes (runtimes mount `/dev`) and no host
/// identity. It also removes what differs between two runs from the same
/// mirror. The ldconfig aux-cache, which contains inode numbers and times, is
/// deleted, and the last-password-change day in `/etc/shadow` is pinned.
fn clean_debian(rootfs: &Path) -> Result<()> {
    for dir in [
        "var/lib/apt/lists",
        "var/log/apt",
        "dev",
        "run",
        "tmp",
        "var/tmp",
    ] {
        empty_dir(&rootfs.join(dir), |_| true)?;
    }
    empty_dir(&rootfs.join("var/cache/apt/archives"), |name| {
        name.ends_with(".deb")
    })?;
    empty_dir(&rootfs.join("var/cache/apt"), |name| name.ends_with(".bin"))?;
    empty_dir(&rootfs.join("var/log"), |name| name.ends_with(".log"))?;
    for file in [
        "etc/hostname",
        "etc/resolv.conf",
        "var/cache/ldconfig/aux-cache",
    ] {
        remove_if_present(&rootfs.join(file))?;
    }
    make_dir(&rootfs.join("var/lib/apt/lists/partial"), 0o700)?;
    pin_shadow_days(&rootfs.join("etc/shadow"))
}

fn pin_shadow_days(shadow: &Path) -> Result<()> {
    let Ok(text) = fs::read_to_string(shadow) else {
        return Ok(());
    };
    let day = (SOURCE_DATE_EPOCH / 86_400).to_string();
    let pinned: Vec<String> = text
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            // Field 3 is the day of the last password change.
            if fields.len() > 2 && !fields[2].is_empty() {
                fields[2] = &day;
            }
            fields.join(":")
        })
        .collect();
    fs::write(shadow, pinned.join("\n") + "\n").map_err(io_error("write", shadow))
}

/// Sets every mtime newer than [`SOURCE_DATE_EPOCH`] to it, symlinks
/// included, as reproducible builds do.
pub(super) fn clamp_mtimes(rootfs: &Path) -> Result<()> {
    let epoch = format!("@{SOURCE_DATE_EPOCH}");
    run(Command::new("find").arg(rootfs).args([
        "-newermt", &epoch, "-exec", "touch", "-h", "-d", &epoch, "{}", "+",
    ]))?;
    Ok(())
}

/// Returns the first mirror for `suite` in the apt sources (deb822
/// `*.sources` first, then the one-line format), or deb.debian.org.
fn debian_mirror(suite: &str) -> String {
    let mut deb822: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    deb822.sort();
    let from_deb822 = deb822
        .iter()
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "sources")
        })
        .filter_map(|path| fs::read_to_string(path).ok())
        .find_map(|text| mirror_in_deb822(&text, suite));
    let one_line_files = std::iter::once(PathBuf::from("/etc/apt/sources.list")).chain(
        deb822
            .iter()
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "list")
            })
            .cloned(),
    );
    from_deb822
        .or_else(|| {
            one_line_files
                .filter_map(|path| fs::read_to_string(path).ok())
                .find_map(|text| mirror_in_one_line_format(&text, suite))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

fn mirror_in_deb822(text: &str, suite: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let enabled = field("Enabled").is_none_or(|value| !value.eq_ignore_ascii_case("no"));
        let is_deb = field("Types")?.split_whitespace().any(|kind| kind == "deb");
        let has_suite = field("Suites")?
            .split_whitespace()
            .any(|name| name == suite);
        let uri = field("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && is_deb && has_suite).then_some(uri)
    })
}

fn mirror_in_one_line_format(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace().peekable();
        if words.next()? != "deb" {
            return None;
        }
        // Skip options such as `[arch=amd64 signed-by=...]`.
        if words.peek()?.starts_with('[') {
            for word in words.by_ref() {
                if word.ends_with(']') {
                    break;
                }
            }
        }
        let uri = words.next()?;
        (words.next()? == suite).then(|| uri.to_owned())
    })
}

fn package_version(package: &str) -> Result<String> {
    let output = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", package]))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(path).map_err(io_error("create directory", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_error("set mode of", path))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(io_error("write", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .map_err(io_error("set mode of", path))
}

/// Removes the entries of `dir` whose names pass `select`; a missing `dir`
/// is fine.
fn empty_dir(dir: &Path, select: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !select(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_error("remove", &path))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error("remove", path)(error))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_mirror_for_suite() {
        let text = "Types: deb\nURIs: http://security.example/debian-security\n\
                    Suites: bookworm-security\n\n\
                    Types: deb deb-src\nURIs: http://mirror.example/debian\n\
                    Suites: bookworm bookworm-updates\nComponents: main\n";
        assert_eq!(
            mirror_in_deb822(text, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn deb822_skips_disabled_stanza() {
        let text = "Enabled: no\nTypes: deb\nURIs: http://off.example\nSuites: bookworm\n";
        assert_eq!(mirror_in_deb822(text, "bookworm"), None);
    }

    #[test]
    fn one_line_mirror_with_options() {
        let text =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n";
        assert_eq!(
            mirror_in_one_line_format(text, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
    }
}
