//! The built browser assets: where they are and what they are called.
//!
//! `scripts/build.sh` puts the browser bundle (wasm-bindgen glue, main module, the
//! wasm-split loader and per-page chunks) in `pkg/<hash>/`, names the stylesheet after a
//! hash of its content and writes `assets.json` beside `pkg/`. Because changed content gets
//! a new path, `/pkg/*` can be cached by browsers and proxies forever.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const MANIFEST_FILE: &str = "assets.json";
pub const PKG_DIR: &str = "pkg";
/// The wasm-split loader the main module imports, under the name `cargo leptos --split`
/// gives it when it does not hash files (the bundle's directory carries the hash here).
pub const SPLIT_LOADER: &str = "__wasm_split.______________________.js";
/// Written by `splitter`: the files each lazy page needs, by route key.
pub const PAGE_CHUNKS: &str = "page_chunks.json";

#[derive(Debug, Clone, Deserialize)]
struct Manifest {
    /// The bundle's directory in `pkg/`, named after its content.
    bundle_dir: String,
    /// wasm-bindgen's `--out-name`: `NAME.js` and `NAME_bg.wasm` exist in the bundle.
    output_name: String,
    /// File name of the stylesheet in `pkg/`.
    stylesheet: String,
}

/// What the server knows about the browser bundle.
#[derive(Debug, Clone)]
pub struct Site {
    pub root: PathBuf,
    /// The bundle's URL path below the base, e.g. `pkg/1a2b3c4d5e6f` (Leptos'
    /// `site_pkg_dir`).
    pub bundle_path: String,
    pub output_name: String,
    pub stylesheet: String,
    /// The chunk files each lazy page needs (`overview_route` → `["chunk_8.wasm", …]`),
    /// listed as preloads in the pages the server renders.
    pub page_chunks: HashMap<String, Vec<String>>,
    /// Why the bundle cannot be served, if it cannot: shown by `/readyz` and logged once.
    pub problem: Option<String>,
}

impl Site {
    /// Reads the manifest and checks that every file it names exists. A missing bundle is
    /// not fatal: the server still answers (pages render without interactivity) and
    /// `/readyz` says what is wrong.
    pub fn discover(root: &Path) -> Site {
        match Self::read_manifest(root) {
            Ok(manifest) => {
                let pkg = root.join(PKG_DIR);
                let bundle = &manifest.bundle_dir;
                let page_chunks = Self::read_page_chunks(&pkg.join(bundle).join(PAGE_CHUNKS));
                let missing: Vec<String> = [
                    format!("{bundle}/{}.js", manifest.output_name),
                    format!("{bundle}/{}_bg.wasm", manifest.output_name),
                    format!("{bundle}/{SPLIT_LOADER}"),
                    manifest.stylesheet.clone(),
                ]
                .into_iter()
                .chain(page_chunks.iter().flat_map(|chunks| {
                    chunks
                        .values()
                        .flatten()
                        .map(|file| format!("{bundle}/{file}"))
                }))
                .filter(|file| !pkg.join(file).is_file())
                .collect();
                let problem = match (&page_chunks, missing.is_empty()) {
                    (Err(problem), _) => Some(problem.clone()),
                    (Ok(_), false) => Some(format!(
                        "site assets missing in {}: {}; run scripts/build.sh",
                        pkg.display(),
                        missing.join(", ")
                    )),
                    (Ok(_), true) => None,
                };
                Site {
                    root: root.to_owned(),
                    bundle_path: format!("{PKG_DIR}/{bundle}"),
                    output_name: manifest.output_name,
                    stylesheet: manifest.stylesheet,
                    page_chunks: page_chunks.unwrap_or_default(),
                    problem,
                }
            }
            Err(problem) => Site {
                root: root.to_owned(),
                bundle_path: PKG_DIR.into(),
                output_name: "perfpilot".into(),
                stylesheet: "perfpilot.css".into(),
                page_chunks: HashMap::new(),
                problem: Some(problem),
            },
        }
    }

    fn read_page_chunks(path: &Path) -> Result<HashMap<String, Vec<String>>, String> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            format!(
                "cannot read {}: {err}; run scripts/build.sh",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|err| format!("{} is not valid: {err}", path.display()))
    }

    fn read_manifest(root: &Path) -> Result<Manifest, String> {
        let path = root.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| {
            format!(
                "site assets not found: cannot read {}: {err}; run scripts/build.sh or pass --site-root",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|err| format!("{} is not valid: {err}", path.display()))
    }

    pub fn stylesheet_href(&self) -> String {
        format!("/{PKG_DIR}/{}", self.stylesheet)
    }
}
