//! Browser end-to-end tests: the real `perfpilot` binary, real headless Chromium.

use fantoccini::Locator;
use tests::{Browser, Perfpilot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_hydrates_and_the_theme_toggle_reacts() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;

    let title = client.title().await.unwrap();
    assert_eq!(title, "perfpilot");
    let toggle = client.find(Locator::Id("theme-toggle")).await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: auto");
    let root = client.find(Locator::Css("html")).await.unwrap();
    assert_eq!(root.attr("data-theme").await.unwrap(), None);

    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: light");
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("light")
    );

    toggle.click().await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: dark");
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("dark")
    );
    browser.screenshot("overview-dark.png").await;

    // The choice survives a reload: the boot script applies it before first paint.
    client.refresh().await.unwrap();
    browser.wait_for_hydration().await;
    let root = client.find(Locator::Css("html")).await.unwrap();
    assert_eq!(
        root.attr("data-theme").await.unwrap().as_deref(),
        Some("dark")
    );
    let toggle = client.find(Locator::Id("theme-toggle")).await.unwrap();
    assert_eq!(toggle.text().await.unwrap(), "Theme: dark");

    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_works_client_side_and_unknown_urls_get_a_404_page() {
    let server = Perfpilot::start(&[]);
    let browser = Browser::start().await;
    let client = &browser.client;

    client.goto(&server.url("/")).await.unwrap();
    browser.wait_for_hydration().await;
    client
        .find(Locator::LinkText("Changes"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let heading = client
        .wait()
        .for_element(Locator::XPath("//h1[text()='Changes']"))
        .await
        .unwrap();
    assert_eq!(heading.text().await.unwrap(), "Changes");
    assert!(client
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/changes"));

    let (status, body) = server.get("/no/such/page");
    assert_eq!(status, 404);
    assert!(body.contains("Page not found"), "{body:.500}");

    client.goto(&server.url("/no/such/page")).await.unwrap();
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Page not found");
    browser.screenshot("not-found.png").await;

    browser.close().await;
}
