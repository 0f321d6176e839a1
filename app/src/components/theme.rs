//! The theme switch: follows the operating system by default (`prefers-color-scheme`),
//! or a light/dark choice the user saved in `localStorage`.
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

const STORAGE_KEY: &str = "perfpilot-theme";

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(Theme::Auto);

    // Runs once in the browser: adopt the saved choice.
    Effect::new(move |_| {
        if let Some(saved) = storage().and_then(|s| s.get_item(STORAGE_KEY).ok().flatten()) {
            theme.set(Theme::parse(&saved));
        }
    });

    // Keeps the document and storage in step with the signal.
    Effect::new(move |_| {
        let current = theme.get();
        if let Some(root) = document().document_element() {
            match current {
                Theme::Auto => {
                    let _ = root.remove_attribute("data-theme");
                }
                other => {
                    let _ = root.set_attribute("data-theme", other.as_str());
                }
            }
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
