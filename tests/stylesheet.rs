//! Checks on `style/main.css` that need no browser: dark mode is one palette, written
//! once, so the toggle's Dark and the system's dark preference cannot drift apart; and
//! every `url()` is relative to the stylesheet, so it works under `--public-url`'s path.

use std::collections::BTreeMap;

/// The stylesheet without its comments.
fn stylesheet() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../style/main.css");
    let css = std::fs::read_to_string(path).expect("read style/main.css");
    let mut out = String::with_capacity(css.len());
    let mut rest = css.as_str();
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("*/").expect("a closed comment");
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}

/// A style rule: its selector, prefixed by the at-rules around it (`@media (…) > …`),
/// and its declarations in order.
struct Rule {
    selector: String,
    declarations: Vec<(String, String)>,
}

fn rules(css: &str, context: &str, out: &mut Vec<Rule>) {
    let mut rest = css;
    while let Some(open) = rest.find('{') {
        let prelude = rest[..open].trim();
        let mut depth = 0;
        let mut close = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close.unwrap_or_else(|| panic!("unbalanced braces after `{prelude}`"));
        let body = &rest[open + 1..close];
        let selector = format!("{context}{prelude}");
        if prelude.starts_with('@') && body.contains('{') {
            rules(body, &format!("{selector} > "), out);
        } else {
            let declarations = body
                .split(';')
                .filter_map(|d| d.split_once(':'))
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .collect();
            out.push(Rule {
                selector,
                declarations,
            });
        }
        rest = &rest[close + 1..];
    }
}

fn all_rules() -> Vec<Rule> {
    let mut out = Vec::new();
    rules(&stylesheet(), "", &mut out);
    assert!(out.len() > 50, "parsed only {} rules", out.len());
    out
}

/// The one rule with exactly this selector, as a map (a property set twice fails).
fn block(rules: &[Rule], selector: &str) -> BTreeMap<String, String> {
    let found: Vec<&Rule> = rules.iter().filter(|r| r.selector == selector).collect();
    assert_eq!(found.len(), 1, "exactly one `{selector}` rule");
    let mut map = BTreeMap::new();
    for (name, value) in &found[0].declarations {
        assert!(
            map.insert(name.clone(), value.clone()).is_none(),
            "`{selector}` sets {name} twice"
        );
    }
    map
}

#[test]
fn the_dark_palette_is_one_block_that_overrides_every_colour() {
    let rules = all_rules();
    // The system preference reaches the stylesheet only as data-theme="dark" (set by the
    // theme boot script and toggle), so no rule depends on the media query directly.
    let media: Vec<&str> = rules
        .iter()
        .map(|r| r.selector.as_str())
        .filter(|s| s.contains("prefers-color-scheme"))
        .collect();
    assert!(
        media.is_empty(),
        "rules under prefers-color-scheme: {media:?}"
    );
    // Dark values live in one block: rules for single elements use its variables.
    let dark_rules: Vec<&str> = rules
        .iter()
        .map(|r| r.selector.as_str())
        .filter(|s| s.contains("data-theme"))
        .collect();
    assert_eq!(
        dark_rules,
        [":root[data-theme=\"dark\"]"],
        "the only rule about the theme is the dark palette"
    );

    let light = block(&rules, ":root");
    let dark = block(&rules, ":root[data-theme=\"dark\"]");
    for name in dark.keys() {
        assert!(
            light.contains_key(name),
            "{name} is set in dark mode only, so light mode has no value for it"
        );
    }
    let colours: Vec<&String> = light
        .iter()
        .filter(|(name, value)| name.starts_with("--") && value.starts_with('#'))
        .map(|(name, _)| name)
        .collect();
    assert!(colours.len() >= 15, "light palette: {colours:?}");
    for name in colours {
        assert!(
            dark.contains_key(name),
            "the dark palette keeps the light value of {name}"
        );
    }
    assert_eq!(dark.get("color-scheme").map(String::as_str), Some("dark"));
}

#[test]
fn urls_are_relative_to_the_stylesheet_and_name_site_files() {
    // The stylesheet is served as <base>/pkg/perfpilot-<hash>.css (scripts/build.sh) and
    // the files of public/ at <base>/: a root-absolute url() leaves a --public-url path
    // (a 404 behind a proxy), so files are named from pkg/, as ../<file>.
    let css = stylesheet();
    let mut urls = 0;
    for (at, _) in css.match_indices("url(") {
        let rest = &css[at + 4..];
        let end = rest.find(')').expect("a closed url(");
        let url = rest[..end].trim().trim_matches(['"', '\'']);
        if url.starts_with("data:") {
            continue;
        }
        urls += 1;
        let file = url
            .strip_prefix("../")
            .unwrap_or_else(|| panic!("url({url}) is not ../<a file of public/>"));
        let public = concat!(env!("CARGO_MANIFEST_DIR"), "/../public/");
        assert!(
            std::path::Path::new(public).join(file).is_file(),
            "url({url}) names public/{file}, which does not exist"
        );
    }
    assert!(urls > 0, "the brand mark's image is a url()");
}
