//! A ustar encoder that moves whatever does not fit ustar into PAX records.
//!
//! The encoder writes every field itself so that the bytes depend only on
//! the entries: user and group names stay empty, PAX headers carry a fixed
//! name, and records come in a fixed order.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const MAX_OCTAL_7: u64 = 0o7_777_777;
const MAX_OCTAL_11: u64 = 0o77_777_777_777;

/// The type of a tar entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Regular,
    Hardlink,
    Symlink,
    CharDevice,
    BlockDevice,
    Directory,
    Fifo,
}

impl EntryKind {
    fn typeflag(self) -> u8 {
        match self {
            EntryKind::Regular => b'0',
            EntryKind::Hardlink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDevice => b'3',
            EntryKind::BlockDevice => b'4',
            EntryKind::Directory => b'5',
            EntryKind::Fifo => b'6',
        }
    }
}

/// A timestamp in seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z; negative before it.
    pub secs: i64,
    /// Nanoseconds within the second, below 1,000,000,000.
    pub nanos: u32,
}

/// The metadata of one entry. `path` has no leading `/` and directories end
/// with `/`.
#[derive(Debug)]
pub(crate) struct EntryHeader<'a> {
    pub(crate) path: &'a [u8],
    pub(crate) kind: EntryKind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    pub(crate) mtime: Timestamp,
    pub(crate) link: &'a [u8],
    pub(crate) device: (u32, u32),
    pub(crate) xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

/// A streaming tar writer.
pub(crate) struct TarEncoder<W> {
    inner: W,
}

impl<W: Write> TarEncoder<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Writes one entry and, for a regular file, exactly `header.size` bytes
    /// from `data`. Returns `Ok(false)` when `data` ends early, in which case
    /// the stream is padded with zeros so that it stays a valid tar.
    pub(crate) fn append(&mut self, header: &EntryHeader<'_>, data: impl Read) -> io::Result<bool> {
        let pax = pax_records(header);
        if !pax.is_empty() {
            self.write_pax(&pax, header.mtime)?;
        }
        self.inner.write_all(&ustar_block(header))?;
        if header.kind != EntryKind::Regular {
            return Ok(true);
        }
        let copied = io::copy(&mut data.take(header.size), &mut self.inner)?;
        let complete = copied == header.size;
        write_zeros(&mut self.inner, header.size - copied)?;
        write_zeros(&mut self.inner, padding(header.size))?;
        Ok(complete)
    }

    /// Writes the two zero blocks that end an archive and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        write_zeros(&mut self.inner, 2 * BLOCK as u64)?;
        Ok(self.inner)
    }

    /// Returns the writer without ending the archive.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    fn write_pax(&mut self, records: &[u8], mtime: Timestamp) -> io::Result<()> {
        let header = EntryHeader {
            path: b"PaxHeader",
            kind: EntryKind::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: Timestamp {
                secs: mtime.secs,
                nanos: 0,
            },
            link: b"",
            device: (0, 0),
            xattrs: &[],
        };
        let mut block = ustar_block(&header);
        block[156] = b'x';
        set_checksum(&mut block);
        self.inner.write_all(&block)?;
        self.inner.write_all(records)?;
        write_zeros(&mut self.inner, padding(records.len() as u64))
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn write_zeros(out: &mut impl Write, mut count: u64) -> io::Result<()> {
    const ZEROS: [u8; BLOCK] = [0; BLOCK];
    while count > 0 {
        let n = count.min(BLOCK as u64) as usize;
        out.write_all(&ZEROS[..n])?;
        count -= n as u64;
    }
    Ok(())
}

/// Returns the PAX records that `header` needs, in a fixed key order.
fn pax_records(header: &EntryHeader<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if header.link.len() > NAME_LEN {
        push_record(&mut out, b"linkpath", header.link);
    }
    if header.mtime.nanos != 0 || !(0..=MAX_OCTAL_11 as i64).contains(&header.mtime.secs) {
        push_record(&mut out, b"mtime", format_mtime(header.mtime).as_bytes());
    }
    if header.path.len() > NAME_LEN {
        push_record(&mut out, b"path", header.path);
    }
    if header.size > MAX_OCTAL_11 {
        push_record(&mut out, b"size", header.size.to_string().as_bytes());
    }
    if header.gid > MAX_OCTAL_7 {
        push_record(&mut out, b"gid", header.gid.to_string().as_bytes());
    }
    if header.uid > MAX_OCTAL_7 {
        push_record(&mut out, b"uid", header.uid.to_string().as_bytes());
    }
    for (name, value) in header.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        push_record(&mut out, &key, value);
    }
    out
}

fn format_mtime(mtime: Timestamp) -> String {
    if mtime.nanos == 0 {
        return mtime.secs.to_string();
    }
    // A negative time with a fraction is written as -(|secs| - 1).(1e9 - nanos)
    // in PAX, because the fraction extends the integer part towards zero.
    if mtime.secs < 0 {
        let whole = -(mtime.secs + 1);
        let frac = 1_000_000_000 - mtime.nanos;
        let text = format!("-{whole}.{frac:09}");
        return text.trim_end_matches('0').to_owned();
    }
    let text = format!("{}.{:09}", mtime.secs, mtime.nanos);
    text.trim_end_matches('0').to_owned()
}

