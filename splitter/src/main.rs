//! Splits the linked browser bundle at the app's lazy routes (`#[lazy_route]`), the step
//! `cargo leptos --split` would do, for `scripts/build.sh`.
//!
//! Usage: `splitter INPUT.wasm OUT_DIR`. Writes into `OUT_DIR`:
//! - `main.wasm`: what every page needs; wasm-bindgen turns it into `perfpilot.js` +
//!   `perfpilot_bg.wasm`;
//! - one `.wasm` per page and at most `MAX_SHARED_CHUNKS_PER_PAGE` `.wasm` per page for the
//!   code that several pages share, without custom sections (names and relocations are for
//!   tools, not browsers);
//! - the loader `__wasm_split.______________________.js`, under the name the wasm imports
//!   it by;
//! - `page_chunks.json`: for each lazy route (`overview_route` for `OverviewRoute`), the
//!   files it needs. The server lists them as preloads in the page it renders.
//!   (Leptos has its own preloading from `__wasm_split_manifest.json`, but it looks the
//!   manifest up outside the render's reactive owner and so finds it only sometimes; that
//!   name is not written, which turns it off.)
//!
//! The input must be linked with `--emit-relocs` (`.cargo/config.toml`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// The name `cargo leptos --split` gives the loader when file hashing is off; the whole
/// bundle directory carries the content hash instead (`scripts/build.sh`).
const LOADER: &str = "__wasm_split.______________________.js";
const PAGE_CHUNKS: &str = "page_chunks.json";
/// wasm-bindgen's `--out-name`: the loader imports `initSync` from this module.
const MAIN_MODULE: &str = "./perfpilot.js";
/// The shared chunks a page may need. Unmerged, wasm-split makes one chunk per set of pages
/// that reaches some code: 216 chunks, 25 to 152 per page, each repeating the same ~0.9 kB of
/// types and sent as a request of its own (issue 27: a first visit in at most 25 requests).
/// Merged down to 10 (the pairs adding the fewest unneeded bytes first), a first visit is 7
/// to 16 requests and 0-12 % fewer brotli bytes; with fewer, some pages get smaller and
/// others larger (the page with the most shared code gains, the others pay for its chunks).
const MAX_SHARED_CHUNKS_PER_PAGE: NonZeroUsize = NonZeroUsize::new(10).unwrap();

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, out_dir] = args.as_slice() else {
        bail!("usage: splitter INPUT.wasm OUT_DIR");
    };
    let out_dir = PathBuf::from(out_dir);
    let input_wasm =
        std::fs::read(input).with_context(|| format!("cannot read the bundle {input}"))?;
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;

    let main_out = out_dir.join("main.wasm");
    let link_name = format!("./{LOADER}");
    let split = wasm_split_cli_support::transform({
        let mut options = wasm_split_cli_support::Options::new(&input_wasm);
        options.output_dir = &out_dir;
        options.main_out_path = &main_out;
        options.main_module = MAIN_MODULE;
        options.link_name = &link_name;
        options.max_chunks_per_split = Some(MAX_SHARED_CHUNKS_PER_PAGE);
        options
    })
    .map_err(|err| {
        anyhow!("splitting the bundle failed (was it linked with --emit-relocs?): {err:?}")
    })?;

    for chunk in &split.split_modules {
        strip_custom_sections(chunk)?;
    }
    let pages: std::collections::BTreeMap<String, Vec<String>> = split
        .prefetch_map
        .iter()
        .map(|(split_point, modules)| {
            let files = modules.iter().map(|m| format!("{m}.wasm")).collect();
            (page_key(split_point), files)
        })
        .collect();
    std::fs::write(
        out_dir.join(PAGE_CHUNKS),
        serde_json::to_string_pretty(&pages)?,
    )?;
    println!(
        "split into main.wasm and {} chunks for {} pages",
        split.split_modules.len(),
        split.prefetch_map.len()
    );
    Ok(())
}

/// `#[lazy_route]` on `impl LazyRoute for OverviewRoute` makes the split point
/// `__overview_route_view_<hash of its place in the source>`; the page's key is
/// `overview_route`. Other split points (`#[lazy]` functions) keep their name.
fn page_key(split_point: &str) -> String {
    split_point
        .strip_prefix("__")
        .and_then(|rest| rest.rsplit_once("_view_"))
        .filter(|(_, hash)| !hash.is_empty() && hash.bytes().all(|b| b.is_ascii_digit()))
        .map_or_else(|| split_point.to_owned(), |(key, _)| key.to_owned())
}

/// Rewrites a module without its custom sections (`name`, `reloc.*`, `linking`,
/// `producers`); browsers ignore them, so they would only be downloaded.
fn strip_custom_sections(path: &Path) -> Result<()> {
    let wasm = std::fs::read(path)?;
    let mut stripped = wasm[..8].to_vec();
    for payload in wasmparser::Parser::new(0).parse_all(&wasm) {
        let payload = payload.with_context(|| format!("{} is not valid wasm", path.display()))?;
        if matches!(payload, wasmparser::Payload::CustomSection(_)) {
            continue;
        }
        if let Some((id, range)) = payload.as_section() {
            let range = usize::try_from(range.start)?..usize::try_from(range.end)?;
            push_section(&mut stripped, id, &wasm[range]);
        }
    }
    std::fs::write(path, stripped)?;
    Ok(())
}

/// Appends a section: its id, the body's size as unsigned LEB128, the body.
fn push_section(module: &mut Vec<u8>, id: u8, body: &[u8]) {
    module.push(id);
    let mut size = body.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        if size == 0 {
            module.push(byte);
            break;
        }
        module.push(byte | 0x80);
    }
    module.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one type section (`() -> ()`) around two custom sections, one of them
    /// larger than 127 bytes so its size takes two LEB128 bytes.
    fn module_with_custom_sections() -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let custom = |wasm: &mut Vec<u8>, name: &str, payload: &[u8]| {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(payload);
            push_section(wasm, 0, &body);
        };
        custom(&mut wasm, "name", &[7; 200]);
        push_section(&mut wasm, 1, &[1, 0x60, 0, 0]);
        custom(&mut wasm, "reloc.CODE", b"x");
        assert_eq!(wasm[9..11], [0xcd, 0x01], "205 bytes: a two-byte size");
        wasm
    }

    #[test]
    fn custom_sections_are_removed_and_the_rest_kept_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("splitter-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chunk.wasm");
        std::fs::write(&path, module_with_custom_sections()).unwrap();

        strip_custom_sections(&path).unwrap();

        let stripped = std::fs::read(&path).unwrap();
        assert_eq!(stripped, b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0");
        wasmparser::Validator::new()
            .validate_all(&stripped)
            .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_lazy_route_split_point_is_keyed_by_its_route() {
        assert_eq!(
            page_key("__overview_route_view_13997925026929591259"),
            "overview_route"
        );
        assert_eq!(page_key("__proof_route_view_1"), "proof_route");
        assert_eq!(
            page_key("deserialize_comments_42"),
            "deserialize_comments_42"
        );
        assert_eq!(page_key("__odd_view_x"), "__odd_view_x");
    }

    #[test]
    fn a_file_that_is_not_wasm_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("splitter-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chunk.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0\x01\x7f").unwrap();
        let err = strip_custom_sections(&path).unwrap_err();
        assert!(format!("{err:#}").contains("chunk.wasm"), "{err:#}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
