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
    .map_err(|err| anyhow!("splitting the bundle failed (was it linked with --emit-relocs?): {err:?}"))?;

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
            // A section is its id, its size (LEB128) and its body; `range` is the body.
            stripped.push(id);
            let range = usize::try_from(range.start)?..usize::try_from(range.end)?;
            let mut size = range.len() as u64;
            loop {
                let byte = (size & 0x7f) as u8;
                size >>= 7;
                if size == 0 {
                    stripped.push(byte);
                    break;
                }
                stripped.push(byte | 0x80);
            }
            stripped.extend_from_slice(&wasm[range]);
        }
    }
    std::fs::write(path, stripped)?;
    Ok(())
}