/// Appends `"<length> <key>=<value>\n"`, where the length counts the whole
/// record including its own digits.
fn push_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn ustar_block(header: &EntryHeader<'_>) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    copy_truncated(&mut block[0..100], header.path);
    write_octal(&mut block[100..108], u64::from(header.mode & 0o7777));
    write_number(&mut block[108..116], header.uid);
    write_number(&mut block[116..124], header.gid);
    let size = if header.kind == EntryKind::Regular {
        header.size
    } else {
        0
    };
    write_number(&mut block[124..136], size);
    let secs = u64::try_from(header.mtime.secs)
        .unwrap_or(0)
        .min(MAX_OCTAL_11);
    write_octal(&mut block[136..148], secs);
    block[156] = header.kind.typeflag();
    copy_truncated(&mut block[157..257], header.link);
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    if matches!(header.kind, EntryKind::CharDevice | EntryKind::BlockDevice) {
        write_octal(&mut block[329..337], u64::from(header.device.0));
        write_octal(&mut block[337..345], u64::from(header.device.1));
    }
    set_checksum(&mut block);
    block
}

fn copy_truncated(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Writes `value` as zero-padded octal followed by a NUL. The caller has
/// checked that it fits.
fn write_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let start = text.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&text.as_bytes()[start..]);
    field[digits] = 0;
}

/// Writes `value` in octal, or in the base-256 form (high bit set) that GNU
/// tar and most readers accept when octal does not fit. A PAX record carries
/// the value as well.
fn write_number(field: &mut [u8], value: u64) {
    let max_octal = (1u64 << (3 * (field.len() as u32 - 1))) - 1;
    if value <= max_octal {
        write_octal(field, value);
        return;
    }
    field.fill(0);
    let bytes = value.to_be_bytes();
    let len = field.len();
    field[len - bytes.len()..].copy_from_slice(&bytes);
    field[0] |= 0x80;
}

fn set_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    write_octal(&mut block[148..155], u64::from(sum));
    block[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(path: &'a [u8], xattrs: &'a [(Vec<u8>, Vec<u8>)]) -> EntryHeader<'a> {
        EntryHeader {
            path,
            kind: EntryKind::Regular,
            mode: 0o4755,
            uid: 1000,
            gid: 1000,
            size: 5,
            mtime: Timestamp {
                secs: 1_700_000_000,
                nanos: 0,
            },
            link: b"",
            device: (0, 0),
            xattrs,
        }
    }

    fn encode(headers: &[EntryHeader<'_>]) -> Vec<u8> {
        let mut encoder = TarEncoder::new(Vec::new());
        for h in headers {
            assert!(encoder.append(h, &b"hello"[..]).unwrap());
        }
        encoder.finish().unwrap()
    }

    fn read_back(bytes: &[u8]) -> Vec<(Vec<u8>, u64, u32, Option<String>)> {
        let mut archive = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path_bytes().into_owned();
            let size = entry.size();
            let mode = entry.header().mode().unwrap();
            let mtime = entry.pax_extensions().unwrap().and_then(|pax| {
                pax.filter_map(Result::ok)
                    .find(|e| e.key() == Ok("mtime"))
                    .map(|e| e.value().unwrap().to_owned())
            });
            out.push((path, size, mode, mtime));
        }
        out
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        push_record(&mut out, b"path", &[b'a'; 92]);
        assert_eq!(out.len(), 102);
        assert!(out.starts_with(b"102 path="));
        let mut short = Vec::new();
        push_record(&mut short, b"mtime", b"1.5");
        assert_eq!(short, b"13 mtime=1.5\n");
    }

    #[test]
    fn long_path_uses_pax_record() {
        let long = [b'd'; 180]
            .iter()
            .chain(b"/file")
            .copied()
            .collect::<Vec<_>>();
        let bytes = encode(&[header(&long, &[])]);
        let entries = read_back(&bytes);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, long);
        assert_eq!(entries[0].1, 5);
    }

    #[test]
    fn mode_keeps_setuid_bit() {
        let bytes = encode(&[header(b"bin/tool", &[])]);
        assert_eq!(read_back(&bytes)[0].2, 0o4755);
    }

    #[test]
    fn subsecond_mtime_uses_pax_record() {
        let mut h = header(b"f", &[]);
        h.mtime = Timestamp {
            secs: 1_700_000_000,
            nanos: 120_000_000,
        };
        let bytes = encode(&[h]);
        assert_eq!(read_back(&bytes)[0].3.as_deref(), Some("1700000000.12"));
    }

    #[test]
    fn negative_mtime_with_fraction_formats() {
        let text = format_mtime(Timestamp {
            secs: -2,
            nanos: 250_000_000,
        });
        assert_eq!(text, "-1.75");
    }

    #[test]
    fn user_and_group_names_stay_empty() {
        let bytes = encode(&[header(b"f", &[])]);
        assert!(bytes[265..329].iter().all(|&b| b == 0));
    }

    #[test]
    fn xattrs_become_schily_records() {
        let xattrs = vec![(b"user.note".to_vec(), b"a=b".to_vec())];
        let bytes = encode(&[header(b"f", &xattrs)]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let pax = entry.pax_extensions().unwrap().unwrap();
        let record = pax.filter_map(Result::ok).next().unwrap();
        assert_eq!(record.key_bytes(), b"SCHILY.xattr.user.note");
        assert_eq!(record.value_bytes(), b"a=b");
    }

    #[test]
    fn short_data_is_padded_and_reported() {
        let mut encoder = TarEncoder::new(Vec::new());
        let complete = encoder.append(&header(b"f", &[]), &b"hi"[..]).unwrap();
        let bytes = encoder.finish().unwrap();
        assert!(!complete);
        assert_eq!(bytes.len(), 4 * BLOCK);
    }

    #[test]
    fn archive_ends_with_two_zero_blocks() {
        let bytes = encode(&[header(b"f", &[])]);
        assert_eq!(bytes.len(), 4 * BLOCK);
        assert!(bytes[2 * BLOCK..].iter().all(|&b| b == 0));
    }
}
