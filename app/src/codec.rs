//! The response encoding of every server function that returns data: the same JSON as
//! server_fn's default `Json` (`application/json`, written by `serde_json::to_vec`), only
//! decoded in the browser through `serde_json::from_str`.
//!
//! Why: resources hydrate with `serde_json::from_str` and the live websocket parses text,
//! while the default `Json` decodes responses with `serde_json::from_slice`. Every type
//! then had its deserializer compiled twice into the wasm (`StrRead` and `SliceRead`),
//! about 59 KB of raw wasm. With one reader there is one copy. The bytes on the wire are
//! unchanged; a body that is not UTF-8 is refused as a decoding error, as `from_slice`
//! would refuse it.

use leptos::server_fn::{codec::Post, Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{de::DeserializeOwned, Serialize};

/// Use as `#[server(output = crate::codec::Json)]`.
pub type Json = Post<JsonStrEncoding>;

pub struct JsonStrEncoding;

impl ContentType for JsonStrEncoding {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for JsonStrEncoding {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for JsonStrEncoding {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonStrEncoding {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        serde_json::from_str(text)
    }
}
