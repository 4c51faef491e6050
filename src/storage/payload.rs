//! How a row's request body and headers are stored: compressed with zstd against a fixed
//! dictionary of TaskRouter's parameter names, event types and header names (encoding
//! `zstd-d1`), and decoded on every read. Rows written before compression existed carry no
//! encoding and are read as they are.
//!
//! The hash chain covers the decoded bytes (see `event_log`), so the encoding is a storage
//! detail that `verify` checks through. The dictionary is part of the file format: changing
//! `payload_dictionary.txt` would make every `zstd-d1` row unreadable, so a new dictionary
//! needs a new encoding name (a test pins this one's digest).

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

/// The encoding of rows written now.
pub const ENCODING: &str = "zstd-d1";
/// zstd level: 3 is zstd's default; higher levels buy a few per cent for several times the CPU
/// on the writer thread.
const LEVEL: i32 = 3;
/// The largest payload a stored row may decode to (bodies are capped far below this).
const MAX_DECODED: usize = 64 * 1024 * 1024;

static DICTIONARY: &[u8] = include_bytes!("payload_dictionary.txt");

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static PREPARED: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    PREPARED.get_or_init(|| EncoderDictionary::copy(DICTIONARY, LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static PREPARED: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    PREPARED.get_or_init(|| DecoderDictionary::copy(DICTIONARY))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Why a stored payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown payload encoding {0:?}")]
    UnknownEncoding(String),
    #[error("the stored payload is corrupt: {0}")]
    Corrupt(String),
}

/// `bytes` as stored under [`ENCODING`].
pub fn encode(bytes: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(compressor) => compressor,
            None => slot.insert(
                Compressor::with_prepared_dictionary(encoder_dictionary())
                    .expect("a zstd context can be made"),
            ),
        };
        compressor.compress(bytes).expect("compressing into a growable buffer cannot fail")
    })
}

/// The original bytes of a payload stored under `encoding` (`None`: stored as is).
///
/// # Errors
/// An unknown encoding, or bytes that do not decode.
pub fn decode<'a>(encoding: Option<&str>, stored: &'a [u8]) -> Result<Cow<'a, [u8]>, DecodeError> {
    match encoding {
        None => Ok(Cow::Borrowed(stored)),
        Some(ENCODING) => {
            let size = zstd::zstd_safe::get_frame_content_size(stored)
                .map_err(|_| DecodeError::Corrupt("not a zstd frame".into()))?
                .ok_or_else(|| DecodeError::Corrupt("the frame does not say its size".into()))?;
            let size = usize::try_from(size).ok().filter(|s| *s <= MAX_DECODED).ok_or_else(|| {
                DecodeError::Corrupt(format!("the frame claims {size} bytes, more than any stored payload"))
            })?;
            DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                let decompressor = match slot.as_mut() {
                    Some(decompressor) => decompressor,
                    None => slot.insert(
                        Decompressor::with_prepared_dictionary(decoder_dictionary())
                            .map_err(|e| DecodeError::Corrupt(e.to_string()))?,
                    ),
                };
                let decoded =
                    decompressor.decompress(stored, size).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
                Ok(Cow::Owned(decoded))
            })
        }
        Some(other) => Err(DecodeError::UnknownEncoding(other.to_string())),
    }
}

/// [`decode`] for text (the headers' JSON); invalid UTF-8 is replaced, never dropped.
///
/// # Errors
/// As [`decode`].
pub fn decode_text(encoding: Option<&str>, stored: &[u8]) -> Result<String, DecodeError> {
    Ok(String::from_utf8_lossy(&decode(encoding, stored)?).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn round_trips_bodies_headers_and_edge_cases() {
        let body = b"Sid=EV0123&EventType=task.created&TaskAttributes=%7B%22type%22%3A%22support%22%7D";
        let headers = br#"[["host","tracer.example.com"],["x-twilio-signature","abc="]]"#;
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for original in [&body[..], &headers[..], b"", &[0xff, 0xfe, 0x00][..], &big[..]] {
            let stored = encode(original);
            assert_eq!(decode(Some(ENCODING), &stored).unwrap().as_ref(), original);
        }
        let stored = encode(body);
        assert!(stored.len() < body.len() * 3 / 4, "{} of {}", stored.len(), body.len());
    }

    #[test]
    fn unencoded_rows_read_as_they_are_and_garbage_is_an_error() {
        assert_eq!(decode(None, b"as is").unwrap().as_ref(), b"as is");
        assert!(matches!(decode(Some("lz9"), b"x"), Err(DecodeError::UnknownEncoding(_))));
        assert!(matches!(decode(Some(ENCODING), b"not zstd at all"), Err(DecodeError::Corrupt(_))));
        let mut stored = encode(b"EventType=task.created&TaskSid=WT1");
        let last = stored.len() - 1;
        stored[last] ^= 0x55;
        assert!(
            decode(Some(ENCODING), &stored).is_err()
                || decode(Some(ENCODING), &stored).unwrap().as_ref() != b"EventType=task.created&TaskSid=WT1"
        );
    }

    /// The dictionary is part of the file format (see the module docs).
    #[test]
    fn the_dictionary_never_changes() {
        let digest = hex::encode(Sha256::digest(DICTIONARY));
        assert_eq!(
            digest, PINNED_DICTIONARY_SHA256,
            "payload_dictionary.txt changed: give it a new encoding name"
        );
    }

    const PINNED_DICTIONARY_SHA256: &str = "deba9886deceb47e54c8806690cbbd8b90e4b71b94ab534c1d23ece641c10bb8";
}
