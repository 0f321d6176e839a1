//! The theme switch: Auto (the default) follows the operating system
//! (`prefers-color-scheme`, also when it changes while the page is open); Light and Dark
//! are a choice the user saved in `localStorage`.
//!
//! The stylesheet writes the dark palette once, as `:root[data-theme="dark"]`, so the
//! choice and the system preference both end up in that one attribute on `<html>`:
//! `dark` for Dark, and for Auto while the system prefers dark; `light` for Light; none
//! for Auto on a light system ([`data_theme`]). [`BOOT_SCRIPT`] applies the same rule
//! before first paint; this component owns the attribute after hydration.
//!
//! The server cannot know the saved choice, so it renders "Auto" and the browser corrects
//! it after hydration; before hydration the button does nothing, which is what the
//! end-to-end test relies on to prove the page hydrated.

use leptos::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Auto,
    Light,
    Dark,
}

impl Theme {
    fn next(self) -> Theme {
        match self {
            Theme::Auto => Theme::Light,
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Auto,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Theme::Auto => "Theme: auto",
            Theme::Light => "Theme: light",
            Theme::Dark => "Theme: dark",
        }
    }

    fn parse(s: &str) -> Theme {
        match s {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::Auto,
        }
    }
}

/// The `data-theme` of `<html>` for a choice, given whether the system prefers dark.
/// [`BOOT_SCRIPT`] implements the same rule in JavaScript.
pub fn data_theme(choice: Theme, system_dark: bool) -> Option<&'static str> {
    match choice {
        Theme::Light => Some("light"),
        Theme::Dark => Some("dark"),
        Theme::Auto if system_dark => Some("dark"),
        Theme::Auto => None,
    }
}

const STORAGE_KEY: &str = "perfpilot-theme";

/// Runs in `<head>` before first paint (it carries the response's CSP nonce): the saved
/// choice, else dark if the system prefers it, as [`data_theme`] decides, so a dark-mode
/// user never sees a light flash. Keep the storage key and the rule in step with this file.
pub const BOOT_SCRIPT: &str = "(function(){var t=null;\
try{t=localStorage.getItem('perfpilot-theme')}catch(e){}\
if(t!=='light'&&t!=='dark'){\
try{t=matchMedia('(prefers-color-scheme: dark)').matches?'dark':null}catch(e){t=null}}\
if(t){document.documentElement.setAttribute('data-theme',t)}})()";

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(Theme::Auto);
    // Whether the operating system prefers dark; kept current in the browser.
    let system_dark = RwSignal::new(false);

    // Runs once in the browser: adopt the saved choice and follow the system preference.
    Effect::new(move |_| {
        if let Some(saved) = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()) {
            theme.set(Theme::parse(&saved));
        }
        system::follow(system_dark);
    });

    // Keeps the document and storage in step with the choice and the system preference.
    Effect::new(move |_| {
        let current = theme.get();
        if let Some(root) = document().document_element() {
            let _ = match data_theme(current, system_dark.get()) {
                Some(value) => root.set_attribute("data-theme", value),
                None => root.remove_attribute("data-theme"),
            };
        }
        if let Some(storage) = storage() {
            let _ = match current {
                Theme::Auto => storage.remove_item(STORAGE_KEY),
                other => storage.set_item(STORAGE_KEY, other.as_str()),
            };
        }
    });

    view! {
        <button
            id="theme-toggle"
            class="btn btn-ghost"
            type="button"
            title="Switch between automatic, light and dark theme"
            data-theme-choice=move || theme.get().as_str()
            on:click=move |_| theme.update(|t| *t = t.next())
        >
            {move || theme.get().label()}
        </button>
    }
}

/// `window.matchMedia('(prefers-color-scheme: dark)')`, bound directly: the two members
/// used here do not justify another `web-sys` feature (which would rebuild the UI stack).
#[cfg(feature = "hydrate")]
mod system {
    use leptos::prelude::*;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::prelude::wasm_bindgen;
    use wasm_bindgen::JsValue;

    #[wasm_bindgen]
    extern "C" {
        #[derive(Clone)]
        type MediaQueryList;

        #[wasm_bindgen(catch, js_name = matchMedia)]
        fn match_media(query: &str) -> Result<Option<MediaQueryList>, JsValue>;

        #[wasm_bindgen(method, getter)]
        fn matches(this: &MediaQueryList) -> bool;

        #[wasm_bindgen(method, js_name = addEventListener)]
        fn add_event_listener(this: &MediaQueryList, kind: &str, listener: &JsValue);
    }

    /// Sets `system_dark` now and whenever the preference changes.
    pub fn follow(system_dark: RwSignal<bool>) {
        let Ok(Some(query)) = match_media("(prefers-color-scheme: dark)") else {
            return;
        };
        system_dark.set(query.matches());
        // The toggle lives as long as the page, so the listener (which keeps the query
        // object alive) is leaked on purpose.
        let watched = query.clone();
        let on_change = Closure::<dyn FnMut()>::new(move || {
            let _ = system_dark.try_set(watched.matches());
        });
        query.add_event_listener("change", on_change.as_ref());
        on_change.forget();
    }
}

#[cfg(not(feature = "hydrate"))]
mod system {
    use leptos::prelude::RwSignal;

    /// Effects run only in the browser.
    pub fn follow(_system_dark: RwSignal<bool>) {}
}

#[cfg(test)]
mod tests {
    use super::{data_theme, Theme};

    #[test]
    fn auto_is_dark_exactly_when_the_system_prefers_dark() {
        assert_eq!(data_theme(Theme::Auto, false), None);
        assert_eq!(data_theme(Theme::Auto, true), Some("dark"));
        for system_dark in [false, true] {
            assert_eq!(data_theme(Theme::Light, system_dark), Some("light"));
            assert_eq!(data_theme(Theme::Dark, system_dark), Some("dark"));
        }
    }

    #[test]
    fn the_boot_script_uses_the_toggles_storage_key() {
        assert!(super::BOOT_SCRIPT.contains(&format!("'{}'", super::STORAGE_KEY)));
        assert!(super::BOOT_SCRIPT.contains("(prefers-color-scheme: dark)"));
    }
}
