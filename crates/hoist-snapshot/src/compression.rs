//! Layer compression: the encoders of the layer writer and the detection of
//! the format of a layer stream.

use gzp::ZWriter as _;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use std::io::{self, Chain, Cursor, Read, Write};
use std::num::NonZeroUsize;
use std::thread::Scope;

/// The compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip on one thread, through `flate2` with the `zlib-rs` backend.
    Gzip {
        /// Level from 0 (store) to 9 (best).
        level: u32,
    },
    /// gzip compressed in blocks on several threads by `gzp`.
    ///
    /// The output is one gzip member. Each block is compressed with the
    /// previous block as its dictionary, so the bytes depend on the level and
    /// not on the thread count.
    ParallelGzip {
        /// Level from 0 (store) to 9 (best).
        level: u32,
        /// Compression threads.
        threads: NonZeroUsize,
    },
    /// zstd in its multithreaded mode.
    ///
    /// The mode is used even with one worker because zstd's multithreaded
    /// format differs from its single-threaded one but does not depend on
    /// the worker count, so the bytes do not depend on the machine.
    Zstd {
        /// Level from 1 to 22.
        level: i32,
        /// Worker threads.
        workers: NonZeroUsize,
    },
}

impl Compression {
    /// Returns the OCI media type of a layer compressed this way.
    pub fn media_type(&self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip { .. } | Compression::ParallelGzip { .. } => {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            }
            Compression::Zstd { .. } => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Size of the blocks that `gzp` compresses independently. Fixed, because the
/// output bytes depend on it.
const PARALLEL_GZIP_BLOCK: usize = 128 * 1024;

/// A compressor writing into `W`.
pub(crate) enum Encoder<'scope, W: Write + Send + 'scope> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    /// gzp's stream, and whether a write to it failed. After a failed write gzp
    /// has closed its pipeline, and its `finish` would panic on the closed
    /// channels, so the error is returned instead.
    ParallelGzip(ParCompress<'scope, Gzip, W>, bool),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<'scope, W: Write + Send + 'scope> Encoder<'scope, W> {
    /// Starts a compressor. Parallel gzip runs its threads in `scope`.
    pub(crate) fn new<'env>(
        compression: Compression,
        inner: W,
        scope: &'scope Scope<'scope, 'env>,
    ) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::None(inner),
            Compression::Gzip { level } => {
                let level = flate2::Compression::new(level.min(9));
                Encoder::Gzip(flate2::write::GzEncoder::new(inner, level))
            }
            Compression::ParallelGzip { level, threads } => {
                let builder = ParCompressBuilder::<Gzip>::new()
                    .compression_level(gzp::Compression::new(level.min(9)))
                    .buffer_size(PARALLEL_GZIP_BLOCK)
                    .and_then(|b| b.num_threads(threads.get()))
                    .map_err(io::Error::other)?;
                Encoder::ParallelGzip(builder.from_borrowed_writer(inner, scope), false)
            }
            Compression::Zstd { level, workers } => {
                let mut encoder = zstd::stream::write::Encoder::new(inner, level)?;
                let workers = u32::try_from(workers.get()).unwrap_or(u32::MAX);
                encoder.multithread(workers)?;
                Encoder::Zstd(encoder)
            }
        })
    }

    /// Flushes the end of the stream and returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(mut inner) => {
                inner.flush()?;
                Ok(inner)
            }
            Encoder::Gzip(encoder) => encoder.finish(),
            Encoder::ParallelGzip(_, true) => Err(parallel_gzip_failed()),
            Encoder::ParallelGzip(mut encoder, false) => encoder.finish().map_err(io::Error::other),
            Encoder::Zstd(encoder) => encoder.finish(),
        }
    }
}

impl<'scope, W: Write + Send + 'scope> Write for Encoder<'scope, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::ParallelGzip(_, true) => Err(parallel_gzip_failed()),
            Encoder::ParallelGzip(w, failed) => w.write(buf).inspect_err(|_| *failed = true),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::ParallelGzip(_, true) => Err(parallel_gzip_failed()),
            Encoder::ParallelGzip(w, failed) => w.flush().inspect_err(|_| *failed = true),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

fn parallel_gzip_failed() -> io::Error {
    io::Error::other("the parallel gzip stream failed on an earlier write")
}

