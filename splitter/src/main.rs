//! Splits the linked browser bundle at the app's lazy routes (`#[lazy_route]`), the step
//! `cargo leptos --split` would do, for `scripts/build.sh`.
//!
//! Usage: `splitter INPUT.wasm OUT_DIR`. Writes into `OUT_DIR`:
//! - `main.wasm`: what every page needs; wasm-bindgen turns it into `perfpilot.js` +
//!   `perfpilot_bg.wasm`;
//! - one `.wasm` per page and per piece of code that several pages share, without custom
//!   sections (names and relocations are for tools, not browsers);
//! - the loader `__wasm_split.______________________.js` and `__wasm_split_manifest.json`
//!   (which files each page needs), under the names Leptos' `HydrationScripts` looks for:
//!   the server reads the manifest to preload a page's chunks in the document it renders.
//!
//! The input must be linked with `--emit-relocs` (`.cargo/config.toml`).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

/// What `leptos::HydrationScripts` expects when file hashing is off; the whole bundle
/// directory carries the content hash instead (`scripts/build.sh`).
const LOADER: &str = "__wasm_split.______________________.js";
const MANIFEST: &str = "__wasm_split_manifest.json";
/// wasm-bindgen's `--out-name`: the loader imports `initSync` from this module.
const MAIN_MODULE: &str = "./perfpilot.js";

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
        options
    })
    .map_err(|err| {
        anyhow!("splitting the bundle failed (was it linked with --emit-relocs?): {err:?}")
    })?;

    for chunk in &split.split_modules {
        strip_custom_sections(chunk)?;
    }
    let manifest = serde_json::to_string_pretty(&split.prefetch_map)?;
    std::fs::write(out_dir.join(MANIFEST), manifest)?;
    println!(
        "split into main.wasm and {} chunks for {} pages",
        split.split_modules.len(),
        split.prefetch_map.len()
    );
    Ok(())
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