/// The format of a layer stream, detected from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFormat {
    /// Plain tar.
    Tar,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// A zstd frame.
    Zstd,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

type Prefixed<R> = Chain<Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `reader` and returns the detected format with a
/// reader that still yields the whole stream.
pub fn detect_format<R: Read>(mut reader: R) -> io::Result<(StreamFormat, Prefixed<R>)> {
    let mut prefix = Vec::with_capacity(ZSTD_MAGIC.len());
    (&mut reader)
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut prefix)?;
    let format = if prefix.starts_with(&GZIP_MAGIC) {
        StreamFormat::Gzip
    } else if prefix.starts_with(&ZSTD_MAGIC) {
        StreamFormat::Zstd
    } else {
        StreamFormat::Tar
    };
    Ok((format, Cursor::new(prefix).chain(reader)))
}

/// Returns a reader of the uncompressed tar stream inside `reader`.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let (format, reader) = detect_format(reader)?;
    Ok(match format {
        StreamFormat::Tar => Box::new(reader),
        StreamFormat::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        StreamFormat::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(compression: Compression, data: &[u8]) -> Vec<u8> {
        std::thread::scope(|scope| {
            let mut encoder = Encoder::new(compression, Vec::new(), scope).unwrap();
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        })
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8)
            .collect()
    }

    fn threads(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    /// A sink that takes `room` bytes, then fails as a full disk does.
    struct FullDisk {
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let taken = buf.len().min(self.room);
            self.room -= taken;
            Ok(taken)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn full_disk_is_an_error_for_every_compression() {
        let data = sample();
        let compressions = [
            Compression::None,
            Compression::Gzip { level: 1 },
            Compression::ParallelGzip {
                level: 1,
                threads: threads(2),
            },
            Compression::Zstd {
                level: 1,
                workers: threads(2),
            },
        ];
        for compression in compressions {
            let result = std::thread::scope(|scope| {
                let mut encoder = Encoder::new(compression, FullDisk { room: 4096 }, scope)?;
                // Keep writing after a failure, as a caller that ignores it would.
                let written = data.chunks(64 * 1024).map(|chunk| encoder.write_all(chunk));
                let first_error = written.filter_map(Result::err).next();
                let finished = encoder.finish();
                match first_error {
                    Some(error) => Err(error),
                    None => finished.map(|_| ()),
                }
            });
            assert!(result.is_err(), "{compression:?} reported no error");
        }
    }

    #[test]
    fn parallel_gzip_ignores_thread_count() {
        let data = sample();
        let one = compress(
            Compression::ParallelGzip {
                level: 6,
                threads: threads(1),
            },
            &data,
        );
        let four = compress(
            Compression::ParallelGzip {
                level: 6,
                threads: threads(4),
            },
            &data,
        );
        assert_eq!(one, four);
    }

    #[test]
    fn zstd_ignores_worker_count() {
        let data = sample();
        let one = compress(
            Compression::Zstd {
                level: 3,
                workers: threads(1),
            },
            &data,
        );
        let three = compress(
            Compression::Zstd {
                level: 3,
                workers: threads(3),
            },
            &data,
        );
        assert_eq!(one, three);
    }

    #[test]
    fn every_compression_round_trips() {
        let data = sample();
        for compression in [
            Compression::None,
            Compression::Gzip { level: 1 },
            Compression::ParallelGzip {
                level: 6,
                threads: threads(2),
            },
            Compression::Zstd {
                level: 3,
                workers: threads(2),
            },
        ] {
            let blob = compress(compression, &data);
            let mut out = Vec::new();
            decompress(&blob[..])
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, data, "{compression:?}");
        }
    }

    #[test]
    fn detection_names_each_format() {
        let data = b"not compressed at all".to_vec();
        let gzip = compress(Compression::Gzip { level: 6 }, &data);
        let zstd = compress(
            Compression::Zstd {
                level: 3,
                workers: threads(1),
            },
            &data,
        );
        assert_eq!(detect_format(&gzip[..]).unwrap().0, StreamFormat::Gzip);
        assert_eq!(detect_format(&zstd[..]).unwrap().0, StreamFormat::Zstd);
        assert_eq!(detect_format(&data[..]).unwrap().0, StreamFormat::Tar);
        assert_eq!(detect_format(&b""[..]).unwrap().0, StreamFormat::Tar);
    }
}
